"""Conformance checks of the CDM tables: Great Expectations suites derived from `schemas/omop_*`.

From a table's spec come, as expectations:
- `required:<column>`: a required field is never null;
- `unique:<column>`: the primary key is unique;
- `references:<column>-><table>`: a foreign key resolves to a row of a table the ETL produces
  (person, visit, care site, ...; concept only where a standard vocabulary was landed);
- `order:<start> <= <end>`: a start (`*_start_date`/`*_start_datetime`) is not after its end;
- `inside_observation_period:<column>`: a clinical event's dates fall inside its person's
  observation period.

`validate` runs a suite against a Spark DataFrame and returns, for every failing row (by the
row-id column the ETL adds while staging), the rules it broke, so the ETL can quarantine it.
`build_docs` renders the suites and their results as Great Expectations Data Docs (HTML).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import great_expectations as gx
from great_expectations.expectations import Expectation
from pyspark.sql import DataFrame

import schemas

OBSERVATION_START = "_observation_period_start_date"
OBSERVATION_END = "_observation_period_end_date"
EVENT_END = "_event_end_date"
# Tables whose dates are not clinical events bound to the observation period.
NOT_EVENTS = {"person", "death", "observation_period", "care_site", "concept",
              "concept_relationship"}


@dataclass(frozen=True)
class Rule:
    """One named check and the expectation that carries it out."""

    name: str
    expectation: Expectation


def references(spec: schemas.TableSpec, produced: Iterable[str]) -> dict[str, str]:
    """Foreign-key columns to check -> the CDM table they point at (only tables in `produced`)."""
    targets = set(produced)
    return {c.name: c.references.split(".")[0] for c in spec.columns
            if c.references and c.references.split(".")[0] in targets}


def date_pairs(spec: schemas.TableSpec) -> list[tuple[str, str]]:
    """(start, end) column pairs of a table, e.g. visit_start_date and visit_end_date."""
    names = set(spec.column_names)
    return [(c, c.replace("_start_", "_end_")) for c in spec.column_names
            if "_start_date" in c and c.replace("_start_", "_end_") in names]


def event_dates(spec: schemas.TableSpec) -> tuple[str, str | None] | None:
    """The (start, end) date columns of a clinical event (end None when it has none), or None
    for tables that are not clinical events."""
    if spec.name.removeprefix("omop_") in NOT_EVENTS or "person_id" not in spec.column_names:
        return None
    dates = [c.name for c in spec.columns if c.type == "date" and c.required]
    if not dates:
        return None
    pairs = [p for p in date_pairs(spec) if p[0].endswith("_date")]
    return pairs[0] if pairs else (dates[0], None)


def _rule(name: str, expectation: type[Expectation], **kwargs: object) -> Rule:
    return Rule(name, expectation(meta={"rule": name}, **kwargs))


def rules_for(spec: schemas.TableSpec, allowed: dict[str, list[object]],
              with_observation_period: bool) -> list[Rule]:
    """The rules of a CDM table.

    `allowed` maps each foreign-key column to check to the values that resolve.
    `with_observation_period` adds the observation-period rules; they need the columns
    OBSERVATION_START, OBSERVATION_END and EVENT_END (the event's end, else its start) joined
    to the data.
    """
    expect = gx.expectations
    rules = [_rule(f"required:{c.name}", expect.ExpectColumnValuesToNotBeNull, column=c.name)
             for c in spec.columns if c.required]
    if len(spec.primary_key) == 1:
        key = spec.primary_key[0]
        rules.append(_rule(f"unique:{key}", expect.ExpectColumnValuesToBeUnique, column=key))
    for column, values in allowed.items():
        table = next(c.references for c in spec.columns if c.name == column).split(".")[0]
        rules.append(_rule(f"references:{column}->{table}", expect.ExpectColumnValuesToBeInSet,
                           column=column, value_set=values))
    for start, end in date_pairs(spec):
        rules.append(_rule(f"order:{start} <= {end}",
                           expect.ExpectColumnPairValuesAToBeGreaterThanB, column_A=end,
                           column_B=start, or_equal=True, ignore_row_if="either_value_is_missing"))
    dates = event_dates(spec)
    if with_observation_period and dates:
        first, last = dates
        rules.append(_rule(f"inside_observation_period:{first} >= start",
                           expect.ExpectColumnPairValuesAToBeGreaterThanB, column_A=first,
                           column_B=OBSERVATION_START, or_equal=True, ignore_row_if="neither"))
        rules.append(_rule(f"inside_observation_period:{last or first} <= end",
                           expect.ExpectColumnPairValuesAToBeGreaterThanB,
                           column_A=OBSERVATION_END, column_B=EVENT_END, or_equal=True,
                           ignore_row_if="neither"))
    return rules


DOCS_SITE = "lake_docs"


class Validator:
    """An ephemeral Great Expectations context validating Spark DataFrames; with `docs`, a
    folder where `build_docs` writes the Data Docs of the suites it ran."""

    def __init__(self, docs: Path | None = None) -> None:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        logging.getLogger("great_expectations").setLevel(logging.ERROR)
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.source = self.context.data_sources.add_spark("omop_staging")
        self.docs = docs
        if docs is not None:
            self.context.add_data_docs_site(DOCS_SITE, {
                "class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                                  "base_directory": str(docs)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}})

    def build_docs(self) -> Path | None:
        """Render the Data Docs of the suites validated so far (an expectation page per suite
        and a page per validation, linked from `index.html`) into the docs folder; return the
        index's path (None without a docs folder)."""
        if self.docs is None:
            return None
        self.context.build_data_docs(site_names=[DOCS_SITE])
        return self.docs / "index.html"

    def validate(self, table: str, df: DataFrame, rules: list[Rule],
                 row_column: str) -> dict[object, list[str]]:
        """Run the rules on `df`; return failing row id -> names of the rules it broke (in the
        rules' order)."""
        if not rules:
            return {}
        asset = self.source.add_dataframe_asset(table)
        batch = asset.add_batch_definition_whole_dataframe(table)
        suite = self.context.suites.add(gx.ExpectationSuite(name=f"omop_{table}"))
        for rule in rules:
            suite.add_expectation(rule.expectation)
        definition = self.context.validation_definitions.add(
            gx.ValidationDefinition(name=f"omop_{table}", data=batch, suite=suite))
        result = definition.run(batch_parameters={"dataframe": df}, result_format={
            "result_format": "COMPLETE", "unexpected_index_column_names": [row_column]})
        failures: dict[object, list[str]] = {}
        for outcome in result.results:
            name = outcome.expectation_config.meta["rule"]
            if outcome.exception_info and outcome.exception_info.get("raised_exception"):
                raise RuntimeError(f"check {name} of {table} could not run: "
                                   f"{outcome.exception_info.get('exception_message')}")
            if outcome.success:
                continue
            for index in outcome.result.get("unexpected_index_list") or []:
                failures.setdefault(index[row_column], []).append(name)
        order = {rule.name: n for n, rule in enumerate(rules)}
        return {row: sorted(names, key=order.__getitem__) for row, names in failures.items()}


def listed_suites(index: Path) -> set[str]:
    """The suites a Data Docs index links an expectation page of."""
    return set(re.findall(r"expectations/(\w+)\.html", index.read_text()))
