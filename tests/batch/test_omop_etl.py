"""The OMOP ETL in-process on real Spark and Delta, over synthetic MIMIC-III data with its
generated vocabulary: checks, quarantine, re-runs and failed runs. (The MIMIC-III demo through the
CLI is in tests/integration/test_omop_demo.py.)"""

import csv
import re
from pathlib import Path

import pytest
from deltalake import DeltaTable
from pyspark.testing import assertDataFrameEqual

from batch import omop_etl
from batch.omop.land import land
from lambdalake import lake
from lambdalake.generators.mimic import generate
from serving.engine import Serving
from tests.batch.omop.conformance import violations
from tests.integration.test_notebooks import assert_plotted, execute, text_of


class Recorder:
    """Collects completion messages (the Kafka announcer is exercised by the demo test)."""

    def __init__(self):
        self.messages = []

    def announce(self, message):
        self.messages.append(message)


def _append(path, row):
    with open(path, newline="") as f:
        header = next(csv.reader(f))
    with open(path, "a", newline="") as f:
        csv.writer(f).writerow([row.get(c, "") for c in header])


def _swap_first_admission_times(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    first = rows[0]
    first["admittime"], first["dischtime"] = first["dischtime"], first["admittime"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return int(first["hadm_id"])


def versions(settings):
    return {t: DeltaTable(lake.table_path(settings, f"omop_{t}")).version()
            for t in omop_etl.TABLES}


@pytest.mark.long(minutes=5)
def test_synthetic_run_checks_quarantines_and_reruns_identically(spark, settings, tmp_path,
                                                                 monkeypatch):
    folder = tmp_path / "mimic"
    counts = generate(folder, patients=20, seed=3)
    backwards = _swap_first_admission_times(folder / "ADMISSIONS.csv")
    _append(folder / "DIAGNOSES_ICD.csv",
            {"row_id": 999999, "subject_id": 10000, "hadm_id": 999999, "seq_num": 1,
             "icd9_code": "4019"})
    land(settings, folder)
    land(settings, folder / "vocabulary", "vocabulary")

    recorder = Recorder()
    first = omop_etl.run(spark, settings, recorder)
    assert first.has_vocabulary
    # the Data Docs of the checks: a page per suite and per validation, listed in the index
    assert first.docs_index == Path(settings.lake.root) / "docs" / "index.html"
    index = first.docs_index.read_text()
    for table in omop_etl.CHECK_ORDER:
        assert f"expectations/omop_{table}.html" in index, table
        assert (first.docs_index.parent / "expectations" / f"omop_{table}.html").is_file()
        assert f"validations/omop_{table}/" in index, table
    failed = re.findall(r"validations/omop_(\w+)/[^']*', '_validation_success_text': 'Failed'",
                        index)
    assert set(failed) == {t for t, rows in first.quarantined_rows.items() if rows}
    serving = Serving(settings)
    q = serving.con.execute
    # what was published conforms, concept references included
    assert violations(serving, has_vocabulary=True) == {}
    assert first.row_counts["person"] == 20
    # the admission that ends before it starts is quarantined with its rule, and so is every
    # row that refers to it; the diagnosis of an unknown admission too
    quarantined = dict(q("select table_name || ':' || staging_row, rules "
                         "from quarantine.omop_quarantine").fetchall())
    visit_rules = [r for r in quarantined.values() if "visit_start_date <= visit_end_date" in r]
    assert len(visit_rules) == 1
    assert q("select count(*) from omop.visit_occurrence where visit_occurrence_id = ?",
             [backwards]).fetchone() == (0,)
    orphans = q("select count(*) from quarantine.omop_quarantine where table_name = "
                "'condition_occurrence' and rules like "
                "'%references:visit_occurrence_id->visit_occurrence%'").fetchone()[0]
    diagnoses_of_backwards = sum(1 for r in csv.DictReader(open(folder / "DIAGNOSES_ICD.csv"))
                                 if int(r["hadm_id"]) in (backwards, 999999))
    assert orphans == diagnoses_of_backwards
    assert first.row_counts["condition_occurrence"] + orphans == counts["DIAGNOSES_ICD.csv"] + 1
    assert first.quarantined_rows["visit_occurrence"] == 1
    # codes mapped through the landed vocabulary; unmapped ones keep concept 0 and the source
    assert q("select count(*) from omop.condition_occurrence where condition_concept_id = 0 "
             "or condition_source_concept_id = 0").fetchone() == (0,)
    assert q("select count(*) from omop.measurement where measurement_concept_id = 0 "
             "and measurement_source_value is not null").fetchone() == (
        counts["MICROBIOLOGYEVENTS.csv"],)  # microbiology has no map
    # one completion message per table, after publishing it
    assert [m["table_name"] for m in recorder.messages] == list(omop_etl.TABLES)
    assert {m["table_name"]: m["delta_version"] for m in recorder.messages} == versions(settings)
    assert {m["table_name"]: m["row_count"] for m in recorder.messages} == first.row_counts
    serving.close()

    # the clinical notebook runs end to end on this CDM (tests/integration/test_notebooks.py)
    cells = execute("clinical_cohorts", settings, monkeypatch, tmp_path)
    assert_plotted(cells, plots=5)
    assert cells[-1].source == "cohort" and "persons" in text_of(cells[-1])

    # a run that fails midway publishes nothing: every table stays at its last good version
    before = versions(settings)
    real_render = omop_etl.render_sql

    def broken(name, parameters=None):
        if name == "observation":
            return "select no_such_column from mimic_raw_admissions"
        return real_render(name, parameters)

    monkeypatch.setattr(omop_etl, "render_sql", broken)
    with pytest.raises(Exception, match="no_such_column"):
        omop_etl.run(spark, settings)
    monkeypatch.setattr(omop_etl, "render_sql", real_render)
    assert versions(settings) == before

    # a re-run over the same landing publishes the same rows with the same ids
    second = omop_etl.run(spark, settings)
    assert second.row_counts == first.row_counts
    for table in omop_etl.TABLES:
        path = lake.table_path(settings, f"omop_{table}")
        previous = spark.read.format("delta").option("versionAsOf", before[table]).load(path)
        assertDataFrameEqual(spark.read.format("delta").load(path), previous)


def test_nothing_landed_is_one_clear_error(spark, settings):
    with pytest.raises(Exception, match="lambdalake land mimic PATH"):
        omop_etl.run(spark, settings)


def test_sql_only_prints_every_table(capsys):
    assert omop_etl.main(["--sql-only"]) == 0
    out = capsys.readouterr().out
    for table in omop_etl.TABLES:
        assert f"-- {table}\n" in out
    assert "{raw}" not in out and "{staging}" not in out and "mimic_raw_patients" in out
