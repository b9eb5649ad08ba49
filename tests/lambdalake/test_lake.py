"""Tables of the lake: creation survives a writer killed before its first commit (issue 9)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import types as T

import schemas
from lambdalake import lake
from lambdalake.config import Settings
from lambdalake.errors import LambdalakeError


def _half_create(path: str, temp_file: str | None = ".00000000000000000000.json.3f2a9c1e.tmp"
                 ) -> None:
    """What a writer killed during a table's creation leaves: a log holding only a temp file
    (Spark's writer), or nothing (delta-rs's, killed between making the folder and its commit)."""
    log = Path(path) / "_delta_log"
    log.mkdir(parents=True)
    if temp_file is not None:
        log.joinpath(temp_file).write_text('{"commitInfo":')


def _first_commit(path: str) -> tuple:
    """What a table's first commit says of it: schema, partition columns, configuration and
    protocol (not its id, time or operation)."""
    actions = [json.loads(line) for line in
               (Path(path) / "_delta_log" / "00000000000000000000.json").read_text().splitlines()]
    metadata = next(a["metaData"] for a in actions if "metaData" in a)
    return (json.loads(metadata["schemaString"]), metadata["partitionColumns"],
            metadata["configuration"], next(a["protocol"] for a in actions if "protocol" in a))


@pytest.mark.parametrize("name", ["tolls_landing", "tolls_speed_rows", "batch_runs",
                                  "omop_person"])
def test_a_table_created_by_delta_rs_is_the_one_spark_creates(
        spark: SparkSession, settings: Settings, name: str) -> None:
    path = lake.ensure_table(spark, settings, name)  # a local lake: delta-rs
    by_spark = settings.replace(lake={"root": f"{settings.lake.root}-spark"})
    spark_path = lake.table_path(by_spark, name)
    lake._create_with_spark(spark, name, spark_path)

    engines = [json.loads((Path(p) / "_delta_log" / "00000000000000000000.json").read_text()
                          .splitlines()[0])["commitInfo"]["engineInfo"] for p in (path, spark_path)]
    assert engines[0].startswith("delta-rs") and engines[1].startswith("Apache-Spark")
    assert _first_commit(path) == _first_commit(spark_path)
    assert spark.read.format("delta").load(path).schema == schemas.spark_schema(name)


@pytest.mark.parametrize("temp_file", [".00000000000000000000.json.3f2a9c1e.tmp",
                                       "_commit_0b6d1f5a.json.tmp", None])
def test_ensure_table_creates_a_half_created_table_again(spark: SparkSession,
                                                         settings: Settings,
                                                         temp_file: str | None) -> None:
    path = lake.table_path(settings, "batch_runs")
    _half_create(path, temp_file)
    assert lake.is_half_created(spark, path)
    assert lake.delta_table(spark, path) is None  # Delta reads it as no table

    assert lake.ensure_table(spark, settings, "batch_runs") == path

    assert lake.delta_table(spark, path) is not None and not lake.is_half_created(spark, path)
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


def test_a_commit_log_tells_a_version_without_files(spark: SparkSession,
                                                   settings: Settings) -> None:
    import datetime as dt

    path = lake.ensure_table(spark, settings, "tolls_kafka_gaps")
    log = lake.CommitLog(spark, path)
    assert log.holds_files(0) is False
    row = {"kafka_topic": "t", "kafka_partition": 0, "from_offset": 1, "to_offset": 2,
           "detected_at": dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc), "ingest_batch_id": 1}
    log.append(pa.Table.from_pylist([row], schemas.arrow_schema("tolls_kafka_gaps")), "q:1")
    assert (log.holds_files(0), log.holds_files(1)) == (False, True)
    assert lake.CommitLog(spark, "s3a://bucket/lake/speed/t").holds_files(0) is None


def test_table_rows_are_spark_s_rows(spark: SparkSession, settings: Settings) -> None:
    import datetime as dt
    from decimal import Decimal

    assert lake.table_rows(spark, settings, "tolls_alerts", ["customer_id"]) == []  # missing
    path = lake.ensure_table(spark, settings, "tolls_alerts")
    schema = schemas.spark_schema("tolls_alerts")
    at = dt.datetime(2026, 11, 3, 8, 0, tzinfo=dt.timezone.utc)
    rows = [{"alert_id": f"a{i}", "customer_id": f"c{i}", "month": dt.date(2026, 11, 1),
             "threshold": Decimal("100.00") * i, "spend": Decimal("150.25"), "event_time": at,
             "transaction_id": f"t{i}", "alerted_at": at, "landing_version": i}
            for i in (1, 2)]
    spark.createDataFrame(rows, schema).write.format("delta").mode("append").save(path)
    columns = ["customer_id", "month", "threshold"]

    assert sorted(lake.table_rows(spark, settings, "tolls_alerts", columns)) == sorted(
        tuple(r) for r in spark.read.format("delta").load(path).select(*columns).collect())
    assert sorted(lake.table_rows(spark, settings, "tolls_alerts", columns))[1] == (
        "c2", dt.date(2026, 11, 1), Decimal("200.00"))


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
