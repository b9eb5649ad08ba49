"""A micro-batch replayed after a crash is not written twice, and one cut short between its
commits is completed exactly: landing, quarantine, speed views, progress, alerts table and
alerts topic."""

import datetime as dt
from pathlib import Path

import pytest
from kafka import KafkaConsumer
from pyspark.sql import functions as F

from lambdalake import customers, lake, topics
from lambdalake.errors import LambdalakeError
from lambdalake.generators import stream, tolls
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


def one_batch_of_records(settings):
    """1,500 records (some malformed, some duplicates) in Kafka, 20 customers with thresholds."""
    settings = settings.replace(topics={"tolls_alerts": f"{settings.topics.tolls_events}.alerts"})
    topics.ensure_topics(settings, settings.topics.tolls_events, settings.topics.tolls_alerts)
    customers.write_customers(settings, tolls.customers(20, 3))
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    options = tolls.TollsOptions(count=1500, seed=4, start=start, customers=20,
                                 faults=stream.Faults(malformed_fraction=0.02,
                                                      duplicate_fraction=0.02))
    return settings, tolls.produce(settings, tolls.toll_records(options), progress=False)


def test_replayed_micro_batch_changes_nothing(kafka_broker, settings, spark):
    settings, _report = one_batch_of_records(settings)
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


TOLLS_COUNTS = ("tolls_speed_rows", ("transaction_count", "vehicle_count", "landed_count"),
                ("tolls_landing", "tolls_quarantine", "tolls_alerts"))
CLICKS_COUNTS = ("clicks_speed_rows", ("view_count", "landed_count"),
                 ("clicks_landing", "clicks_quarantine"))


def landed_counts(spark, settings, speed_rows, measures, tables):
    """The rows of each of `tables`, and per view of the union table `speed_rows` its rows and
    the events they count (the first of `measures` a row has: speed views and progress)."""
    speed = spark.read.format("delta").load(lake.table_path(settings, speed_rows))
    per_view = {r[0]: (r[1], r[2]) for r in speed.groupBy("view_name").agg(
        F.count(F.lit(1)), F.sum(F.coalesce(*measures))).collect()}
    rows = {name: spark.read.format("delta").load(lake.table_path(settings, name)).count()
            for name in tables}
    return rows, per_view


@pytest.mark.parametrize(("failing", "writer"), [
    ("tolls_speed_rows", "delta-rs"), ("tolls_quarantine", "delta-rs"),
    ("tolls_alerts", "delta-rs"),
    ("tolls_speed_rows", "spark"),  # as on an object store (the alerts are then Spark's too)
])
def test_a_crash_between_the_commits_of_a_micro_batch_is_repaired_exactly(
        kafka_broker, settings, spark, monkeypatch, failing, writer):
    settings, report = one_batch_of_records(settings)
    if writer == "spark":  # every commit by Spark, as on an object store
        settings = settings.replace(speed={"driver_commit_max_rows": 0})

    def crash(path: str) -> None:
        if path.endswith(f"/{failing}"):
            raise RuntimeError(f"simulated crash before the {failing} commit")

    real_write, real_append = lake.write_tagged, lake.CommitLog.append

    def crashing_write(df, path, mode, tag):  # noqa: ANN001, ANN202
        if writer == "spark":
            crash(path)
        real_write(df, path, mode, tag)

    def crashing_append(log, rows, tag, partition_by=()):  # noqa: ANN001, ANN202
        assert writer == "delta-rs", "a delta-rs commit although speed.driver_commit_max_rows = 0"
        crash(log.path)
        return real_append(log, rows, tag, partition_by)

    monkeypatch.setattr(lake, "write_tagged", crashing_write)
    monkeypatch.setattr(lake.CommitLog, "append", crashing_append)
    with pytest.raises(LambdalakeError, match="simulated crash"):
        tolls_stream.run(spark, settings, until_idle=True)
    landed_so_far = spark.read.format("delta").load(
        lake.table_path(settings, "tolls_landing")).count()
    assert landed_so_far == len(report.events)  # the landing commit was made before the crash

    monkeypatch.setattr(lake, "write_tagged", real_write)
    monkeypatch.setattr(lake.CommitLog, "append", real_append)
    totals = tolls_stream.run(spark, settings, until_idle=True)  # the same batch, again
    assert totals.batches == 1 and totals.read == report.sent

    tables, per_view = landed_counts(spark, settings, *TOLLS_COUNTS)
    accepted = len(report.events)
    assert tables["tolls_landing"] == accepted
    assert tables["tolls_quarantine"] == report.sent - accepted
    for view in ("speed_tolls_customer_spend_10m", "speed_tolls_plaza_revenue_30m",
                 "speed_tolls_daily_class_traffic"):
        assert per_view[view][1] == accepted, view  # every landed event counted once
    assert per_view["tolls_stream_progress"] == (1, accepted)  # one progress row
    keys = alert_keys(settings)
    assert tables["tolls_alerts"] > 0 and len(keys) == len(set(keys)) == tables["tolls_alerts"]


def test_a_clicks_micro_batch_cut_short_or_replayed_is_written_exactly_once(
        kafka_broker, settings, spark, monkeypatch):
    """The clickstream shares the streaming job: the same repair and replay hold for it."""
    from lambdalake.generators import clicks
    from speed import stream as stream_job
    from speed.clicks_stream import CLICKS

    topics.ensure_topics(settings, settings.topics.clicks_events)
    options = clicks.ClicksOptions(
        count=1000, seed=6, articles=30, sessions=100,
        start=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=30),
        span=dt.timedelta(minutes=30),
        faults=stream.Faults(malformed_fraction=0.03, duplicate_fraction=0.03))
    report = stream.produce(settings, clicks.click_records(options),
                            settings.topics.clicks_events, progress=False)

    real_append = lake.CommitLog.append

    def crashing_append(log, rows, tag, partition_by=()):  # noqa: ANN001, ANN202
        if log.path.endswith("/clicks_speed_rows"):
            raise RuntimeError("simulated crash before the clicks_speed_rows commit")
        return real_append(log, rows, tag, partition_by)

    monkeypatch.setattr(lake.CommitLog, "append", crashing_append)
    with pytest.raises(LambdalakeError, match="simulated crash"):
        stream_job.run(CLICKS, spark, settings, until_idle=True)
    monkeypatch.setattr(lake.CommitLog, "append", real_append)
    totals = stream_job.run(CLICKS, spark, settings, until_idle=True)  # the same batch, again
    assert totals.batches == 1 and totals.read == report.sent

    accepted = len(report.events)
    tables, per_view = landed_counts(spark, settings, *CLICKS_COUNTS)
    assert tables == {"clicks_landing": accepted, "clicks_quarantine": report.sent - accepted}
    assert per_view["speed_clicks_article_views"][1] == accepted  # every view counted once
    assert per_view["clicks_stream_progress"] == (1, accepted)  # one progress row

    # crash after the batch's writes but before Spark recorded it: drop its commit marker
    commits = Path(lake.checkpoint_path(settings, CLICKS.names.query_name)) / "commits"
    done = sorted(int(n.name) for n in commits.iterdir() if n.name.isdigit())
    for marker in (commits / str(done[-1]), commits / f".{done[-1]}.crc"):
        marker.unlink(missing_ok=True)
    replay = stream_job.run(CLICKS, spark, settings, until_idle=True)
    assert replay.batches == 1 and replay.read == report.sent  # processed again
    assert landed_counts(spark, settings, *CLICKS_COUNTS) == (tables, per_view)
