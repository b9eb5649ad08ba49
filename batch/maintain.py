"""Table maintenance: compact small files, remove old ones, checkpoint the Delta logs.

A streaming job that commits every second leaves thousands of small files a day in the landing,
speed and quarantine tables, and every batch run overwrites the batch views, leaving the old
versions' files behind. `lambdalake maintain` (or `lambdalake batch schedule --maintain-every 1d`)
does, table by table:

1. OPTIMIZE (compaction) of the tables the streaming job appends to: landing, speed rows,
   quarantine, alerts, Kafka gaps. Its commits are tagged `maintain:<run id>`; concurrent appends
   by the streaming job do not conflict with it.
2. VACUUM of those tables, the batch views, `batch_runs` and the reference tables: it deletes the
   files no version newer than the retention window still uses (`maintain.retain_hours`, 168 h
   by default, as Delta's own), and files no commit ever named (left by killed writers) older
   than that. A table's retention is lengthened, never shortened, so that it keeps every file
   of the versions still needed:
   - a batch view: the version its latest published run serves (`batch_runs.view_version`), also
     when a newer, unpublished run overwrote it since;
   - the landing zone: the cut-over of the latest published batch run (`landing_version`), and the
     version before the streaming job's last micro-batch (what it reads when it replays that
     micro-batch after a crash).
3. A checkpoint of each table's Delta log at its latest version (expired log files are cleaned up
   as Delta's `logRetentionDuration` says), so readers and writers never replay a long log.

The retention window is also how long a reader may keep a snapshot open (a notebook's `Serving`
between two refreshes, a long query) and the longest a writer may take from writing a file to
committing it: under one hour is refused unless `--no-retention-check` says no job writes to the
lake meanwhile (as Delta's own `retentionDurationCheck`).

Usage (local, offline, with the JVM cache from `make setup`):
    lambdalake maintain [--retain-hours 168] [--no-compact] [--no-vacuum]
Usage on a cluster:
    spark-submit --master yarn \
      --packages io.delta:delta-spark_2.12:3.3.2,org.apache.spark:spark-sql-kafka-0-10_2.12:3.5.7 \
      --py-files dist/lambdalake-jobs.zip batch/maintain.py --retain-hours 168
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lambdalake.config import Settings, load_settings
from lambdalake.domains import CLICKS, DOMAINS, TOLLS
from lambdalake.errors import LambdalakeError

if TYPE_CHECKING:  # pyspark is imported when a job runs, not by `lambdalake --help`
    from pyspark.sql import SparkSession

# appended to by the streaming jobs every micro-batch (the tolls job's alerts too): compacted
COMPACTED = (*TOLLS.stream_tables, "tolls_alerts", *CLICKS.stream_tables)
# overwritten (the batch views, see `vacuumed_only`) or appended to by batch runs and the
# command-line tools: only vacuumed
OTHER_TABLES = ("batch_runs", "tolls_customers", "tolls_plazas")
MIN_RETAIN_HOURS = 1.0
# added to the age of the oldest file a protected version needs: for the time between this
# computation and VACUUM's own, and for clocks a little apart
MARGIN_HOURS = 1 / 60
MAINTAIN_TAG = "maintain:"
_CONFLICT_RETRIES = 3


@dataclass(frozen=True)
class Protected:
    """A version of a table whose files must stay, and why."""

    version: int
    reason: str


@dataclass(frozen=True)
class TableMaintenance:
    """What maintenance did to one table."""

    table: str
    files_before: int  # data files on disk
    files_after: int
    in_use_before: int  # data files of the latest version
    in_use_after: int
    bytes_removed: int
    retain_hours: int | None  # None: not vacuumed
    protected: Protected | None
    checkpoint_version: int | None
    seconds: float
    note: str = ""

    def line(self) -> str:
        """One line for the log."""
        parts = [f"{self.in_use_before} files in use -> {self.in_use_after}, "
                 f"{self.files_before} on disk -> {self.files_after}"]
        if self.bytes_removed:
            parts.append(f"{self.bytes_removed / 1e6:.1f} MB removed")
        if self.retain_hours is not None:
            kept = f"kept {self.retain_hours:g} h of history"
            if self.protected is not None:
                kept += f" (v{self.protected.version} is {self.protected.reason})"
            parts.append(kept)
        if self.checkpoint_version is not None:
            parts.append(f"checkpoint at v{self.checkpoint_version}")
        if self.note:
            parts.append(self.note)
        return f"maintain: {self.table}: {'; '.join(parts)} ({self.seconds:.1f}s)"


@dataclass(frozen=True)
class MaintainReport:
    """What a maintenance run did."""

    tables: list[TableMaintenance]
    seconds: float

    def summary(self) -> str:
        """One line: files before and after, over all tables."""
        before = sum(t.files_before for t in self.tables)
        after = sum(t.files_after for t in self.tables)
        in_use_before = sum(t.in_use_before for t in self.tables)
        in_use_after = sum(t.in_use_after for t in self.tables)
        removed = sum(t.bytes_removed for t in self.tables)
        return (f"maintained {len(self.tables)} tables: {in_use_before} files in use -> "
                f"{in_use_after}, {before} on disk -> {after}, {removed / 1e6:.1f} MB removed, "
                f"in {self.seconds:.1f}s")


def retention_hours(retain_hours: float, now_ms: int | None = None,
                    oldest_needed_ms: int | None = None) -> int:
    """The VACUUM retention of a table in whole hours (VACUUM rounds what it is given to whole
    hours): `retain_hours` rounded up, lengthened (with `MARGIN_HOURS` to spare) to keep a file
    that VACUUM judges by time `oldest_needed_ms`, if any.

    VACUUM deletes a file removed before now minus the retention (by the time in its remove
    action; once that has expired from the log, by the file's own modification time)."""
    hours = retain_hours
    if now_ms is not None and oldest_needed_ms is not None:
        hours = max(hours, max(0.0, (now_ms - oldest_needed_ms) / 3_600_000) + MARGIN_HOURS)
    return math.ceil(round(hours, 6))


def protected_versions(spark: SparkSession, settings: Settings) -> dict[str, Protected]:
    """The version of each table whose files must stay (see the module docstring)."""
    from pyspark.sql import functions as F

    from lambdalake import lake

    protected: dict[str, Protected] = {}
    runs = lake.read_table(spark, settings, "batch_runs")
    latest = (runs.groupBy("view_name")
              .agg(F.max_by("view_version", "published_at").alias("view_version"),
                   F.max_by("landing_version", "published_at").alias("landing_version"),
                   F.max("published_at").alias("published_at"))
              .collect())
    for row in latest:
        protected[row["view_name"]] = Protected(int(row["view_version"]), "served: published")
    for domain in DOMAINS:  # a landing zone's cut-over is that of its own domain's runs
        landing = domain.landing
        cutover = max((r for r in latest if r["view_name"] in domain.batch_views),
                      key=lambda r: r["published_at"], default=None)
        landing_path = lake.table_path(settings, landing)
        recent = (lake.CommitLog(spark, landing_path).recent(50)
                  if lake.delta_table(spark, landing_path) is not None else [])
        streamed = [v for v, tag in recent if not (tag or "").startswith(MAINTAIN_TAG)]
        candidates = []
        if cutover is not None:
            candidates.append(Protected(int(cutover["landing_version"]),
                                        "the cut-over of the latest published batch run"))
        if recent:
            before_last = (streamed[0] if streamed else recent[-1][0]) - 1
            candidates.append(Protected(max(before_last, 0), "what the streaming job reads "
                                                             "when it replays its last "
                                                             "micro-batch"))
        if candidates:
            protected[landing] = min(candidates, key=lambda p: p.version)
    return protected


def _oldest_needed_ms(spark: SparkSession, path: str, version: int) -> int | None:
    """The time by which VACUUM judges the oldest of the files that version `version` of the
    table at `path` has and its latest version no longer has (when it was removed, or when it
    was written if that remove has expired from the log); None if the latest has them all."""
    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F

    log, latest = _snapshot(spark, path)
    none = spark._jvm.scala.Option.empty()
    if version >= latest.version():
        return None

    def files(snapshot) -> DataFrame:  # noqa: ANN001 (a JVM Snapshot)
        return DataFrame(snapshot.allFiles().toDF(), spark)

    gone = (files(log.getSnapshotAt(version, none, none)).select("path", "modificationTime")
            .join(files(latest).select("path"), "path", "left_anti"))
    removed = DataFrame(latest.tombstones().toDF(), spark).select("path", "deletionTimestamp")
    oldest = (gone.join(removed, "path", "left")
              .agg(F.min(F.coalesce("deletionTimestamp", "modificationTime"))).first()[0])
    return None if oldest is None else int(oldest)


def _content(spark: SparkSession, path: str) -> tuple[int, int]:
    """(data files, bytes) under the table at `path`, its Delta log excepted."""
    from lambdalake import lake

    fs, log = lake.delta_log(spark, path)
    whole = fs.getContentSummary(log.getParent())
    logs = fs.getContentSummary(log)
    return (int(whole.getFileCount() - logs.getFileCount()),
            int(whole.getLength() - logs.getLength()))


@contextmanager
def _conf(spark: SparkSession, values: dict[str, str]) -> Iterator[None]:
    """Set Spark SQL settings for the duration of the block, then restore them."""
    before = {key: spark.conf.get(key, None) for key in values}
    for key, value in values.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def _compact(spark: SparkSession, path: str, run_id: str) -> str:
    """OPTIMIZE the table at `path`; retried when a concurrent writer removed files it was
    compacting (e.g. a batch run pruning speed rows). Returns a note, empty when all went well."""
    from delta.tables import DeltaTable

    for attempt in range(1, _CONFLICT_RETRIES + 1):
        try:
            with _conf(spark, {"spark.databricks.delta.commitInfo.userMetadata":
                               f"{MAINTAIN_TAG}{run_id}"}):
                DeltaTable.forPath(spark, path).optimize().executeCompaction()
            return ""
        except Exception as exc:  # noqa: BLE001 (Delta's concurrent-modification exceptions)
            if "Concurrent" not in type(exc).__name__ + str(exc)[:300]:
                raise
            if attempt == _CONFLICT_RETRIES:
                return f"compaction skipped: {_CONFLICT_RETRIES} conflicts with other writers"
            time.sleep(attempt)
    return ""


def _snapshot(spark: SparkSession, path: str):  # noqa: ANN202 (a JVM DeltaLog and Snapshot)
    """The Delta log of the table at `path` and its latest snapshot."""
    none = spark._jvm.scala.Option.empty()
    log = spark._jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, path)
    return log, log.update(False, none, none)


