"""The tolls batch job: recompute the batch views from the whole landing zone, atomically.

It reads the landing zone at one Delta version (the cut-over), recomputes every view with the same
transformations the speed layer uses, overwrites each view in one Delta commit, and then publishes
the run in `batch_runs`: one row per view with the view's Delta version and the cut-over. The
serving layer reads each view at its published version, so a reader never sees a half-written
run, and a failed run leaves the last published version in place.

Usage (local, offline, with the JVM cache from `make setup`):
    lambdalake batch run tolls-reports
Usage on a cluster:
    spark-submit --master yarn \
      --packages io.delta:delta-spark_2.12:3.3.2,org.apache.spark:spark-sql-kafka-0-10_2.12:3.5.7 \
      --py-files dist/lambdalake-jobs.zip batch/tolls_reports.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

import schemas
from batch.tolls.views import (
    customer_monthly_spend,
    customer_spend_10m,
    daily_class_traffic,
    plaza_revenue_30m,
)
from lambdalake import faults, lake
from lambdalake.config import Settings, load_settings
from lambdalake.errors import LambdalakeError
from lambdalake.spark import create_spark_session

BATCH_VIEWS: dict[str, Callable[[DataFrame], DataFrame]] = {
    "tolls_customer_monthly_spend": customer_monthly_spend(),
    "tolls_customer_spend_10m": customer_spend_10m(),
    "tolls_plaza_revenue_30m": plaza_revenue_30m(),
    "tolls_daily_class_traffic": daily_class_traffic(),
}
# Views with about as many groups as events: a map-side partial aggregation reduces nothing,
# so the events are shuffled by these columns first, into smaller hash maps (10M events: the
# 10-minute view 22 s -> 18.6 s; BENCHMARKS.md).
PRE_SHUFFLE = {"tolls_customer_spend_10m": ("customer_id",)}
# The speed views whose rows a published run covers (see `prune_speed_views`), and the table
# that stores them with the streaming job's progress rows.
SPEED_VIEWS = ("speed_tolls_customer_spend_10m", "speed_tolls_plaza_revenue_30m",
               "speed_tolls_daily_class_traffic")
SPEED_ROWS = "tolls_speed_rows"


@dataclass(frozen=True)
class BatchRun:
    """What a batch run published."""

    run_id: str
    landing_version: int
    landed_event_count: int
    view_versions: dict[str, int]
    seconds: float
    pruned_through: int | None = None

    def summary(self) -> str:
        """One line: what the run published and its cut-over."""
        return (f"run {self.run_id[:8]} published {', '.join(self.view_versions)} over "
                f"{self.landed_event_count} landed events (cut-over: landing "
                f"v{self.landing_version}) in {self.seconds:.1f}s")


def read_landing(spark: SparkSession, settings: Settings) -> tuple[int, DataFrame]:
    """The landing zone's latest Delta version and its events as of that version."""
    path = lake.table_path(settings, "tolls_landing")
    table = lake.delta_table(spark, path)
    if table is None:
        raise LambdalakeError(f"no landing zone at {path} yet: run the streaming job first "
                              "(`lambdalake speed run --until-idle`)")
    version = int(table.history(1).first()["version"])
    return version, spark.read.format("delta").option("versionAsOf", version).load(path)


def run(spark: SparkSession, settings: Settings) -> BatchRun:
    """Recompute and publish every tolls batch view; return what was published."""
    started_at = dt.datetime.now(dt.timezone.utc)
    started = time.monotonic()
    run_id = uuid.uuid4().hex
    landing_version, events = read_landing(spark, settings)
    # Not cached: each view reads only its columns of the snapshot, and the count comes from
    # the Delta log's file statistics. Caching all the landed columns first cost more than the
    # four reads it saved (10M events: 81 s -> 32 s for the four views, BENCHMARKS.md).
    count = events.count()
    versions = {}
    for name, view in BATCH_VIEWS.items():
        path = lake.table_path(settings, name)
        tag = f"batch:{run_id}:{name}"
        source = (events.repartition(_pre_shuffle_partitions(spark, count), *key)
                  if (key := PRE_SHUFFLE.get(name)) else events)
        rows = source.transform(view).select(*schemas.load(name).column_names)
        lake.write_tagged(rows, path, "overwrite", tag)
        versions[name] = lake.commit_version(spark, path, tag)
        faults.kill_point("batch:after-view-write")
    published_at = dt.datetime.now(dt.timezone.utc)
    log = spark.createDataFrame(
        [(run_id, name, version, landing_version, count, started_at, published_at)
         for name, version in versions.items()],
        schema=schemas.spark_schema("batch_runs"))
    runs_path = lake.ensure_table(spark, settings, "batch_runs")
    lake.write_tagged(log, runs_path, "append", f"batch:{run_id}:publish")
    pruned = prune_speed_views(spark, settings)
    return BatchRun(run_id, landing_version, count, versions, time.monotonic() - started, pruned)


def _pre_shuffle_partitions(spark: SparkSession, event_count: int) -> int:
    """Partitions for a `PRE_SHUFFLE` view: about 500,000 events each, from one to eight per
    core (small landing zones stay in few files)."""
    cores = spark.sparkContext.defaultParallelism
    return max(cores, min(8 * cores, event_count // 500_000))


def prune_speed_views(spark: SparkSession, settings: Settings) -> int | None:
    """Delete speed rows that the previous published run already covered; return its cut-over.

    Rows covered by the latest run stop counting at once; they are deleted one run later, so a
    reader that loaded the previous run's cut-over a moment ago still finds every row it needs.
    This keeps the speed tables bounded by about two batch intervals of data.
    """
    runs = (spark.read.format("delta").load(lake.table_path(settings, "batch_runs"))
            .groupBy("run_id").agg(F.max("published_at").alias("at"),
                                   F.min("landing_version").alias("cutover"))
            .orderBy(F.col("at").desc()).limit(2).collect())
    if len(runs) < 2:
        return None
    cutover = int(runs[1]["cutover"])
    path = lake.table_path(settings, SPEED_ROWS)
    table = lake.delta_table(spark, path)
    if table is not None:  # one commit; the progress rows stay
        table.delete(
            F.col("view_name").isin(*SPEED_VIEWS) & (F.col("landing_version") <= cutover))
    return cutover


def main(argv: list[str] | None = None) -> int:
    """Entry point for spark-submit and `lambdalake batch run tolls-reports`."""
    parser = argparse.ArgumentParser(prog="batch/tolls_reports.py",
                                     description=__doc__.split("\n")[0])
    parser.parse_args(argv)
    settings = load_settings()
    spark = create_spark_session(settings, "lambdalake-batch-tolls-reports")
    result = run(spark, settings)
    print(f"batch: {result.summary()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
