"""Where each table and checkpoint lives, and the Delta writes the jobs share (at the edges)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import schemas
from lambdalake import faults
from lambdalake.config import Settings, local_path
from lambdalake.errors import LambdalakeError

if TYPE_CHECKING:  # Spark is imported where it is used: the serving layer reads without it
    from delta.tables import DeltaTable
    from pyspark.sql import DataFrame, SparkSession


def table_path(settings: Settings, name: str) -> str:
    """Location of table `name`: `<lake root>/<layer>/<name>` (layer from its spec). A table
    stored in a union table (`schemas.stored_in`) has no location of its own: read the union
    and keep its rows (`speed.union_rows.member_rows`)."""
    union = schemas.stored_in(name)
    if union is not None:
        raise ValueError(f"{name} is stored in the table {union}, not at a path of its own")
    layer = schemas.load(name).layer
    return f"{settings.lake.root.rstrip('/')}/{layer}/{name}"


def delta_uri(path: str) -> str:
    """The URI of a lake path for `deltalake` (delta-rs), which spells s3a:// as s3://."""
    return "s3://" + path[len("s3a://"):] if path.startswith("s3a://") else path


def docs_folder(settings: Settings) -> Path | None:
    """Where runs write their Great Expectations Data Docs: `<lake>/docs/` on a local lake
    (None on an object store)."""
    root = local_path(settings.lake.root)
    return None if root is None else root / "docs"


def checkpoint_path(settings: Settings, query: str) -> str:
    """Checkpoint location of streaming query `query`."""
    return f"{settings.checkpoint.root.rstrip('/')}/{query}"


# A file of a Delta log that makes it a table: a commit or a checkpoint (not a `.tmp` file left
# by a writer killed before its commit's rename, nor a `.crc` or `_last_checkpoint`).
_COMMITTED = re.compile(r"^\d{20}\.(json|checkpoint\..*)$")


def _hadoop_path(spark: SparkSession, path: str):  # noqa: ANN202 (Hadoop FileSystem, Path)
    """The Hadoop file system and path of `path` (any Hadoop URI)."""
    hadoop_path = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hadoop_path


def delta_log(spark: SparkSession, path: str):  # noqa: ANN201 (Hadoop FileSystem, Path)
    """The Hadoop file system and path of the `_delta_log` of `path` (any Hadoop URI)."""
    return _hadoop_path(spark, f"{path.rstrip('/')}/_delta_log")


def list_names(spark: SparkSession, folder: str) -> list[str] | None:
    """Names in `folder` (any Hadoop URI: a checkpoint's, a table's), or None if it is absent.
    Through the JVM's file system, with no Spark job: a few milliseconds."""
    fs, path = _hadoop_path(spark, folder)
    if not fs.exists(path):
        return None
    return [status.getPath().getName() for status in fs.listStatus(path)]


def read_text(spark: SparkSession, path: str) -> str | None:
    """The UTF-8 text of the file at `path` (any Hadoop URI), or None if it is absent."""
    fs, hadoop_path = _hadoop_path(spark, path)
    if not fs.exists(hadoop_path):
        return None
    stream = fs.open(hadoop_path)
    try:
        return spark.sparkContext._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()


def _log_files(spark: SparkSession, path: str) -> list[str] | None:
    """Names in the `_delta_log` of `path`, or None if it has none."""
    return list_names(spark, f"{path.rstrip('/')}/_delta_log")


# What Delta says when there is no table at a path: nothing there, a folder or log without a
# commit (a half-created table).
_NO_TABLE = ("DELTA_MISSING_DELTA_TABLE", "DELTA_TABLE_NOT_FOUND", "PATH_NOT_FOUND")


def delta_table(spark: SparkSession, path: str) -> DeltaTable | None:
    """The Delta table at `path`, or None when there is none (yet), or only a half-created one.

    Not `DeltaTable.isDeltaTable`: once a session has seen a path without a table (a table being
    created by another process, caught before its first commit), it keeps saying no after the
    table exists, for as long as the session's cached log lives (measured); `forPath` brings
    the cached log up to date.
    """
    from delta.tables import DeltaTable
    from pyspark.errors import AnalysisException

    try:
        return DeltaTable.forPath(spark, path)
    except AnalysisException as e:
        if e.getErrorClass() in _NO_TABLE:
            return None
        raise


