"""The OMOP ETL on real Spark and Delta: the MIMIC-III demo's known facts, and synthetic data."""

from pathlib import Path

import pytest

from batch import omop_etl
from batch.omop.land import land
from lambdalake.generators.mimic import generate
from serving.engine import Serving

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
DEMO, MAPS = DATA / "mimic-iii-demo-1.4", DATA / "mimic-omop-concept-maps"


def one(serving, sql):
    return serving.con.execute(sql).fetchall()


@pytest.mark.skipif(not DEMO.is_dir(), reason=f"the MIMIC-III demo is not at {DEMO}")
def test_demo_agrees_with_its_known_facts(spark, settings):
    land(settings, DEMO)
    result = omop_etl.run(spark, settings, MAPS)
    assert result.row_counts == {"person": 100, "death": 100, "visit_occurrence": 129}
    serving = Serving(settings)
    assert one(serving, "select gender_concept_id, count(*) from omop.person group by 1 "
                        "order by 1") == [(8507, 45), (8532, 55)]
    assert one(serving, "select count(*) from omop.visit_occurrence "
                        "where visit_start_date > visit_end_date") == [(0,)]
    assert one(serving, "select count(*) from omop.visit_occurrence v anti join omop.person p "
                        "using (person_id)") == [(0,)]
    assert one(serving, "select count(*) - count(distinct visit_occurrence_id) "
                        "from omop.visit_occurrence") == [(0,)]
    assert one(serving, "select count(*) from omop.visit_occurrence "
                        "where visit_concept_id = 0") == [(0,)]  # every admission type maps
    serving.close()


def test_synthetic_data_without_maps_keeps_source_values(spark, settings, tmp_path):
    counts = generate(tmp_path / "mimic", patients=25, seed=2)
    land(settings, tmp_path / "mimic")
    result = omop_etl.run(spark, settings, maps=None)
    assert result.row_counts["person"] == 25
    assert result.row_counts["visit_occurrence"] == counts["ADMISSIONS.csv"]
    serving = Serving(settings)
    assert one(serving, "select count(*) from omop.visit_occurrence "
                        "where visit_concept_id = 0 and visit_source_value is not null") == [
        (counts["ADMISSIONS.csv"],)]  # unmapped: concept 0, source value kept
    assert one(serving, "select count(*) from omop.person where race_concept_id = 0 "
                        "and race_source_value is not null") == [(25,)]
    serving.close()


def test_sql_only_prints_every_table(capsys):
    assert omop_etl.main(["--sql-only"]) == 0
    out = capsys.readouterr().out
    for table in omop_etl.TABLES:
        assert f"-- {table}" in out
    assert "{raw}" not in out and "mimic_raw_patients" in out
