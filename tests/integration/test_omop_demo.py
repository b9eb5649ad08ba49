"""Issue 4's acceptance: `lambdalake land mimic <demo> && lambdalake batch run omop` as separate
processes on the real MIMIC-III demo, a real Kafka broker, Spark and Delta; the output conforms
to the CDM v5.4 rules and agrees with the demo's known facts."""

import json
import uuid
from pathlib import Path

import duckdb
import pytest
from deltalake import DeltaTable
from kafka import KafkaConsumer

from batch import omop_etl
from lambdalake import lake
from serving.engine import Serving
from tests.batch.omop.conformance import violations
from tests.integration.test_cli_processes import cli_env, lambdalake

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
DEMO, MAPS = DATA / "mimic-iii-demo-1.4", DATA / "mimic-omop-concept-maps"


@pytest.mark.skipif(not DEMO.is_dir() or not MAPS.is_dir(),
                    reason=f"the MIMIC-III demo and concept maps are not in {DATA}")
@pytest.mark.long(minutes=3)
def test_demo_etl_through_the_cli(kafka_broker, settings):
    topic = f"etl.table_loaded.{uuid.uuid4().hex[:8]}"
    env = cli_env(settings, LAMBDALAKE_TOPICS_ETL_TABLE_LOADED=topic)
    for kind, folder in (("mimic", DEMO), ("vocabulary", MAPS)):
        landed = lambdalake("land", kind, str(folder), env=env)
        assert landed.returncode == 0, landed.stderr[-2000:]
    etl = lambdalake("batch", "run", "omop", env=env, timeout=900)
    assert etl.returncode == 0, etl.stderr[-3000:]

    serving = Serving(settings)
    q = serving.con.execute
    counts = {t: q(f"select count(*) from omop.{t}").fetchone()[0] for t in omop_etl.TABLES}
    raw = duckdb.connect()

    def source(file):
        return raw.execute(f"select count(*) from read_csv('{DEMO / file}')").fetchone()[0]

    # the demo's known facts
    assert counts["person"] == 100 and counts["death"] == 100
    assert counts["visit_occurrence"] == 129 and counts["visit_detail"] == 136
    assert q("select gender_concept_id, count(*) from omop.person group by 1 order by 1"
             ).fetchall() == [(8507, 45), (8532, 55)]
    assert counts["observation_period"] == 100
    assert counts["condition_occurrence"] == source("DIAGNOSES_ICD.csv")
    assert counts["procedure_occurrence"] == source("PROCEDURES_ICD.csv") + source("CPTEVENTS.csv")
    assert counts["measurement"] == (source("OUTPUTEVENTS.csv")
                                     + source("MICROBIOLOGYEVENTS.csv"))
    # every published row conforms (no vocabulary landed: concept references are not checked)
    assert violations(serving, has_vocabulary=False) == {}
    # prescriptions that end before they start are quarantined with that rule, not dropped
    backwards = raw.execute(f"select count(*) from read_csv('{DEMO / 'PRESCRIPTIONS.csv'}') "
                            "where enddate < startdate").fetchone()[0]
    assert backwards > 0
    assert q("select count(*) from quarantine.omop_quarantine where table_name = 'drug_exposure' "
             "and rules like 'order:drug_exposure_start_date <= drug_exposure_end_date%'"
             ).fetchone() == (backwards,)
    assert counts["drug_exposure"] + backwards == source("PRESCRIPTIONS.csv")
    assert f"quarantined: drug_exposure {backwards} rows broke order:" in etl.stdout
    # every admission type maps; the care units map to places of service
    assert q("select count(*) from omop.visit_occurrence where visit_concept_id = 0").fetchone(
        ) == (0,)
    assert q("select count(*) from omop.care_site where place_of_service_concept_id = 0"
             ).fetchone() == (0,)
    # a cohort query: conditions per person by gender
    by_gender = q("select p.gender_source_value, count(*) * 1.0 / count(distinct p.person_id) "
                  "from omop.condition_occurrence c join omop.person p using (person_id) "
                  "group by 1 order by 1").fetchall()
    assert [g for g, _ in by_gender] == ["F", "M"] and all(n > 1 for _, n in by_gender)

    # one etl.table_loaded message per table, matching what was published
    consumer = KafkaConsumer(topic, bootstrap_servers=settings.kafka.bootstrap_servers,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    messages = [json.loads(m.value) for m in consumer]
    consumer.close()
    assert sorted(m["table_name"] for m in messages) == sorted(omop_etl.TABLES)
    assert len({m["run_id"] for m in messages}) == 1
    for m in messages:
        assert m["row_count"] == counts[m["table_name"]]
        assert m["delta_version"] == DeltaTable(
            lake.table_path(settings, f"omop_{m['table_name']}")).version()
        assert m["duration_seconds"] > 0
    assert q("select count(*) from etl.table_loaded").fetchone() == (len(omop_etl.TABLES),)
    serving.close()