def _checkpoint(spark: SparkSession, path: str) -> tuple[int, int]:
    """Write a checkpoint of the log of the table at `path` at its latest version (and clean up
    expired log files); return that version and its number of data files."""
    log, snapshot = _snapshot(spark, path)
    log.checkpointAndCleanUpDeltaLog(snapshot, spark._jvm.scala.Option.empty())
    return int(snapshot.version()), int(snapshot.numOfFiles())


def _retention(spark: SparkSession, path: str, retain_hours: float,
               protected: Protected | None) -> int | None:
    """The VACUUM retention of the table at `path`, or None when the files of its protected
    version cannot be known (its log has expired)."""
    if protected is None:
        return retention_hours(retain_hours)
    try:
        oldest = _oldest_needed_ms(spark, path, protected.version)
    except Exception:  # noqa: BLE001 (e.g. the version's log files were cleaned up)
        return None
    return retention_hours(retain_hours, int(time.time() * 1000), oldest)


def maintain_table(spark: SparkSession, settings: Settings, table: str, *, retain_hours: float,
                   protected: Protected | None, compact: bool, vacuum: bool,
                   run_id: str) -> TableMaintenance | None:
    """Maintain one table (None when it does not exist yet)."""
    from lambdalake import lake

    path = lake.table_path(settings, table)
    delta = lake.delta_table(spark, path)
    if delta is None:
        return None
    began = time.monotonic()
    files_before, bytes_before = _content(spark, path)
    in_use_before = int(_snapshot(spark, path)[1].numOfFiles())
    note = _compact(spark, path, run_id) if compact and table in COMPACTED else ""
    hours = None
    if vacuum:
        hours = _retention(spark, path, retain_hours, protected)
        if hours is None:  # keep every file rather than guess
            note = "; ".join(filter(None, [note, f"not vacuumed: v{protected.version} can no "
                                           "longer be read"]))
        else:
            delta.vacuum(hours)
    files_after, bytes_after = _content(spark, path)
    version, in_use_after = _checkpoint(spark, path)
    return TableMaintenance(table, files_before, files_after, in_use_before, in_use_after,
                            max(0, bytes_before - bytes_after), hours, protected, version,
                            time.monotonic() - began, note)


