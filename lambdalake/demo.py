"""`lambdalake demo`: the tolls pipeline, the clickstream and the clinical ETL end to end, checked.

Starts the local Kafka broker if it is not running, streams two waves of generated toll events
(late, out-of-order, duplicate and malformed ones too) with a batch run and a threshold change
between them, prints the merged reports and alerts, and ends with a `check:` line that says OK
only if every merged report equals the same report computed by DuckDB directly from every
accepted generated event, before the batch run, after it and after the second wave. A wave of
page views goes through the clicks streaming job and batch job the same way and shows the top 10
trending articles of the last 10 minutes; the check requires its merged views to equal DuckDB's
too. Then it generates synthetic MIMIC-III patients, runs the OMOP ETL over them and shows a
cohort query; the check also requires the CDM row counts to agree with the generated sources. It
uses its own lake, checkpoints and topics under the state folder, and stops what it started.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lambdalake import broker, topics
from lambdalake import customers as customers_api
from lambdalake import plazas as plazas_api
from lambdalake.config import Settings
from lambdalake.generators import stream, tolls
from lambdalake.groundtruth import REPORT_SQL, differences, expected_reports

if TYPE_CHECKING:
    from serving.engine import Serving

DEMO_TOPIC = "demo.tolls.events"
DEMO_CLICKS_TOPIC = "demo.clicks.events"


def demo_settings(settings: Settings) -> Settings:
    """The demo's own lake, checkpoints and topics, under the state folder."""
    root = Path(settings.state.dir) / "demo"
    return settings.replace(lake={"root": str(root / "lake")},
                            checkpoint={"root": str(root / "checkpoints")},
                            topics={"tolls_events": DEMO_TOPIC,
                                    "clicks_events": DEMO_CLICKS_TOPIC,
                                    "etl_table_loaded": "demo.etl.table_loaded"})


CLINICAL_PATIENTS = 200
CLICKS = 6_000
# the faults of every generated wave
FAULTS = stream.Faults(late_fraction=0.05, out_of_order_fraction=0.05, duplicate_fraction=0.02,
                       malformed_fraction=0.01)


@dataclass
class GroundTruth:
    """A domain's waves as the demo checks them: every accepted event sent so far, and whether
    its merged views equalled DuckDB's report over them at each check."""

    event_spec: str  # tolls_event, clicks_event
    noun: str  # what a record is: toll records, page views
    accepted: list[dict] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)

    def sent(self, report: stream.ProduceReport) -> None:
        """Note a wave sent to Kafka."""
        self.accepted.extend(report.events)
        print(f"generate: sent {report.sent} {self.noun} ({len(report.events)} distinct "
              f"well-formed) in {report.seconds:.1f}s")

    def check(self, when: str, serving: Serving) -> None:
        """Compare the merged views with the ground truth now; print and note the verdict."""
        diffs = differences(expected_reports(self.accepted, self.event_spec),
                            serving.rows(REPORT_SQL[self.event_spec]))
        self.verdicts.append(f"{when}: {'equal' if not diffs else 'DIFFERENT'}")
        print(f"verify {when}: " + ("merged views equal the ground truth" if not diffs
                                    else "; ".join(diffs)))


