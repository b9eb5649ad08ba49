"""Tables of the lake: creation survives a writer killed before its first commit (issue 9)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from lambdalake import lake
from lambdalake.config import Settings
from lambdalake.errors import LambdalakeError


def _half_create(path: str) -> None:
    """What a writer killed during a table's creation leaves: a log holding only a temp file."""
    log = Path(path) / "_delta_log"
    log.mkdir(parents=True)
    (log / ".00000000000000000000.json.3f2a9c1e.tmp").write_text('{"commitInfo":')


def test_ensure_table_creates_a_half_created_table_again(spark: SparkSession,
                                                         settings: Settings) -> None:
    path = lake.table_path(settings, "batch_runs")
    _half_create(path)
    assert lake.is_half_created(spark, path)
    assert not DeltaTable.isDeltaTable(spark, path)  # Delta reads it as no table

    assert lake.ensure_table(spark, settings, "batch_runs") == path

    assert DeltaTable.isDeltaTable(spark, path) and not lake.is_half_created(spark, path)
    assert lake.read_table(spark, settings, "batch_runs").count() == 0
    assert [f.name for f in (Path(path) / "_delta_log").iterdir() if f.name.endswith(".tmp")
            ] == []


def test_a_half_created_table_reads_as_missing(spark: SparkSession, settings: Settings) -> None:
    path = lake.table_path(settings, "tolls_alerts")
    _half_create(path)
    assert lake.read_table(spark, settings, "tolls_alerts").count() == 0


def test_a_table_created_by_another_process_is_seen_after_it_was_caught_half_created(
        spark: SparkSession, settings: Settings, tmp_path: Path) -> None:
    # a long-lived session (a test polling, the batch scheduler) that once finds a table in the
    # middle of its creation by another process must see it once it is created
    path = lake.table_path(settings, "tolls_alerts")
    _half_create(path)
    assert lake.read_table(spark, settings, "tolls_alerts").count() == 0
    assert lake.delta_table(spark, path) is None
    elsewhere = str(tmp_path / "made_elsewhere")
    spark.range(3).write.format("delta").save(elsewhere)
    shutil.rmtree(path)
    shutil.copytree(elsewhere, path)  # the other process's commit, as this session sees it

    assert lake.delta_table(spark, path) is not None
    assert lake.read_table(spark, settings, "tolls_alerts").count() == 3


def test_a_table_with_commits_is_never_repaired(spark: SparkSession, settings: Settings) -> None:
    path = lake.ensure_table(spark, settings, "batch_runs")
    leftover = Path(path) / "_delta_log" / ".00000000000000000001.json.77aa.tmp"
    leftover.write_text("{")  # a later commit killed before its rename

    assert not lake.is_half_created(spark, path)
    assert not lake.repair_half_created(spark, path)
    lake.ensure_table(spark, settings, "batch_runs")
    assert leftover.exists()
    assert (Path(path) / "_delta_log" / "00000000000000000000.json").exists()


def test_a_delta_rs_append_is_one_tagged_commit_spark_reads(spark: SparkSession,
                                                             settings: Settings) -> None:
    import datetime as dt

    import pyarrow as pa

    import schemas

    path = lake.ensure_table(spark, settings, "tolls_kafka_gaps")
    log = lake.CommitLog(spark, path)
    assert log.can_append()
    at = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.timezone.utc)
    for batch_id in range(1, lake.CHECKPOINT_INTERVAL + 1):  # versions 1..10
        rows = pa.Table.from_pylist(
            [{"kafka_topic": "t", "kafka_partition": p, "from_offset": batch_id,
              "to_offset": batch_id + 1, "detected_at": at, "ingest_batch_id": batch_id}
             for p in (0, 1)], schemas.arrow_schema("tolls_kafka_gaps"))
        assert log.append(rows, f"q:{batch_id}") == batch_id

    assert log.tagged_version("q:7") == 7
    gaps = lake.read_table(spark, settings, "tolls_kafka_gaps")
    assert gaps.count() == 2 * lake.CHECKPOINT_INTERVAL
    assert gaps.where("ingest_batch_id = 7 and kafka_partition = 1").selectExpr(
        "unix_micros(detected_at)").first()[0] == int(at.timestamp()) * 1_000_000
    assert (Path(path) / "_delta_log" / "_last_checkpoint").exists()  # at version 10
    assert not lake.CommitLog(spark, "s3a://bucket/lake/speed/t").can_append()


def test_ensure_table_adds_the_columns_a_spec_gained_and_old_rows_read_null(
        spark: SparkSession, settings: Settings) -> None:
    import schemas

    name = "tolls_speed_rows"  # its progress rows gained processing_seconds
    path = lake.table_path(settings, name)
    full = schemas.spark_schema(name)
    old = [f for f in full.fields if f.name != "processing_seconds"]
    row = {f.name: None for f in old} | {"view_name": "tolls_stream_progress",
                                         "ingest_batch_id": 7}
    spark.createDataFrame([row], T.StructType(old)).write.format("delta").save(path)

    lake.ensure_table(spark, settings, name)

    table = spark.read.format("delta").load(path)
    assert [f.name for f in table.schema] == full.names
    assert table.select("ingest_batch_id", "processing_seconds").collect() == [(7, None)]
    new = row | {"ingest_batch_id": 8, "processing_seconds": 1.5}
    lake.CommitLog(spark, path).append(pa.Table.from_pylist([new], schemas.arrow_schema(name)),
                                       "tag:8")  # the job's delta-rs writer, new column and all
    assert sorted(spark.read.format("delta").load(path).select(
        "ingest_batch_id", "processing_seconds").collect()) == [(7, None), (8, 1.5)]
    assert lake.add_missing_columns(spark, path, name) == []  # nothing more to add


def test_a_required_column_missing_from_a_table_is_one_error_line(
        spark: SparkSession, settings: Settings) -> None:
    path = lake.table_path(settings, "batch_runs")
    spark.createDataFrame([(1,)], "something long").write.format("delta").save(path)
    with pytest.raises(LambdalakeError,
                       match=r"lacks the required column\(s\) run_id, view_name, "):
        lake.ensure_table(spark, settings, "batch_runs")