def run(spark: SparkSession, settings: Settings, retain_hours: float | None = None, *,
        compact: bool = True, vacuum: bool = True, retention_check: bool = True,
        log: Callable[[str], None] = print) -> MaintainReport:
    """Maintain every lake table of the tolls and clicks pipelines (see the module docstring)."""
    hours = settings.maintain.retain_hours if retain_hours is None else retain_hours
    if hours < 0:
        raise LambdalakeError(f"--retain-hours must be 0 or more, got {hours:g}")
    if vacuum and retention_check and hours < MIN_RETAIN_HOURS:
        raise LambdalakeError(
            f"a retention of {hours:g} h could delete files that a running job has written and "
            f"not committed yet, or that a reader is reading: use at least "
            f"{MIN_RETAIN_HOURS:g} h, or --no-retention-check when no job writes to the lake")
    began = time.monotonic()
    run_id = uuid.uuid4().hex[:12]
    protected = protected_versions(spark, settings)
    done = []
    # Delta's own check refuses less than the table's deletedFileRetentionDuration (7 days);
    # ours above replaces it. Vacuum lists files with a task per parallelism slot (10,000 by
    # default: a minute for a small table on two cores).
    with _conf(spark, {"spark.databricks.delta.retentionDurationCheck.enabled": "false",
                       "spark.sql.sources.parallelPartitionDiscovery.parallelism":
                           str(max(2, spark.sparkContext.defaultParallelism))}):
        batch_views = [view for domain in DOMAINS for view in domain.batch_views]
        for table in (*COMPACTED, *batch_views, *OTHER_TABLES):
            result = maintain_table(spark, settings, table, retain_hours=hours,
                                    protected=protected.get(table), compact=compact,
                                    vacuum=vacuum, run_id=run_id)
            if result is not None:
                log(result.line())
                done.append(result)
    return MaintainReport(done, time.monotonic() - began)


