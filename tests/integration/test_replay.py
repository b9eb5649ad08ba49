"""A micro-batch replayed after a crash (its writes done, its checkpoint commit not) is not
written twice: landing, quarantine, speed views, progress, alerts table and alerts topic."""

import datetime as dt
from pathlib import Path

from kafka import KafkaConsumer

from lambdalake import customers, lake, topics
from lambdalake.generators import tolls
from speed import tolls_stream


def table_counts(spark, settings):
    return {name: spark.read.format("delta").load(lake.table_path(settings, name)).count()
            for name in tolls_stream.TABLES}


def alert_keys(settings):
    consumer = KafkaConsumer(settings.topics.tolls_alerts,
                             bootstrap_servers=settings.kafka.bootstrap_servers,
                             auto_offset_reset="earliest", consumer_timeout_ms=3000)
    try:
        return sorted(m.key for m in consumer)
    finally:
        consumer.close()


def test_replayed_micro_batch_changes_nothing(kafka_broker, settings, spark):
    settings = settings.replace(topics={"tolls_alerts": f"{settings.topics.tolls_events}.alerts"})
    topics.ensure_topics(settings, settings.topics.tolls_events, settings.topics.tolls_alerts)
    customers.write_customers(settings, tolls.customers(20, 3))
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    options = tolls.TollsOptions(count=1500, seed=4, start=start, customers=20,
                                 malformed_fraction=0.02, duplicate_fraction=0.02)
    tolls.produce(settings, tolls.toll_records(options), progress=False)
    first = tolls_stream.run(spark, settings, until_idle=True)
    assert first.batches == 1
    before = table_counts(spark, settings)
    keys = alert_keys(settings)
    assert before["tolls_alerts"] > 0 and len(keys) == before["tolls_alerts"]

    # crash after the batch's writes but before Spark recorded it: drop its commit marker
    commits = Path(lake.checkpoint_path(settings, tolls_stream.QUERY_NAME)) / "commits"
    for marker in (commits / "0", commits / ".0.crc"):
        marker.unlink(missing_ok=True)
    replay = tolls_stream.run(spark, settings, until_idle=True)
    assert replay.batches == 1 and replay.read == first.read  # the same batch, processed again

    assert table_counts(spark, settings) == before
    assert alert_keys(settings) == keys
