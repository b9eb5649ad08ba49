"""Latency of merged-view queries over a large batch view plus a live speed part.

Usage: .venv/bin/python -m bench.serving_latency [--events 10000000] [--live-rate 1000]
       [--queries 200] [--cli-runs 10] [--keep]

Writes `--events` synthetic landed events (as bench.batch_recompute does), runs the batch job so
every batch view covers them, then starts the streaming job and a producer (a separate process)
sending `--live-rate` events/s, so the merged views have a speed part that grows while they are
queried. A long-lived `Serving` then runs each query below `--queries` times, each preceded by
`refresh()` (what a notebook that always wants the latest data pays), and prints p50/p99 of
refresh + query and of the query alone; again once the stream, the producer and Spark are stopped
(idle: what the code costs without the cores' contention). Then the same queries run
through the command line, `lambdalake query`, `--cli-runs` times each (a new process each time:
interpreter start, imports, opening every table). Last, what `lambdalake serve` does: the
serving layer written as a DuckDB database file `--cli-runs` times (p50/p99 of a write, and its
size), and each query run in a plain DuckDB connection opened read-only on that file for it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from batch import tolls_reports
from bench.batch_recompute import land_synthetic
from bench.common import bench_environment, produce_paced
from lambdalake import topics
from lambdalake.config import Settings
from lambdalake.generators import tolls
from lambdalake.spark import create_spark_session
from serving.engine import Serving
from speed import tolls_stream

QUERIES = {
    "one plaza, one day (tolls_plaza_revenue_30m)":
        "select bucket_start, vehicle_count, revenue from tolls_plaza_revenue_30m "
        "where plaza_id = 'P03' and bucket_start >= timestamp '2026-11-02' "
        "and bucket_start < timestamp '2026-11-03' order by bucket_start",
    "one customer, this month (tolls_customer_spend_this_month)":
        "select * from tolls_customer_spend_this_month where customer_id = 'C00042'",
    "top 10 customers by month (tolls_customer_monthly_spend)":
        "select month, customer_id, spend from tolls_customer_monthly_spend "
        "order by spend desc limit 10",
    "one customer's 10-minute spend (tolls_customer_spend_10m)":
        "select * from tolls_customer_spend_10m where customer_id = 'C00042' "
        "order by window_start desc limit 20",
}


def milliseconds(values: list[float]) -> str:
    q = statistics.quantiles(values, n=100, method="inclusive")
    return f"p50 {q[49] * 1000:7.1f} ms  p99 {q[98] * 1000:7.1f} ms"


def time_queries(serving: Serving, runs: int) -> None:
    """Run each query `runs` times, each after a `refresh()`; print p50/p99 of refresh + query
    and of the query alone."""
    for name, sql in QUERIES.items():
        serving.refresh()
        serving.query(sql)  # first run plans the views once
        with_refresh, alone = [], []
        for _ in range(runs):
            t0 = time.perf_counter()
            serving.refresh()
            t1 = time.perf_counter()
            serving.query(sql)
            t2 = time.perf_counter()
            with_refresh.append(t2 - t0)
            alone.append(t2 - t1)
        print(f"  {name}: refresh+query {milliseconds(with_refresh)};  "
              f"query alone {milliseconds(alone)}")


def time_export(serving: Serving, runs: int) -> None:
    """Write the serving layer's database file `runs` times (what `lambdalake serve` does when
    the lake moved); print p50/p99 of a write and the file's size, then of each query in a new
    read-only DuckDB connection to the file (a client with no lambdalake, one question each)."""
    with tempfile.TemporaryDirectory(prefix="lambdalake-export-") as folder:
        path = Path(folder) / "lambdalake.duckdb"
        writes = []
        for _ in range(runs):
            t0 = time.perf_counter()
            serving.export(path)
            writes.append(time.perf_counter() - t0)
        print(f"  write the file: {milliseconds(writes)}; {path.stat().st_size / 1e6:.1f} MB")
        for name, sql in QUERIES.items():
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                with duckdb.connect(str(path), read_only=True) as con:
                    con.execute(sql).fetch_arrow_table()
                times.append(time.perf_counter() - t0)
            print(f"  {name}: open + query {milliseconds(times)}")


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment that points a `lambdalake` process at the benchmark's lake."""
    return {**os.environ,
            "LAMBDALAKE_LAKE_ROOT": settings.lake.root,
            "LAMBDALAKE_CHECKPOINT_ROOT": settings.checkpoint.root,
            "LAMBDALAKE_STATE_DIR": settings.state.dir,
            "LAMBDALAKE_KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--live-rate", type=float, default=1000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--cli-runs", type=int, default=10)
    parser.add_argument("--keep", action="store_true",
                        help="keep the lake afterwards (its folder is printed) to profile it")
    args = parser.parse_args()
    with bench_environment(keep=args.keep) as settings:
        if args.keep:
            print(f"lake kept at {settings.lake.root}")
        settings = settings.replace(topics={"tolls_alerts": "bench.tolls.alerts"})
        spark = create_spark_session(settings, "lambdalake-bench-serving")
        land_synthetic(spark, settings, args.events)
        t = time.monotonic()
        run = tolls_reports.run(spark, settings)
        print(f"batch job: {run.summary()}; wall {time.monotonic() - t:.1f}s")

        topics.ensure_topics(settings, settings.topics.tolls_events, settings.topics.tolls_alerts)
        totals = tolls_stream.StreamTotals()
        query, processor = tolls_stream.start_query(spark, settings, until_idle=False,
                                                   totals=totals)
        live_seconds = 2 * args.queries * len(QUERIES) / 20 + 60  # ample: outlasts the queries
        options = tolls.TollsOptions(count=int(args.live_rate * live_seconds), seed=11,
                                     start=dt.datetime.now(dt.timezone.utc)
                                     - dt.timedelta(minutes=10),
                                     span=dt.timedelta(minutes=10), customers=10_000)
        sent_file = Path(tempfile.mkdtemp(prefix="lambdalake-serving-")) / "sent.tsv"
        producer = multiprocessing.get_context("spawn").Process(
            target=produce_paced, args=(settings.kafka.bootstrap_servers,
                                        settings.topics.tolls_events, options, args.live_rate,
                                        str(sent_file)), daemon=True)
        producer.start()
        while totals.landed < 2 * args.live_rate:  # the speed part is live before we measure
            time.sleep(0.2)

        serving = Serving(settings)
        batch_rows = serving.con.execute(
            "select count(*) from batch.tolls_customer_spend_10m").fetchone()[0]
        print(f"live: streaming job running, producer at {args.live_rate:.0f} events/s; batch "
              f"view tolls_customer_spend_10m has {batch_rows:,} rows")
        time_queries(serving, args.queries)
        live = serving.con.execute(
            "select count(*) from speed.tolls_customer_spend_10m").fetchone()[0]
        print(f"  (speed part at the end: {live:,} rows; {totals.landed:,} events landed in "
              f"{totals.batches} micro-batches)")
        for line in totals.log[-3:]:
            print(f"  {line}")
        producer.terminate()
        query.stop()
        processor.close()
        spark.stop()
        print("idle (stream, producer and Spark stopped; the same Serving):")
        time_queries(serving, args.queries)
        print(f"database file, `lambdalake serve` ({args.cli_runs} writes, stream stopped):")
        time_export(serving, args.cli_runs)
        serving.close()

        print(f"command line, `lambdalake query` ({args.cli_runs} runs each, stream stopped):")
        env = settings_env(settings)
        for name, sql in QUERIES.items():
            times = []
            for _ in range(args.cli_runs):
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-m", "lambdalake.cli", "query", sql], env=env,
                               check=True, stdout=subprocess.DEVNULL)
                times.append(time.perf_counter() - t0)
            print(f"  {name}: {milliseconds(times)}")


if __name__ == "__main__":
    main()