def main(argv: list[str] | None = None) -> int:
    """Entry point for spark-submit and `lambdalake maintain`."""
    from lambdalake.spark import create_spark_session

    args = build_parser().parse_args(argv)
    settings = load_settings()
    return run_with_options(create_spark_session(settings, "lambdalake-maintain"), settings,
                            args)


def run_with_options(spark: SparkSession, settings: Settings, args: argparse.Namespace) -> int:
    """Run with the options of `add_arguments`, printing a line per table and a summary."""
    report = run(spark, settings, args.retain_hours, compact=not args.no_compact,
                 vacuum=not args.no_vacuum, retention_check=not args.no_retention_check,
                 log=lambda line: print(line, flush=True))
    if not report.tables:
        print(f"maintain: nothing to maintain: no lake tables under {settings.lake.root} yet",
              flush=True)
    else:
        print(f"maintain: {report.summary()}", flush=True)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `lambdalake maintain` (and of this job under spark-submit)."""
    parser.add_argument("--retain-hours", type=float, default=None,
                        help="keep files removed less than this long ago (default: "
                             "maintain.retain_hours, 168)")
    parser.add_argument("--no-compact", action="store_true", help="do not OPTIMIZE")
    parser.add_argument("--no-vacuum", action="store_true", help="do not VACUUM")
    parser.add_argument("--no-retention-check", action="store_true",
                        help="allow a retention under 1 h (only when no job writes to the lake)")


def build_parser() -> argparse.ArgumentParser:
    """The job's argument parser."""
    parser = argparse.ArgumentParser(prog="batch/maintain.py",
                                     description=__doc__.split("\n")[0])
    add_arguments(parser)
    return parser


if __name__ == "__main__":
    sys.exit(main())