def _clicks(spark: object, settings: Settings, seed: int) -> str:
    """Page views -> clicks streaming job -> batch run -> more views; show the trending
    articles; return the check's verdict (merged clicks views vs DuckDB after each step)."""
    from batch import views_job
    from batch.clicks_reports import CLICKS_REPORTS
    from lambdalake.generators import clicks
    from serving.engine import Serving
    from serving.output import as_table
    from speed import stream as stream_job
    from speed.clicks_stream import CLICKS as CLICKS_DOMAIN

    _step(f"Clickstream: {CLICKS} page views -> Kafka -> clicks streaming job, a batch run, "
          f"{CLICKS // 4} more")
    truth = GroundTruth("clicks_event", "page views")
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    serving = Serving(settings)
    for step, (count, span) in enumerate(((CLICKS, 60), (CLICKS // 4, 15))):
        options = clicks.ClicksOptions(
            count=count, seed=seed + step, start=now - dt.timedelta(minutes=span),
            span=dt.timedelta(minutes=span), faults=FAULTS)
        truth.sent(stream.produce(settings, clicks.click_records(options),
                                  settings.topics.clicks_events, total=count))
        stream_job.run(CLICKS_DOMAIN, spark, settings, until_idle=True)  # type: ignore[arg-type]
        if step == 0:
            run = views_job.run(CLICKS_REPORTS, spark, settings)  # type: ignore[arg-type]
            print(f"batch: clicks views published over {run.landed_event_count} landed views "
                  f"(cut-over: landing v{run.landing_version}) in {run.seconds:.1f}s")
        truth.check("clicks, after the first wave and a batch run" if step == 0 else
                    "clicks, after the second wave (batch + speed)", serving)
    for title, sql in [
        ("Top 10 trending articles, last 10 minutes (batch part + speed part)",
         "select trending_rank as rank, article_id, view_count as views, "
         "session_count as sessions from clicks_trending_10m order by trending_rank limit 10"),
        ("Most read articles today",
         "select popularity_rank as rank, article_id, view_count as views, "
         "session_count as sessions from clicks_article_daily "
         "where view_date = current_date order by popularity_rank limit 5"),
    ]:
        print(f"\n{title}:\n{as_table(serving.query(sql))}")
    serving.close()
    return (f"clicks ({len(truth.accepted)} views, before and after a batch run): "
            + ("equal" if all(v.endswith("equal") for v in truth.verdicts) else "DIFFERENT"))


def _clinical(spark: object, settings: Settings, seed: int) -> str:
    """Synthetic MIMIC-III -> OMOP ETL -> a cohort query; return the check's verdict."""
    from batch import omop_etl
    from batch.omop import checks
    from batch.omop.land import land
    from lambdalake.generators import mimic
    from serving import reports
    from serving.engine import Serving
    from serving.output import as_table

    _step(f"Clinical: {CLINICAL_PATIENTS} synthetic MIMIC-III patients -> OMOP CDM v5.4")
    folder = Path(settings.lake.root).parent / "mimic-synthetic"
    counts = mimic.generate(folder, CLINICAL_PATIENTS, seed)
    print(f"generate: {sum(counts.values())} records in {len(counts)} MIMIC-III files, and a "
          f"small vocabulary, in {folder}")
    for kind, source in (("mimic", folder), ("vocabulary", folder / "vocabulary")):
        landed = land(settings, source, kind)
        print(f"land {kind}: {landed.files} files as {landed.landing_id}")
    announcer = omop_etl.KafkaAnnouncer(settings)
    try:
        result = omop_etl.run(spark, settings, announcer, progress=True)  # type: ignore[arg-type]
    finally:
        announcer.close()
    print("\n".join(omop_etl.report(result)))
    print(f"omop: {len(result.row_counts)} etl.table_loaded messages on Kafka topic "
          f"{settings.topics.etl_table_loaded}")
    serving = Serving(settings)
    for title, sql in [
        ("Conditions per person, by gender",
         "select person.gender_source_value as gender, count(distinct person_id) as persons, "
         "round(count(*) / count(distinct person_id), 1) as conditions_per_person "
         "from omop.condition_occurrence join omop.person as person using (person_id) "
         "group by 1 order by 1"),
        ("Cohort: patients with atrial fibrillation (ICD-9 427.31)", reports.COHORT_SQL),
    ]:
        print(f"\n{title}:\n{as_table(serving.query(sql))}")
    serving.close()
    expected = {"person": CLINICAL_PATIENTS, "visit_occurrence": counts["ADMISSIONS.csv"],
                "visit_detail": counts["ICUSTAYS.csv"],
                "condition_occurrence": counts["DIAGNOSES_ICD.csv"],
                "drug_exposure": counts["PRESCRIPTIONS.csv"]}
    suites = {f"omop_{t}" for t in omop_etl.CHECK_ORDER}
    listed = checks.listed_suites(result.docs_index) if result.docs_index else set()
    print(f"omop: the Data Docs index lists {len(listed & suites)} of the {len(suites)} "
          f"suites: {result.docs_index}")
    agree = (all(result.row_counts[t] == n for t, n in expected.items())
             and not sum(result.quarantined_rows.values()) and listed >= suites)
    return (f"clinical ETL ({', '.join(f'{t} {n}' for t, n in expected.items())}): "
            + ("CDM rows, sources and Data Docs agree" if agree
               else "CDM rows, sources and Data Docs DIFFER"))


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _fresh_topic(settings: Settings, topic: str) -> None:
    topics.delete_topics(settings, topic)
    for _ in range(50):  # deletion is asynchronous
        try:
            topics.ensure_topics(settings, topic)
            return
        except Exception:  # noqa: BLE001 (topic still marked for deletion)
            time.sleep(0.2)
    topics.ensure_topics(settings, topic)


def main(base: Settings, events: int = 20_000, seed: int = 42) -> int:
    """Run the demo; return 0 when the check is OK, 1 otherwise."""
    from batch import tolls_reports
    from lambdalake.spark import create_spark_session
    from serving.engine import Serving
    from serving.output import as_table
    from speed import tolls_stream

    settings = demo_settings(base)
    demo_root = Path(settings.lake.root).parent
    shutil.rmtree(demo_root, ignore_errors=True)
    started_broker = False
    checks: list[str] = []
    truth = GroundTruth("tolls_event", "toll records")
    try:
        _step("Kafka")
        if not broker.status(settings).running:
            broker.start(settings)
            started_broker = True
        print(f"kafka: {broker.status(settings).detail}"
              + (" (started by the demo)" if started_broker else ""))
        for topic in (DEMO_TOPIC, DEMO_CLICKS_TOPIC):
            _fresh_topic(settings, topic)

        spark = create_spark_session(settings, "lambdalake-demo")
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        customers = 200
        customers_api.write_customers(settings, tolls.customers(customers, seed))
        plazas_api.write_plazas(settings, tolls.plazas())

        def wave(count: int, wave_seed: int, start: dt.datetime) -> None:
            options = tolls.TollsOptions(count=count, seed=wave_seed, start=start,
                                         span=dt.timedelta(hours=1), customers=customers,
                                         faults=FAULTS)
            truth.sent(tolls.produce(settings, tolls.toll_records(options), total=count))

        _step(f"Wave 1: {events} toll events -> Kafka -> streaming job")
        wave(events, seed, now - dt.timedelta(hours=2))
        tolls_stream.run(spark, settings, until_idle=True)
        serving = Serving(settings)
        truth.check("after wave 1 (speed only)", serving)

        _step("Batch run: recompute the reports from the landing zone")
        run = tolls_reports.run(spark, settings)
        print(f"batch: published over {run.landed_event_count} landed events (cut-over: landing "
              f"v{run.landing_version}) in {run.seconds:.1f}s")
        truth.check("after the batch run", serving)

        serving.refresh()
        spend = serving.con.execute(
            "select spend from tolls_customer_spend_this_month where customer_id = 'C00007'"
        ).fetchone()[0]
        new_threshold = spend + 10
        _step(f"Threshold change: C00007 (spent {spend} this month) -> {new_threshold}, "
              "no restart")
        customers_api.set_threshold(settings, "C00007", new_threshold)
        print(f"customers: C00007 monthly threshold is now {new_threshold}; wave 2 should "
              "cross it and raise a second alert for C00007")

        _step(f"Wave 2: {events // 4} more events -> streaming job (speed part after cut-over)")
        wave(events // 4, seed + 1, now - dt.timedelta(hours=1))
        tolls_stream.run(spark, settings, until_idle=True)
        truth.check("after wave 2 (batch + speed)", serving)
        checks += truth.verdicts

        _step("Reports (merged views)")
        serving.refresh()
        for title, sql in [
            ("Top plaza 30-minute buckets by revenue",
             "select * from tolls_plaza_revenue_30m order by revenue desc, plaza_id limit 8"),
            ("Top customers by spend this month",
             "select * from tolls_customer_monthly_spend order by spend desc, customer_id "
             "limit 8"),
            ("Where every record read from Kafka went",
             "select sum(read_count) as read, sum(landed_count) as landed, "
             "sum(quarantined_count) as quarantined, sum(duplicate_count) as duplicates "
             "from speed.tolls_stream_progress"),
            ("Quarantine reasons",
             "select regexp_replace(split_part(reason, ':', 1), ' transaction_id.*', '') "
             "as reason, count(*) as records "
             "from quarantine.tolls_quarantine group by 1 order by 2 desc, 1"),
            ("Vehicles and revenue per class per day",
             "select * from tolls_daily_class_traffic order by day, vehicle_class"),
            ("Customers over their threshold this month (batch part + speed part)",
             "select customer_id, spend, monthly_threshold from tolls_customer_spend_this_month "
             "where is_over_threshold order by spend desc limit 5"),
            ("Threshold alerts (also on the Kafka topic tolls.alerts)",
             "select count(*) as alerts, count(distinct customer_id) as customers, "
             "min(alerted_at) as first_alert, max(alerted_at) as last_alert "
             "from speed.tolls_alerts"),
            ("Alerts of C00007 (the second one follows the threshold change)",
             "select customer_id, month, threshold, spend, event_time, alerted_at "
             "from tolls_alerts where customer_id = 'C00007' order by alerted_at"),
            ("C00007's threshold changes, from the customers table's change data feed",
             "select customer_id, change_type, old_monthly_threshold, new_monthly_threshold, "
             "date_trunc('second', changed_at) as changed_at "
             "from reference.tolls_customer_changes where customer_id = 'C00007' "
             "order by customer_version"),
            ("How fresh each report is",
             "select report, batch_cutover_landing_version as batch_cutover, "
             "batch_event_count, speed_landing_version as speed_through, "
             "date_trunc('second', batch_published_at) as batch_published, "
             "date_trunc('second', speed_processed_at) as speed_processed "
             "from tolls_report_freshness order by report"),
        ]:
            print(f"\n{title}:\n{as_table(serving.query(sql))}")
        serving.close()
        checks.append(_clicks(spark, settings, seed))
        checks.append(_clinical(spark, settings, seed))
    finally:
        if started_broker:
            broker.stop(settings)
            print("\nkafka: stopped the broker the demo started")
    ok = len(checks) == 5 and all(c.endswith(("equal", "agree")) for c in checks)
    print(f"\ncheck: merged views vs ground truth over {len(truth.accepted)} accepted events: "
          + "; ".join(checks[:3])
          + "".join(f"; {c}" for c in checks[3:]) + ("" if len(checks) == 5 else "; not all run")
          + f" => {'OK' if ok else 'FAILED'}")
    return 0 if ok else 1
