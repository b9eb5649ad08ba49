"""The batch job of a domain: recompute its batch views from the whole landing zone, atomically.

It reads the domain's landing zone at one Delta version (the cut-over), recomputes every view with
the same transformations the speed layer uses, overwrites each view in one Delta commit, and then
publishes the run in `batch_runs`: one row per view with the view's Delta version and the
cut-over. The serving layer reads each view at its published version, so a reader never sees a
half-written run, and a failed run leaves the last published version in place.

The jobs themselves are `batch/tolls_reports.py` and `batch/clicks_reports.py` (their `main`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

import schemas
from lambdalake import faults, lake
from lambdalake.config import Settings, load_settings
from lambdalake.domains import Domain, same_names
from lambdalake.errors import LambdalakeError
from lambdalake.spark import create_spark_session


@dataclass(frozen=True)
class BatchDomain:
    """A domain's batch job: its names (landing zone, speed rows) and its batch views."""

    names: Domain  # its tables, job name and views (lambdalake/domains.py)
    views: Mapping[str, Callable[[DataFrame], DataFrame]]  # batch view -> its transformation
    # views with about as many groups as events: the events are shuffled by these columns
    # first, into smaller hash maps (a map-side partial aggregation would reduce nothing)
    pre_shuffle: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        same_names(f"{self.names.batch_job} views", tuple(self.views), self.names.batch_views)


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


def read_landing(spark: SparkSession, settings: Settings, landing: str
                 ) -> tuple[int, DataFrame]:
    """A landing zone's latest Delta version and its events as of that version."""
    path = lake.table_path(settings, landing)
    table = lake.delta_table(spark, path)
    if table is None:
        raise LambdalakeError(f"no landing zone at {path} yet: run the streaming job first "
                              "(`lambdalake speed run --until-idle`)")
    version = int(table.history(1).first()["version"])
    return version, spark.read.format("delta").option("versionAsOf", version).load(path)


def run(domain: BatchDomain, spark: SparkSession, settings: Settings) -> BatchRun:
    """Recompute and publish every batch view of `domain`; return what was published."""
    started_at = dt.datetime.now(dt.timezone.utc)
    started = time.monotonic()
    run_id = uuid.uuid4().hex
    landing_version, events = read_landing(spark, settings, domain.names.landing)
    # Not cached: each view reads only its columns of the snapshot, and the count comes from
    # the Delta log's file statistics. Caching all the landed columns first cost more than the
    # four reads it saved (10M events: 81 s -> 32 s for the four views, BENCHMARKS.md).
    count = events.count()
    versions = {}
    for name, view in domain.views.items():
        path = lake.table_path(settings, name)
        tag = f"batch:{run_id}:{name}"
        source = (events.repartition(_pre_shuffle_partitions(spark, count), *key)
                  if (key := domain.pre_shuffle.get(name)) else events)
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
    pruned = prune_speed_views(domain, spark, settings)
    return BatchRun(run_id, landing_version, count, versions, time.monotonic() - started, pruned)


def _pre_shuffle_partitions(spark: SparkSession, event_count: int) -> int:
    """Partitions for a `pre_shuffle` view: about 500,000 events each, from one to eight per
    core (small landing zones stay in few files)."""
    cores = spark.sparkContext.defaultParallelism
    return max(cores, min(8 * cores, event_count // 500_000))


def prune_speed_views(domain: BatchDomain, spark: SparkSession, settings: Settings
                      ) -> int | None:
    """Delete the domain's speed rows that its previous published run already covered; return
    that run's cut-over.

    Rows covered by the latest run stop counting at once; they are deleted one run later, so a
    reader that loaded the previous run's cut-over a moment ago still finds every row it needs.
    This keeps the speed tables bounded by about two batch intervals of data.
    """
    runs = (spark.read.format("delta").load(lake.table_path(settings, "batch_runs"))
            .where(F.col("view_name").isin(*domain.views))  # this domain's runs only
            .groupBy("run_id").agg(F.max("published_at").alias("at"),
                                   F.min("landing_version").alias("cutover"))
            .orderBy(F.col("at").desc()).limit(2).collect())
    if len(runs) < 2:
        return None
    cutover = int(runs[1]["cutover"])
    path = lake.table_path(settings, domain.names.speed_rows)
    table = lake.delta_table(spark, path)
    if table is not None:  # one commit; the progress rows stay
        table.delete(F.col("view_name").isin(*domain.names.speed_views)
                     & (F.col("landing_version") <= cutover))
    return cutover


def main(domain: BatchDomain, argv: list[str] | None, doc: str) -> int:
    """The body of a domain's batch job entry point (spark-submit, `lambdalake batch run`)."""
    parser = argparse.ArgumentParser(prog=f"batch/{domain.names.batch_job.replace('-', '_')}.py",
                                     description=doc.split("\n")[0])
    parser.parse_args(argv)
    settings = load_settings()
    spark = create_spark_session(settings, f"lambdalake-batch-{domain.names.batch_job}")
    result = run(domain, spark, settings)
    print(f"batch: {result.summary()}", flush=True)
    return 0
