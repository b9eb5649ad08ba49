"""Restart time of the streaming job with N events landed (issue 9).

Usage: .venv/bin/python -m bench.restart [--events 10000000]

Writes N synthetic landed events straight into a landing zone (as bench.batch_recompute, all
within the duplicate window, so the landed-id index holds all N), publishes a batch run, sends
1,000 events to Kafka and times a fresh `speed run --until-idle` (a restart: new process state,
existing checkpoint-less lake) until its first micro-batch is done. Also times the two ways to
rebuild the alert state: summing the whole landing zone (before) and the published monthly view
plus the speed rows after its cut-over (now).
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

from pyspark.sql import functions as F

from batch import tolls_reports
from bench.batch_recompute import land_synthetic
from bench.common import bench_environment
from lambdalake import lake, topics
from lambdalake.generators import tolls
from lambdalake.spark import create_spark_session
from speed import tolls_stream
from speed.tolls import alerts


def timed(label: str, work):  # noqa: ANN001, ANN201
    """Run `work`, print how long it took, return its result."""
    began = time.monotonic()
    result = work()
    print(f"{label}: {time.monotonic() - began:.1f}s", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    args = parser.parse_args()
    with bench_environment() as settings:
        spark = create_spark_session(settings, "lambdalake-bench-restart")
        land_synthetic(spark, settings, args.events)
        run = timed("batch run", lambda: tolls_reports.run(spark, settings))
        version = run.landing_version
        landing = lake.read_table(spark, settings, "tolls_landing", version)
        spend_scan = timed("alert state by summing the whole landing zone (before)", lambda: (
            landing.groupBy("customer_id", F.trunc("event_time", "month"))
            .agg(F.sum("amount")).collect()))
        batch = lake.read_table(spark, settings, "tolls_customer_monthly_spend",
                                run.view_versions["tolls_customer_monthly_spend"])
        speed = lake.read_table(spark, settings, "tolls_speed_rows").where(
            F.col("view_name") == "speed_tolls_customer_spend_10m")
        spend_view = timed("alert state from the published view + speed rows (now)", lambda: (
            alerts.month_spend(batch, speed, run.landing_version, version).collect()))
        assert {(r[0], r[1]): r[2] for r in spend_scan} == {
            (r[0], r[1]): r[2] for r in spend_view}, "the two alert states differ"
        print(f"both give the same spend for {len(spend_view):,} customer-months")

        topics.ensure_topics(settings, settings.topics.tolls_events)
        options = tolls.TollsOptions(count=1000, seed=1, customers=10_000,
                                     start=dt.datetime.now(dt.timezone.utc)
                                     - dt.timedelta(hours=1))
        tolls.produce(settings, tolls.toll_records(options), progress=False)
        totals = timed(f"restart with {args.events:,} events landed: speed run --until-idle "
                       "over 1,000 new events (start, state load, one micro-batch)",
                       lambda: tolls_stream.run(spark, settings, until_idle=True))
        print(f"micro-batches {totals.batches}, read {totals.read}")
        spark.stop()


if __name__ == "__main__":
    main()
