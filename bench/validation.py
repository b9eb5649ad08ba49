"""Record validation alone: records/s of `validate_records` on cached Kafka-shaped records.

Usage: .venv/bin/python -m bench.validation [--records 250000] [--malformed 0.01 1.0]
                                            [--domain tolls|clicks]

Generated records of the domain (toll events by default; with the given fractions of malformed
ones) are put in a cached DataFrame with Kafka's columns, so neither Kafka nor the disk is
measured: only the parse and the checks.
For reference it also times the parts alone (UTF-8 decode, one JSON parse, the key listing).
Each figure is the best of three runs. Then it caches the validated records as the streaming job
caches its micro-batch (uncompressed) and compressed, and prints the time and memory of each.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from collections.abc import Callable, Iterable

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from bench.common import bench_environment
from lambdalake.generators import clicks, stream, tolls
from lambdalake.spark import create_spark_session
from speed import validate
from speed.clicks_stream import CLICKS
from speed.stream import CACHE_COMPRESSED, StreamDomain
from speed.tolls.validate import toll_rules
from speed.tolls_stream import TOLLS

# each domain: its stream, and its records from the stream options (`count`, `seed`, ...)
DOMAINS: dict[str, tuple[StreamDomain, Callable[..., Iterable[stream.Record]]]] = {
    "tolls": (TOLLS, lambda **options: tolls.toll_records(
        tolls.TollsOptions(customers=10_000, **options))),
    "clicks": (CLICKS, lambda **options: clicks.click_records(clicks.ClicksOptions(**options))),
}

KAFKA_SCHEMA = T.StructType([
    T.StructField("key", T.BinaryType()), T.StructField("value", T.BinaryType()),
    T.StructField("topic", T.StringType()), T.StructField("partition", T.IntegerType()),
    T.StructField("offset", T.LongType()), T.StructField("timestamp", T.TimestampType()),
])


def kafka_frame(spark: SparkSession, count: int, malformed: float, domain: str = "tolls"
                ) -> DataFrame:
    """Cached rows shaped like Spark's Kafka source output, holding generated records of
    `domain`."""
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=6)
    records = list(DOMAINS[domain][1](count=count, seed=1, start=start,
                                      span=dt.timedelta(hours=6),
                                      faults=stream.Faults(malformed_fraction=malformed)))
    now = dt.datetime.now(dt.timezone.utc)
    table = pa.table({"key": [r.key for r in records], "value": [r.value for r in records],
                      "topic": ["bench"] * count, "partition": [i % 2 for i in range(count)],
                      "offset": list(range(count)), "timestamp": [now] * count})
    frame = (spark.createDataFrame(table.to_pandas(), KAFKA_SCHEMA).repartition(2)
             .withColumn("ingested_at", F.lit(now).cast("timestamp")).persist())
    frame.count()
    return frame


def best_of_three(run: Callable[[], None]) -> float:
    times = []
    for _ in range(3):
        began = time.monotonic()
        run()
        times.append(time.monotonic() - began)
    return min(times)


def cached_size(spark: SparkSession, df: DataFrame, compressed: bool) -> tuple[float, int]:
    """Seconds to cache `df` (the streaming job's micro-batch cache) and the bytes the cache
    holds in memory, with Spark's in-memory columnar compression on or off."""
    def cached_rdds() -> dict[int, int]:  # RDD id -> bytes in memory
        return {info.id(): info.memSize()
                for info in spark.sparkContext._jsc.sc().getRDDStorageInfo()}

    before = spark.conf.get(CACHE_COMPRESSED)
    try:
        spark.conf.set(CACHE_COMPRESSED, str(compressed).lower())
        earlier = cached_rdds()
        cached = df.persist()
        began = time.monotonic()
        cached.count()
        seconds = time.monotonic() - began
        size = sum(size for rdd, size in cached_rdds().items() if rdd not in earlier)
        cached.unpersist(blocking=True)
        return seconds, size
    finally:
        spark.conf.set(CACHE_COMPRESSED, before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=250_000)
    parser.add_argument("--malformed", type=float, nargs="+", default=[0.01, 1.0])
    parser.add_argument("--domain", choices=sorted(DOMAINS), default="tolls")
    args = parser.parse_args()
    domain = DOMAINS[args.domain][0]
    with bench_environment(kafka=False) as settings:
        spark = create_spark_session(settings, "lambdalake-bench-validation")

        def consume(df: DataFrame) -> Callable[[], None]:
            return lambda: df.write.format("noop").mode("overwrite").save()

        for fraction in args.malformed:
            raw = kafka_frame(spark, args.records, fraction, args.domain)
            text = F.decode("value", "UTF-8")
            rules = domain.rules(settings.validation, {})
            validated = raw.transform(validate.validate_records(rules))
            parts = {
                "UTF-8 decode": raw.select(text),
                "one from_json (spec's types)": raw.select(F.from_json(
                    text, validate._typed_schema(rules))),
                "json_object_keys": raw.select(F.json_object_keys(text)),
                "validate_records (all of it)": validated,
            }
            if domain is TOLLS:
                parts["  the same, with a plazas table"] = raw.transform(
                    validate.validate_records(toll_rules(settings.validation,
                                                         frozenset(tolls.PLAZAS))))
            print(f"{args.records:,} {args.domain} records, {fraction:.0%} malformed:")
            for name, df in parts.items():
                seconds = best_of_three(consume(df))
                print(f"  {name:36s} {seconds:6.2f}s  {args.records / seconds:>10,.0f} records/s")
            for compressed in (False, True):  # the streaming job caches its batch uncompressed
                seconds, size = cached_size(spark, validated, compressed)
                name = "compressed" if compressed else "uncompressed (as the job)"
                print(f"  {'cached, ' + name:36s} {seconds:6.2f}s  "
                      f"{size / 2**20:8,.1f} MB in memory ({size / args.records:,.0f} B/record)")
            raw.unpersist()
        spark.stop()


if __name__ == "__main__":
    main()
