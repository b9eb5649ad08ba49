"""Speed-layer throughput: N events already in Kafka, processed to landing + speed views.

Usage: .venv/bin/python -m bench.speed_throughput [--events 1000000] [--max-per-batch 500000]
Prints events/s of the streaming job (until-idle), excluding producing and JVM start-up, and the
median and slowest wall time of its warm micro-batches (all but the first). With small batches,
e.g. `--events 100000 --max-per-batch 5000`, that median is the fixed cost of a micro-batch.
With `--alerting-customers N` the events go to N customers who have monthly thresholds, so most
micro-batches raise alerts; it then also prints the median of the warm micro-batches that raised
alerts, of those that did not, and of their `alerts` phase.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import statistics
import time

from bench.common import bench_environment, produce_all
from lambdalake import customers, topics
from lambdalake.generators import tolls
from lambdalake.spark import create_spark_session
from speed import tolls_stream


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--max-per-batch", type=int, default=500_000)
    parser.add_argument("--alerting-customers", type=int, default=0,
                        help="send the events to this many customers with thresholds")
    args = parser.parse_args()
    with bench_environment() as settings:
        settings = settings.replace(kafka={"max_offsets_per_trigger": args.max_per_batch})
        start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=6)
        options = tolls.TollsOptions(count=args.events, seed=1, start=start,
                                     span=dt.timedelta(hours=6),
                                     customers=args.alerting_customers or 10_000)
        if args.alerting_customers:
            customers.write_customers(settings, tolls.customers(args.alerting_customers, 1))
        topics.ensure_topics(settings, settings.topics.tolls_events)
        began = time.monotonic()
        sent = produce_all(settings.kafka.bootstrap_servers, settings.topics.tolls_events,
                           tolls.toll_records(options))
        seconds = time.monotonic() - began
        print(f"produced {sent} events in {seconds:.1f}s ({sent / seconds:,.0f}/s, "
              "confluent-kafka; not timed)")
        spark = create_spark_session(settings, "lambdalake-bench-throughput")
        began = time.monotonic()
        totals = tolls_stream.run(spark, settings, until_idle=True)
        seconds = time.monotonic() - began
        print(f"speed layer: {totals.landed} events landed + speed views in {seconds:.1f}s over "
              f"{totals.batches} micro-batches = {totals.read / seconds:,.0f} events/s")
        warm = totals.seconds[1:]
        if warm:
            print(f"warm micro-batches (up to {args.max_per_batch:,} events): median "
                  f"{statistics.median(warm):.2f}s, slowest {max(warm):.2f}s (n={len(warm)})")
        if args.alerting_customers:
            print(alert_figures(totals.log[1:], totals.seconds[1:]))
        spark.stop()


def alert_figures(lines: list[str], seconds: list[float]) -> str:
    """Medians of the micro-batches that raised alerts and of those that did not, from their
    log lines, and of the alerts phase."""
    with_alerts, without, phase = [], [], []
    for line, took in zip(lines, seconds, strict=True):
        sent = re.search(r", alerts (\d+)", line)
        raised = bool(sent and int(sent.group(1)))
        (with_alerts if raised else without).append(took)
        if raised:
            phase += [float(m.group(1)) for m in re.finditer(r", alerts (\d+\.\d+)", line)]
    def median(values: list[float]) -> str:
        return f"{statistics.median(values):.2f}s (n={len(values)})" if values else "none"
    return (f"warm micro-batches with alerts: median {median(with_alerts)}, their alerts phase "
            f"{median(phase)}; without alerts: median {median(without)}")


if __name__ == "__main__":
    main()