def is_half_created(spark: SparkSession, path: str) -> bool:
    """Whether `path` holds a Delta log without a single commit: a table whose creation (or
    first write) was killed before its first commit landed. `createIfNotExists` takes it for an
    existing table yet fails to load it (`DELTA_TABLE_NOT_FOUND`); `delta_table` says none."""
    names = _log_files(spark, path)
    return names is not None and not any(_COMMITTED.match(name) for name in names)


def repair_half_created(spark: SparkSession, path: str) -> bool:
    """Remove the commit-less `_delta_log` of a half-created table at `path`, so that the table
    can be created again; return whether there was one. Nothing committed is touched: a log
    with any commit or checkpoint is a table and stays. (Files written before the kill are
    not part of any version; VACUUM removes them.)"""
    if not is_half_created(spark, path):
        return False
    fs, log = delta_log(spark, path)
    fs.delete(log, True)
    print(f"lake: {path} was half created (a log without any commit, left by a killed "
          "writer): its log is removed and the table created again", file=sys.stderr,
          flush=True)
    return True


def ensure_table(spark: SparkSession, settings: Settings, name: str) -> str:
    """Create table `name` empty with its spec's schema if it does not exist; return its path.
    A half-created table (its creation killed before the first commit) is created again, and a
    table created before its spec gained a column gets it (`add_missing_columns`).

    On a local lake delta-rs creates it, from this process, without Spark (on an object store,
    Spark does): the same first commit (schema, partition columns, protocol), and a streaming
    job on a local lake then never loads Delta's Spark machinery unless it reads a table with
    rows (its cold start 6 s shorter; BENCHMARKS.md, session 36).
    """
    path = table_path(settings, name)
    folder = local_path(path)
    if folder is not None:
        _create_with_delta_rs(spark, name, path, folder)
    else:
        _create_with_spark(spark, name, path)
    add_missing_columns(spark, path, name)
    return path


def _create_with_delta_rs(spark: SparkSession, name: str, path: str, folder: Path) -> None:
    from deltalake import DeltaTable as RustDeltaTable
    from deltalake.exceptions import DeltaError

    repair_half_created(spark, path)
    if (folder / "_delta_log").exists():
        return  # a table with a commit
    faults.killed_during_creation(name, folder / "_delta_log")
    try:
        RustDeltaTable.create(delta_uri(path), schemas.arrow_schema(name), mode="ignore",
                              partition_by=list(schemas.load(name).partition_by) or None)
    except DeltaError:  # another process's first commit came first: that table stands
        if is_half_created(spark, path) or not (folder / "_delta_log").exists():
            raise


def _create_with_spark(spark: SparkSession, name: str, path: str) -> None:
    from delta.tables import DeltaTable
    from pyspark.errors import AnalysisException

    spec = schemas.load(name)

    def create() -> None:
        builder = DeltaTable.createIfNotExists(spark).location(path).addColumns(
            schemas.spark_schema(name))
        if spec.partition_by:
            builder = builder.partitionedBy(*spec.partition_by)
        builder.execute()

    try:
        create()
    except AnalysisException:  # DELTA_TABLE_NOT_FOUND on a log without a commit
        if not repair_half_created(spark, path):
            raise
        create()


def add_missing_columns(spark: SparkSession, path: str, name: str) -> list[str]:
    """Add to the Delta table at `path` the columns its spec has and it lacks (an additive
    change of the spec: rows written before it read as null there); return their names. A
    missing column the spec requires cannot be added that way: one line saying so."""
    present = set(_column_names(spark, path))
    missing = [c for c in schemas.load(name).columns if c.name not in present]
    if not missing:
        return []
    required = [c.name for c in missing if c.required]
    if required:
        raise LambdalakeError(f"table {name} at {path} lacks the required column(s) "
                              f"{', '.join(required)} of its spec: rows written before they "
                              "existed have no value for them; rebuild the table")
    spark_types = {f.name: f.dataType.simpleString() for f in schemas.spark_schema(name)}
    columns = ", ".join(f"`{c.name}` {spark_types[c.name]}" for c in missing)
    spark.sql(f"ALTER TABLE delta.`{path}` ADD COLUMNS ({columns})")
    print(f"lake: {name}: added column(s) {', '.join(c.name for c in missing)} (new in its "
          "spec; null in the rows written before)", flush=True)
    return [c.name for c in missing]


