"""Freshness and alert latency of the speed layer, with events produced at a steady rate.

Usage: .venv/bin/python -m bench.freshness [--rate 5000] [--seconds 60]

A producer in a separate process (the librdkafka client confluent-kafka, so that neither the
Python client nor the driver's GIL limits the send rate; `pip install -e '.[bench]'`) sends toll
events at `--rate`/s and notes when each was sent; the streaming job runs continuously in this
process. First a warm-up: the same producer for `--warm-up` seconds, its events in an earlier
month (the same customers cross their thresholds there, so the alert path runs, while the measured
month's alerts stay the same), waited for until landed: a months-long job and its broker are
measured warm, not while their JVMs compile the produce and micro-batch paths. Then a poller
queries the merged view `tolls_plaza_revenue_30m` through a long-lived serving layer every 0.25 s
(opened before the producer starts, as an analyst's is: its first open of the lake's tables is not
the job's cost). An event counts as visible at the first poll whose merged vehicle count covers it
(events land in produce order per partition, so the count says how many of the earliest events are
in). A consumer of the alerts topic notes when each alert arrives; its latency runs from the send
of its crossing transaction. Prints p50/p90/p99 of both.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaConsumer
from pyspark.sql.streaming import StreamingQuery

from bench.common import bench_environment, produce_paced
from lambdalake import customers, topics
from lambdalake.config import Settings
from lambdalake.generators import tolls
from lambdalake.spark import create_spark_session
from serving.engine import Serving
from speed import tolls_stream


def percentiles(values: list[float]) -> str:
    if not values:
        return "no samples"
    q = statistics.quantiles(values, n=100, method="inclusive")
    return (f"p50 {q[49]:.2f}s  p90 {q[89]:.2f}s  p99 {q[98]:.2f}s  max {max(values):.2f}s  "
            f"(n={len(values)})")


def paced(settings: Settings, options: tolls.TollsOptions, rate: float,
          sent_file: Path | None = None) -> multiprocessing.Process:
    """Start the paced producer's process (it writes the send times to `sent_file`, if given)."""
    process = multiprocessing.get_context("spawn").Process(
        target=produce_paced, args=(settings.kafka.bootstrap_servers,
                                    settings.topics.tolls_events, options, rate,
                                    str(sent_file) if sent_file else None))
    process.start()
    return process


def wait_for(query: StreamingQuery, done: Callable[[], bool]) -> None:
    """Wait until `done()`; stop the benchmark if the streaming job stops first."""
    while not done():
        if not query.isActive:
            raise SystemExit(f"freshness: the streaming job stopped: {query.exception()}")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=5000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--warm-up", type=float, default=10,
                        help="seconds of events sent at the rate before the measured ones")
    args = parser.parse_args()
    count = int(args.rate * args.seconds)
    with bench_environment() as settings:
        settings = settings.replace(topics={"tolls_alerts": "bench.tolls.alerts"})
        topics.ensure_topics(settings, settings.topics.tolls_events, settings.topics.tolls_alerts)
        customers.write_customers(settings, tolls.customers(args.customers, 1))
        spark = create_spark_session(settings, "lambdalake-bench-freshness")
        totals = tolls_stream.StreamTotals()
        query, processor = tolls_stream.start_query(spark, settings, until_idle=False,
                                                   totals=totals)
        start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=30)
        warm_count = int(args.rate * args.warm_up)
        wait_for(query, lambda: totals.batches > 0)  # the first micro-batch loads the state
        if warm_count:  # in the month before the measured one: its alerts are not measured
            earlier_month = start.replace(day=1) - dt.timedelta(days=20)
            paced(settings, tolls.TollsOptions(count=warm_count, seed=100, start=earlier_month,
                                               span=dt.timedelta(hours=2),
                                               customers=args.customers), args.rate).join()
            wait_for(query, lambda: totals.landed >= warm_count)
        warm = totals.landed

        options = tolls.TollsOptions(count=count, seed=7, start=start,
                                     span=dt.timedelta(minutes=30), customers=args.customers)
        alerts_at: dict[str, float] = {}

        def consume_alerts(stop: threading.Event) -> None:
            consumer = KafkaConsumer(settings.topics.tolls_alerts,
                                     bootstrap_servers=settings.kafka.bootstrap_servers,
                                     auto_offset_reset="earliest", consumer_timeout_ms=500)
            while not stop.is_set():
                for message in consumer:
                    alerts_at[json.loads(message.value)["transaction_id"]] = time.time()
            consumer.close()

        stop = threading.Event()
        alerts_thread = threading.Thread(target=consume_alerts, args=(stop,))
        alerts_thread.start()
        serving = Serving(settings)  # long-lived, opened before the measured sends
        serving.refresh()
        sent_file = Path(tempfile.mkdtemp(prefix="lambdalake-freshness-")) / "sent.tsv"
        producer = paced(settings, options, args.rate, sent_file)
        visible_at: list[float] = []
        deadline = time.monotonic() + args.seconds + 120
        while len(visible_at) < count and time.monotonic() < deadline:
            time.sleep(0.25)
            serving.refresh()
            seen = serving.con.execute(
                "select coalesce(sum(vehicle_count), 0) from tolls_plaza_revenue_30m").fetchone()[0]
            now = time.time()
            visible_at.extend([now] * (int(seen) - warm - len(visible_at)))
        producer.join()
        if producer.exitcode != 0:
            raise SystemExit(f"freshness: the producer process failed (exit {producer.exitcode})")
        time.sleep(5)
        stop.set()
        alerts_thread.join()
        query.stop()
        processor.close()
        sent = [line.split("\t") for line in sent_file.read_text().splitlines()]
        sent_at = [float(at) for _, at in sent]
        by_tx = {tx: float(at) for tx, at in sent}
        span = sent_at[-1] - sent_at[0] if len(sent_at) > 1 else 0.0
        freshness = [v - s for v, s in zip(visible_at, sent_at, strict=False)]
        latency = [alerts_at[tx] - by_tx[tx] for tx in alerts_at if tx in by_tx]
        print(f"rate {args.rate:.0f}/s for {args.seconds:.0f}s after a warm-up of {warm} events: "
              f"{len(sent_at)} events sent in {span:.1f}s "
              f"({len(sent_at) / max(span, 1e-9):,.0f}/s achieved), {len(visible_at)} visible; "
              "last micro-batches:")
        for line in totals.log[-12:]:
            print(f"  {line}")
        print(f"freshness (sent -> visible in a merged serving query): {percentiles(freshness)}")
        print(f"alert latency (crossing event sent -> alert on {settings.topics.tolls_alerts}): "
              f"{percentiles(latency)}")
        serving.close()
        spark.stop()


if __name__ == "__main__":
    main()
