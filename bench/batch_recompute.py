"""Batch recompute of every tolls report over N landed events, against DuckDB in the same run.

Usage: .venv/bin/python -m bench.batch_recompute [--events 10000000]

Writes N synthetic landed events straight into a landing zone (Spark, not through Kafka), then
times (1) the Spark batch job recomputing and publishing all four reports and (2) DuckDB
computing the same four reports over the same Delta snapshot (read through deltalake/Arrow), and
checks that both agree on row counts and totals. Prints both times and their ratio.
"""

from __future__ import annotations

import argparse
import time

import duckdb
from deltalake import DeltaTable
from pyspark.sql import functions as F

import schemas
from batch import tolls_reports
from bench.common import bench_environment
from lambdalake import lake
from lambdalake.groundtruth import TOLLS_REPORT_SQL
from lambdalake.spark import create_spark_session


def synthetic_landing(spark, n: int):  # noqa: ANN001, ANN201
    """N landed toll events: 10,000 customers, 12 plazas, 5 classes, over 30 days."""
    i = F.col("id")
    h = F.xxhash64(i)
    event_time = F.timestamp_seconds(F.lit(1_793_491_200) + (i * 2_592_000 / n).cast("long"))
    vehicle_class = (F.pmod(h, 5) + 1).cast("int")
    return spark.range(n).select(
        F.concat(F.lit("tx-"), i.cast("string")).alias("transaction_id"),
        F.format_string("C%05d", F.pmod(F.xxhash64(i, F.lit(1)), 10_000) + 1).alias("customer_id"),
        F.format_string("P%04d", F.pmod(h, 9999)).alias("plate"),
        F.format_string("P%02d", F.pmod(F.xxhash64(i, F.lit(2)), 12) + 1).alias("plaza_id"),
        (F.pmod(h, 6) + 1).cast("int").alias("lane"),
        vehicle_class.alias("vehicle_class"),
        (F.lit(2.5) * vehicle_class + F.pmod(h, 4) * 0.25).cast("decimal(12,2)").alias("amount"),
        F.lit("USD").alias("currency"),
        event_time.alias("event_time"),
        F.lit("tolls.events").alias("kafka_topic"), F.pmod(i, 2).cast("int").alias(
            "kafka_partition"), (i / 2).cast("long").alias("kafka_offset"),
        event_time.alias("kafka_timestamp"), event_time.alias("ingested_at"),
        F.to_date(event_time).alias("ingest_date"), F.lit(0).cast("long").alias(
            "ingest_batch_id"),
    ).select(*schemas.load("tolls_landing").column_names)


def land_synthetic(spark, settings, n: int) -> str:  # noqa: ANN001
    """Append N synthetic events to the settings' landing zone, saying how long; its path."""
    path = lake.ensure_table(spark, settings, "tolls_landing")
    t = time.monotonic()
    synthetic_landing(spark, n).write.format("delta").mode("append").save(path)
    print(f"wrote {n:,} landed events in {time.monotonic() - t:.1f}s", flush=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    args = parser.parse_args()
    with bench_environment(kafka=False) as settings:
        spark = create_spark_session(settings, "lambdalake-bench-batch")
        path = land_synthetic(spark, settings, args.events)

        t = time.monotonic()
        run = tolls_reports.run(spark, settings)
        spark_s = time.monotonic() - t
        print(f"spark batch job: {run.summary()}; wall {spark_s:.1f}s")
        counts = {name: lake.read_table(spark, settings, name).agg(
            F.count(F.lit(1)), F.sum(F.col(schemas.load(name).column_names[-1]))).first()
            for name in TOLLS_REPORT_SQL}
        spark.stop()

        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        t = time.monotonic()
        con.register("events", DeltaTable(path).to_pyarrow_dataset())
        for name, sql in TOLLS_REPORT_SQL.items():
            con.execute(f"CREATE TABLE {name} AS {sql}")
        duck_s = time.monotonic() - t
        print(f"duckdb, same reports over the same snapshot: {duck_s:.1f}s")
        for name in TOLLS_REPORT_SQL:
            got = con.execute(f"SELECT count(*), sum({schemas.load(name).column_names[-1]}) "
                              f"FROM {name}").fetchone()
            assert tuple(got) == tuple(counts[name]), (name, got, counts[name])
        print(f"both agree on every report (rows and totals); spark / duckdb = "
              f"{spark_s / duck_s:.1f}x")


if __name__ == "__main__":
    main()
