import datetime as dt

from pyspark.sql import functions as F

import schemas
from speed.clicks_stream import CLICKS
from speed.stream import CACHE_COMPRESSED, StreamProcessor, StreamTotals, with_ingest_columns


def compilations(spark):
    """Spark's counter of generated classes compiled in this JVM."""
    return (spark._jvm.org.apache.spark.metrics.source.CodegenMetrics
            .METRIC_COMPILATION_TIME())


def test_the_micro_batch_cache_is_uncompressed_while_the_query_runs_only(spark, settings,
                                                                         tmp_path):
    spark.conf.set(CACHE_COMPRESSED, "true")  # what another job of the session set
    processor = StreamProcessor(CLICKS, spark, settings, str(tmp_path / "checkpoint"),
                                StreamTotals())
    try:
        assert spark.conf.get(CACHE_COMPRESSED) == "false"
    finally:
        processor.close()
    assert spark.conf.get(CACHE_COMPRESSED) == "true"
    spark.conf.unset(CACHE_COMPRESSED)


def test_ingest_columns_hold_the_micro_batch_values_in_code_compiled_once(spark):
    compiled = compilations(spark)

    def ingest_columns(ingested_at: dt.datetime, batch_id: int) -> list[tuple]:
        rows = (spark.range(3).transform(with_ingest_columns(ingested_at, batch_id))
                .where(F.col("id") > 0)
                .select("id", F.unix_micros("ingested_at"), "ingest_batch_id").collect())
        return [tuple(row) for row in rows]

    first = dt.datetime(2026, 12, 3, 9, 30, 1, 123456, tzinfo=dt.timezone.utc)
    micros = 1_796_290_201_123_456
    assert ingest_columns(first, 7) == [(1, micros, 7), (2, micros, 7)]
    count = compiled.getCount()
    later = first + dt.timedelta(seconds=2, microseconds=1)
    assert ingest_columns(later, 10) == [(1, micros + 2_000_001, 10), (2, micros + 2_000_001, 10)]
    assert compiled.getCount() == count  # the same code as the first micro-batch's


def test_speed_rows_written_by_spark_hold_the_batch_values_in_code_compiled_once(
        spark, settings, tmp_path):
    processor = StreamProcessor(CLICKS, spark, settings, str(tmp_path / "checkpoint"),
                                StreamTotals())
    now = dt.datetime(2026, 12, 3, 9, 30, tzinfo=dt.timezone.utc)
    view = next(iter(CLICKS.speed_views))
    partials = spark.createDataFrame(
        [{"view_name": view, "article_id": "a1", "view_minute": now.replace(tzinfo=None),
          "view_count": 3}], schemas.spark_schema("clicks_speed_rows"))

    def speed_rows(batch_id, landing_version):
        rows = processor._speed_rows(partials, None, batch_id, {"landed": 3}, landing_version,
                                     now, 0.5, as_arrow=False)
        return sorted((r.view_name, r.landing_version, r.ingest_batch_id, r.view_count,
                       r.landed_count) for r in rows.collect())

    compiled = compilations(spark)
    try:
        assert speed_rows(7, 41) == sorted([(view, 41, 7, 3, None),
                                            (CLICKS.names.progress, 41, 7, None, 3)])
        count = compiled.getCount()
        assert speed_rows(12, 1_000_000_000_000) == sorted([
            (view, 1_000_000_000_000, 12, 3, None),
            (CLICKS.names.progress, 1_000_000_000_000, 12, None, 3)])
        assert compiled.getCount() == count  # the same code as the first micro-batch's
        assert speed_rows(13, None) == sorted([(view, None, 13, 3, None),
                                               (CLICKS.names.progress, None, 13, None, 3)])
    finally:
        processor.close()


def test_a_new_lake_s_state_is_loaded_without_a_spark_job(spark, settings, tmp_path):
    """On a new lake the tables are created and the state loaded by delta-rs: the streaming job
    then starts without Delta's Spark machinery (its cold start 6 s shorter). Once the landing
    zone holds an event, the state comes from it through Spark."""
    from decimal import Decimal

    from lambdalake import lake
    from speed.tolls_stream import TOLLS

    now = dt.datetime.now(dt.timezone.utc)
    context, group = spark.sparkContext, f"state-load-{tmp_path.name}"

    def load_state() -> tuple[int, dict, list[int]]:
        """The landed ids and the spend the state holds, and the Spark jobs it took."""
        processor = StreamProcessor(TOLLS, spark, settings, str(tmp_path / "checkpoint"),
                                    StreamTotals())
        context.setJobGroup(group, "the state load")
        try:
            processor.ensure_tables()
            processor.prepare(now)
            loaded = len(processor.landed_ids), dict(processor.extension.alert_state.spend)
        finally:
            context.setLocalProperty("spark.jobGroup.id", None)
            processor.close()
        return *loaded, list(context.statusTracker().getJobIdsForGroup(group))

    assert load_state() == (0, {}, [])
    landing = schemas.spark_schema("tolls_landing")
    event = {"transaction_id": "t1", "customer_id": "c1", "plate": "p", "plaza_id": "z",
             "lane": 1, "vehicle_class": 1, "amount": Decimal("2.50"), "currency": "USD",
             "event_time": now, "kafka_topic": "tolls", "kafka_partition": 0,
             "kafka_offset": 0, "kafka_timestamp": now, "ingested_at": now,
             "ingest_date": now.date(), "ingest_batch_id": 0}
    spark.createDataFrame([event], landing).write.format("delta").mode("append").save(
        lake.table_path(settings, "tolls_landing"))

    ids, spend, jobs = load_state()
    assert (ids, spend) == (1, {("c1", now.date().replace(day=1)): Decimal("2.50")})
    assert jobs != []