def _column_names(spark: SparkSession, path: str) -> list[str]:
    """The column names of the Delta table at `path`: read by delta-rs where it can open the
    table (no Spark job), else by Spark."""
    try:
        from deltalake import DeltaTable as RustDeltaTable

        return RustDeltaTable(delta_uri(path)).schema().to_arrow().names
    except Exception:  # noqa: BLE001 (e.g. object-store credentials only Spark has)
        return spark.read.format("delta").load(path).schema.names


def write_tagged(df: DataFrame, path: str, mode: str, tag: str) -> None:
    """Write `df` to the Delta table at `path` in one commit whose userMetadata is `tag`.

    The tag makes a write findable (`commit_version`, `tagged_version`): the streaming job tags
    each micro-batch's commits and, after a restart, skips a write whose tag is already there.
    (Delta's own idempotent writes, `txnAppId`, cost three Spark jobs of state reconstruction on
    every commit; a tag lookup is a read of the log's last commits.)
    """
    df.write.format("delta").mode(mode).option("userMetadata", tag).save(path)


CHECKPOINT_INTERVAL = 10  # Delta's default checkpoint interval (Spark's writers use it)


class CommitLog:
    """The commit log of one Delta table, for the streaming job's cheap look-ups: its latest
    version and the versions of tagged commits.

    Read with delta-rs through a handle kept open and brought up to date incrementally (under a
    millisecond per call on a local lake, however long the log); through Spark when delta-rs
    cannot reach the table (e.g. object-store credentials only Spark has).
    """

    def __init__(self, spark: SparkSession, path: str) -> None:
        """A log reader for the table at `path` (nothing is read yet)."""
        self.spark, self.path = spark, path
        self._handle = None
        self._spark_only = False
        self._appendable: bool | None = None

    def _table(self):  # noqa: ANN202 (deltalake.DeltaTable, imported lazily)
        if self._spark_only:
            return None
        try:
            import deltalake

            if self._handle is None:
                self._handle = deltalake.DeltaTable(delta_uri(self.path))
            else:
                self._handle.update_incremental()
            return self._handle
        except Exception:  # noqa: BLE001 (fall back to Spark's own reader)
            self._spark_only = True
            return None

    def version(self) -> int:
        """The table's latest version."""
        table = self._table()
        if table is not None:
            return int(table.version())
        from delta.tables import DeltaTable

        return int(DeltaTable.forPath(self.spark, self.path).history(1).first()["version"])

    def recent(self, depth: int = 50) -> list[tuple[int, str]]:
        """(version, userMetadata) of the most recent commits, newest first."""
        table = self._table()
        if table is not None:
            return [(int(c["version"]), c.get("userMetadata")) for c in table.history(depth)]
        from delta.tables import DeltaTable

        rows = DeltaTable.forPath(self.spark, self.path).history(depth).select(
            "version", "userMetadata")
        return [(int(r[0]), r[1]) for r in rows.collect()]

    def holds_files(self, version: int) -> bool | None:
        """Whether the table at `version` has any data file, by delta-rs (None when it cannot
        open the table): False means that version holds no row, told without Spark."""
        if self._table() is None:
            return None
        from deltalake import DeltaTable as RustDeltaTable

        return bool(RustDeltaTable(delta_uri(self.path), version=version).file_uris())

    def can_append(self) -> bool:
        """Whether `append` can write this table: a table on a local filesystem that delta-rs
        opens (on an object store a delta-rs writer needs a locking setup Spark does not)."""
        if self._appendable is None:  # decided once: neither changes while the job runs
            self._appendable = (local_path(self.path) is not None
                                and self._table() is not None)
        return self._appendable

    def append(self, rows, tag: str, partition_by: tuple[str, ...] = ()) -> int:  # noqa: ANN001
        """Append `rows` (a pyarrow Table of the table's Arrow schema) in one commit whose
        userMetadata is `tag`, written by delta-rs from this process; return the new version.

        A small micro-batch's commit costs tens of milliseconds this way, where a Spark write
        pays 0.3-0.4 s of jobs. Readers see the same Delta table (Spark reads delta-rs's commits
        and files), and a commit racing another writer's (e.g. `lambdalake maintain`) is retried
        by delta-rs's conflict check like Spark's. A checkpoint is written every
        `CHECKPOINT_INTERVAL` versions, as Spark does by default (delta-rs's default is 100).
        """
        from deltalake import CommitProperties, PostCommitHookProperties, write_deltalake

        table = self._table()
        if table is None:
            raise LambdalakeError(f"delta-rs cannot open {self.path} to append to it")
        before = int(table.version())
        write_deltalake(table, rows, mode="append", partition_by=list(partition_by) or None,
                        commit_properties=CommitProperties(custom_metadata={"userMetadata": tag}),
                        post_commithook_properties=PostCommitHookProperties(
                            create_checkpoint=False))
        version = int(table.version())  # the handle is at the commit just written
        if version // CHECKPOINT_INTERVAL > before // CHECKPOINT_INTERVAL:
            table.create_checkpoint()
        return version

    def tagged_version(self, tag: str, depth: int = 50) -> int | None:
        """Version of the recent commit written with userMetadata `tag`, or None."""
        return next((v for v, metadata in self.recent(depth) if metadata == tag), None)

    def commit_version(self, tag: str, depth: int = 50) -> int:
        """Version of the recent commit written with userMetadata `tag`; an error if none."""
        version = self.tagged_version(tag, depth)
        if version is None:
            raise LambdalakeError(f"commit {tag} not found in the last {depth} commits of "
                                  f"{self.path}")
        return version


