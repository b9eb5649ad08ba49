"""Records deleted by Kafka's retention before the streaming job read them (issue 9): by default
the job stops with one line naming the topic, partitions and gap; configured to go on, it records
the gap in quarantine.tolls_kafka_gaps, which `lambdalake status` shows. Never a silent skip."""

from __future__ import annotations

import datetime as dt

import pytest
from kafka import TopicPartition

from lambdalake import lake, status, topics
from lambdalake.config import Settings
from lambdalake.errors import LambdalakeError
from lambdalake.generators import tolls
from speed import tolls_stream

pytestmark = pytest.mark.integration


def produce(settings: Settings, seed: int, count: int) -> None:
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    tolls.produce(settings, tolls.toll_records(tolls.TollsOptions(
        count=count, seed=seed, start=start)), progress=False)


def delete_head(settings: Settings, keep: int) -> dict[int, tuple[int, int]]:
    """Delete all but the last `keep` records of each partition, as retention would; return
    each partition's (offset the job has reached, first offset kept)."""
    topic = settings.topics.tolls_events
    reached = status.checkpoint_offsets(settings)[1][topic]
    ranges = topics.offset_ranges(settings, topic)
    cut = {p: end - keep for p, (_, end) in ranges.items()}
    admin = topics.admin_client(settings)
    try:
        admin.delete_records({TopicPartition(topic, p): o for p, o in cut.items()})
    finally:
        admin.close()
    return {p: (reached[p], cut[p]) for p in ranges}


@pytest.fixture
def retention(kafka_broker, settings, spark):
    """A job that has read 200 records, then 300 more sent, of which all but the last 40 of
    each partition are deleted: (settings, {partition: (gap start, gap end)})."""
    topics.ensure_topics(settings, settings.topics.tolls_events)
    produce(settings, seed=1, count=200)
    tolls_stream.run(spark, settings, until_idle=True)
    produce(settings, seed=2, count=300)
    return settings, delete_head(settings, keep=40)


def test_by_default_the_job_stops_with_one_line_naming_the_gap(retention, spark):
    settings, gaps = retention
    with pytest.raises(LambdalakeError) as failure:
        tolls_stream.run(spark, settings, until_idle=True)
    message = str(failure.value)
    assert "\n" not in message
    topic = settings.topics.tolls_events
    for partition, (start, end) in gaps.items():
        assert f"{topic} partition {partition}: offsets {start}-{end - 1}" in message, message
    assert "kafka.fail_on_data_loss" in message


def test_configured_to_go_on_the_job_records_the_gap(retention, spark):
    settings, gaps = retention
    settings = settings.replace(kafka={"fail_on_data_loss": False})
    tolls_stream.run(spark, settings, until_idle=True)

    recorded = {(r.kafka_topic, r.kafka_partition, r.from_offset, r.to_offset) for r in
                lake.read_table(spark, settings, "tolls_kafka_gaps").collect()}
    topic = settings.topics.tolls_events
    assert recorded == {(topic, p, start, end) for p, (start, end) in gaps.items()}
    assert lake.read_table(spark, settings, "tolls_landing").count() == 200 + 40 * len(gaps)
    report = status.status(settings)
    gaps_line = dict(report.lines)["gaps"]
    missing = sum(end - start for start, end in gaps.values())
    assert gaps_line == f"{len(gaps)} recorded, {missing:,} records never read:"
    assert any("deleted by Kafka retention" in a for a in report.attention)

    tolls_stream.run(spark, settings, until_idle=True)  # nothing new: no gap recorded twice
    assert lake.read_table(spark, settings, "tolls_kafka_gaps").count() == len(gaps)
