"""Where each table and checkpoint lives, and the Delta writes the jobs share (at the edges)."""

from __future__ import annotations

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession

import schemas
from lambdalake.config import Settings
from lambdalake.errors import LambdalakeError


def table_path(settings: Settings, name: str) -> str:
    """Location of table `name`: `<lake root>/<layer>/<name>` (layer from its spec)."""
    layer = schemas.load(name).layer
    return f"{settings.lake.root.rstrip('/')}/{layer}/{name}"


def delta_uri(path: str) -> str:
    """The URI of a lake path for `deltalake` (delta-rs), which spells s3a:// as s3://."""
    return "s3://" + path[len("s3a://"):] if path.startswith("s3a://") else path


def checkpoint_path(settings: Settings, query: str) -> str:
    """Checkpoint location of streaming query `query`."""
    return f"{settings.checkpoint.root.rstrip('/')}/{query}"


def ensure_table(spark: SparkSession, settings: Settings, name: str) -> str:
    """Create table `name` empty with its spec's schema if it does not exist; return its path."""
    path = table_path(settings, name)
    spec = schemas.load(name)
    builder = DeltaTable.createIfNotExists(spark).location(path).addColumns(
        schemas.spark_schema(name))
    if spec.partition_by:
        builder = builder.partitionedBy(*spec.partition_by)
    builder.execute()
    return path


def write_tagged(df: DataFrame, path: str, mode: str, tag: str,
                 txn: tuple[str, int] | None = None) -> None:
    """Write `df` to the Delta table at `path` in one commit whose userMetadata is `tag`.

    With `txn=(app_id, version)` the write is idempotent: Delta skips a commit it already has for
    that application and version (a micro-batch replayed after a crash).
    """
    writer = df.write.format("delta").mode(mode).option("userMetadata", tag)
    if txn is not None:
        writer = writer.option("txnAppId", txn[0]).option("txnVersion", txn[1])
    writer.save(path)


def recent_commits(spark: SparkSession, path: str, depth: int = 50) -> list[tuple[int, str]]:
    """(version, userMetadata) of the table's most recent commits, newest first.

    Read with delta-rs (milliseconds, no Spark job); through Spark when delta-rs cannot reach
    the table (e.g. object-store credentials only Spark has).
    """
    try:
        import deltalake

        history = deltalake.DeltaTable(delta_uri(path)).history(depth)
        return [(int(c["version"]), c.get("userMetadata")) for c in history]
    except Exception:  # noqa: BLE001 (fall back to Spark's own reader)
        rows = DeltaTable.forPath(spark, path).history(depth).select("version", "userMetadata")
        return [(int(r[0]), r[1]) for r in rows.collect()]


def commit_version(spark: SparkSession, path: str, tag: str, depth: int = 50) -> int:
    """Delta version of the recent commit written with userMetadata `tag`."""
    for version, metadata in recent_commits(spark, path, depth):
        if metadata == tag:
            return version
    raise LambdalakeError(f"commit {tag} not found in the last {depth} commits of {path}")


def read_table(spark: SparkSession, settings: Settings, name: str,
               version: int | None = None) -> DataFrame:
    """Table `name` (at `version` if given), or an empty frame of its schema if it is missing."""
    path = table_path(settings, name)
    if not DeltaTable.isDeltaTable(spark, path):
        return spark.createDataFrame([], schemas.spark_schema(name))
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(path)