def commit_version(spark: SparkSession, path: str, tag: str, depth: int = 50) -> int:
    """Delta version of the recent commit written with userMetadata `tag`."""
    return CommitLog(spark, path).commit_version(tag, depth)


def open_table(settings: Settings, name: str):  # noqa: ANN201 (deltalake.DeltaTable)
    """Table `name` opened with delta-rs (no Spark: for the reference tables the streaming job
    looks at every micro-batch and command-line tools write), or None when it does not exist."""
    from deltalake import DeltaTable as RustDeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        return RustDeltaTable(delta_uri(table_path(settings, name)))
    except TableNotFoundError:
        return None


def table_version(settings: Settings, name: str) -> int | None:
    """Delta version of table `name` (None when there is none): cheap, no Spark."""
    table = open_table(settings, name)
    return None if table is None else table.version()


def column_values(settings: Settings, name: str, column: str) -> frozenset | None:
    """The distinct values of a column of table `name` (a reference table the streaming job
    checks events against), or None when there is no such table."""
    table = open_table(settings, name)
    if table is None:
        return None
    return frozenset(arrow_table(table, [column]).column(0).to_pylist())


def table_rows(spark: SparkSession, settings: Settings, name: str,
               columns: list[str]) -> list[tuple]:
    """`columns` of every row of table `name` as tuples (none when it is missing): for a small
    table, read by delta-rs where it opens the table (no Spark job), else by Spark."""
    try:
        table = open_table(settings, name)
    except Exception:  # noqa: BLE001 (e.g. object-store credentials only Spark has)
        return [tuple(row) for row in
                read_table(spark, settings, name).select(*columns).collect()]
    if table is None or not table.file_uris():  # no query engine started for no rows
        return []
    return [tuple(row.values()) for row in arrow_table(table, columns).to_pylist()]


def arrow_table(table, columns: list[str]):  # noqa: ANN001, ANN201 (deltalake, pyarrow types)
    """`columns` of a delta-rs table as a pyarrow Table, read by delta-rs's own engine. Not
    `to_pyarrow_table`: after pyarrow's scan, whose thread pools outlive it, the interpreter
    aborts at exit (`terminate called without an active exception`, exit 134) in about half of
    the runs of a short command on this machine (8 of 15 `lambdalake customers list`);
    `use_threads=False` still 3 of 15 on a table of 4 files; this 0 of 30."""
    import pyarrow as pa
    from deltalake import QueryBuilder

    names = ", ".join(f'"{c}"' for c in columns)
    return pa.table(QueryBuilder().register("t", table).execute(f"select {names} from t")
                    .read_all())


def read_table(spark: SparkSession, settings: Settings, name: str,
               version: int | None = None) -> DataFrame:
    """Table `name` (at `version` if given), or an empty frame of its schema if it is missing."""
    path = table_path(settings, name)
    if delta_table(spark, path) is None:  # also for a half-created table
        return spark.createDataFrame([], schemas.spark_schema(name))
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(path)
