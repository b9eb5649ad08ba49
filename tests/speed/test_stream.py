import datetime as dt

from pyspark.sql import functions as F

from speed.clicks_stream import CLICKS
from speed.stream import CACHE_COMPRESSED, StreamProcessor, StreamTotals, with_ingest_columns


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
    compilations = (spark._jvm.org.apache.spark.metrics.source.CodegenMetrics
                    .METRIC_COMPILATION_TIME())

    def ingest_columns(ingested_at: dt.datetime, batch_id: int) -> list[tuple]:
        rows = (spark.range(3).transform(with_ingest_columns(ingested_at, batch_id))
                .where(F.col("id") > 0)
                .select("id", F.unix_micros("ingested_at"), "ingest_batch_id").collect())
        return [tuple(row) for row in rows]

    first = dt.datetime(2026, 12, 3, 9, 30, 1, 123456, tzinfo=dt.timezone.utc)
    micros = 1_796_290_201_123_456
    assert ingest_columns(first, 7) == [(1, micros, 7), (2, micros, 7)]
    compiled = compilations.getCount()
    later = first + dt.timedelta(seconds=2, microseconds=1)
    assert ingest_columns(later, 8) == [(1, micros + 2_000_001, 8), (2, micros + 2_000_001, 8)]
    assert compilations.getCount() == compiled  # the same code as the first micro-batch's
