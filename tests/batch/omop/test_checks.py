"""The conformance rules derived from the CDM specs, and the Great Expectations validator."""

import datetime as dt

import schemas
from batch.omop import checks


def names(table, allowed=None, with_observation_period=True):
    spec = schemas.load(f"omop_{table}")
    return [r.name for r in checks.rules_for(spec, allowed or {}, with_observation_period)]


def test_rules_of_visit_occurrence_come_from_its_spec():
    rules = names("visit_occurrence", {"person_id": [1, 2]})
    assert "required:visit_occurrence_id" in rules and "required:visit_end_date" in rules
    assert "required:provider_id" not in rules  # optional
    assert "unique:visit_occurrence_id" in rules
    assert "references:person_id->person" in rules
    assert "order:visit_start_date <= visit_end_date" in rules
    assert "order:visit_start_datetime <= visit_end_datetime" in rules
    assert "inside_observation_period:visit_start_date >= start" in rules
    assert "inside_observation_period:visit_end_date <= end" in rules


def test_only_clinical_events_are_bound_to_the_observation_period():
    assert checks.event_dates(schemas.load("omop_person")) is None
    assert checks.event_dates(schemas.load("omop_death")) is None
    assert checks.event_dates(schemas.load("omop_measurement")) == ("measurement_date", None)
    assert checks.event_dates(schemas.load("omop_drug_exposure")) == (
        "drug_exposure_start_date", "drug_exposure_end_date")
    assert not [n for n in names("measurement", with_observation_period=False)
                if n.startswith("inside")]


def test_references_keep_only_produced_tables():
    spec = schemas.load("omop_condition_occurrence")
    assert checks.references(spec, {"person", "visit_occurrence"}) == {
        "person_id": "person", "visit_occurrence_id": "visit_occurrence"}


def test_validator_names_each_failing_row_and_rule(spark):
    spec = schemas.load("omop_observation_period")
    day = dt.date(2150, 1, 1)
    df = spark.createDataFrame(
        [(1, 1, 10, day, day, 32817), (2, 2, 20, day, day - dt.timedelta(days=1), 32817),
         (3, 2, 20, None, day, 32817), (4, 4, 99, day, day, 32817)],
        "_row long, observation_period_id int, person_id int, "
        "observation_period_start_date date, observation_period_end_date date, "
        "period_type_concept_id int")
    rules = checks.rules_for(spec, {"person_id": [10, 20]}, with_observation_period=False)
    failures = checks.Validator().validate("observation_period", df, rules, "_row")
    assert failures == {
        2: ["unique:observation_period_id",
            "order:observation_period_start_date <= observation_period_end_date"],
        3: ["required:observation_period_start_date", "unique:observation_period_id"],
        4: ["references:person_id->person"],
    }
