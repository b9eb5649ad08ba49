from speed.clicks_stream import CLICKS
from speed.stream import CACHE_COMPRESSED, StreamProcessor, StreamTotals


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
