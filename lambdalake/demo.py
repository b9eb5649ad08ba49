"""`lambdalake demo`: the tolls pipeline end to end on the embedded defaults, with a check.

Starts the local Kafka broker if it is not running, streams two waves of generated toll events
(late, out-of-order, duplicate and malformed ones too) with a batch run and a threshold change
between them, prints the merged reports and alerts, and ends with a `check:` line that says OK
only if every merged report equals the same report computed by DuckDB directly from every
accepted generated event, before the batch run, after it and after the second wave. It uses its
own lake, checkpoints and topic under the state folder, and stops what it started.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path

from lambdalake import broker, topics
from lambdalake import customers as customers_api
from lambdalake.config import Settings
from lambdalake.generators import tolls
from lambdalake.groundtruth import differences, expected_reports

DEMO_TOPIC = "demo.tolls.events"


def demo_settings(settings: Settings) -> Settings:
    """The demo's own lake, checkpoints and topic, under the state folder."""
    root = Path(settings.state.dir) / "demo"
    return settings.replace(lake={"root": str(root / "lake")},
                            checkpoint={"root": str(root / "checkpoints")},
                            topics={"tolls_events": DEMO_TOPIC})


def merged_reports(serving: object) -> dict[str, set[tuple]]:
    """Rows of every merged view, as sets of tuples."""
    from lambdalake.groundtruth import REPORT_SQL

    serving.refresh()  # type: ignore[attr-defined]
    return {name: set(serving.con.execute(f"select * from {name}").fetchall())  # type: ignore[attr-defined]
            for name in REPORT_SQL}


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _fresh_topic(settings: Settings) -> None:
    topics.delete_topics(settings, DEMO_TOPIC)
    for _ in range(50):  # deletion is asynchronous
        try:
            topics.ensure_topics(settings, DEMO_TOPIC)
            return
        except Exception:  # noqa: BLE001 (topic still marked for deletion)
            time.sleep(0.2)
    topics.ensure_topics(settings, DEMO_TOPIC)


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
    try:
        _step("Kafka")
        if not broker.status(settings).running:
            broker.start(settings)
            started_broker = True
        print(f"kafka: {broker.status(settings).detail}"
              + (" (started by the demo)" if started_broker else ""))
        _fresh_topic(settings)

        spark = create_spark_session(settings, "lambdalake-demo")
        accepted: list[dict] = []
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        customers = 200
        customers_api.write_customers(settings, tolls.customers(customers, seed))

        def wave(count: int, wave_seed: int, start: dt.datetime) -> None:
            options = tolls.TollsOptions(
                count=count, seed=wave_seed, start=start, span=dt.timedelta(hours=1),
                customers=customers, late_fraction=0.05, max_lateness=dt.timedelta(days=2),
                out_of_order_fraction=0.05, duplicate_fraction=0.02, malformed_fraction=0.01)
            report = tolls.produce(settings, tolls.toll_records(options), total=count)
            accepted.extend(report.events)
            print(f"generate: sent {report.sent} records ({len(report.events)} distinct "
                  f"well-formed events) in {report.seconds:.1f}s")

        def check(when: str, serving: Serving) -> None:
            diffs = differences(expected_reports(accepted), merged_reports(serving))
            checks.append(f"{when}: {'equal' if not diffs else 'DIFFERENT'}")
            print(f"verify {when}: " + ("merged views equal the ground truth" if not diffs
                                        else "; ".join(diffs)))

        _step(f"Wave 1: {events} toll events -> Kafka -> streaming job")
        wave(events, seed, now - dt.timedelta(hours=2))
        tolls_stream.run(spark, settings, until_idle=True)
        serving = Serving(settings)
        check("after wave 1 (speed only)", serving)

        _step("Batch run: recompute the reports from the landing zone")
        run = tolls_reports.run(spark, settings)
        print(f"batch: published over {run.landed_event_count} landed events (cut-over: landing "
              f"v{run.landing_version}) in {run.seconds:.1f}s")
        check("after the batch run", serving)

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
        check("after wave 2 (batch + speed)", serving)

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
            ("How fresh each report is",
             "select report, batch_cutover_landing_version as batch_cutover, "
             "batch_event_count, speed_landing_version as speed_through, "
             "date_trunc('second', batch_published_at) as batch_published, "
             "date_trunc('second', speed_processed_at) as speed_processed "
             "from tolls_report_freshness order by report"),
        ]:
            print(f"\n{title}:\n{as_table(serving.query(sql))}")
        serving.close()
    finally:
        if started_broker:
            broker.stop(settings)
            print("\nkafka: stopped the broker the demo started")
    ok = len(checks) == 3 and all(c.endswith("equal") for c in checks)
    print(f"\ncheck: merged views vs ground truth over {len(accepted)} accepted events: "
          + "; ".join(checks) + f" => {'OK' if ok else 'FAILED'}")
    return 0 if ok else 1
