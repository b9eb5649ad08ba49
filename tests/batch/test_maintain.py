"""`lambdalake maintain`: compaction, VACUUM that keeps what published runs, readers and a
replaying streaming job need, and checkpointed logs (issue 9)."""

import datetime as dt
import json
import os
import shutil
import time
from pathlib import Path

import pytest
from pyspark.sql import functions as F

import schemas
from batch import maintain, tolls_reports, views_job
from batch.clicks_reports import CLICKS_REPORTS
from lambdalake import customers, lake, topics
from lambdalake.errors import LambdalakeError
from lambdalake.generators import clicks, stream, tolls
from lambdalake.groundtruth import CLICKS_REPORT_SQL, differences, expected_reports
from serving.engine import MERGED_VIEWS, Serving
from speed import stream as stream_job
from speed import tolls_stream
from speed.clicks_stream import CLICKS

HOUR_MS = 3_600_000


def test_retention_is_lengthened_to_keep_the_protected_version():
    now = 100 * HOUR_MS
    assert maintain.retention_hours(168, now, now - 2 * HOUR_MS) == 168
    # a file the protected version needs was removed 200 h ago: keep 200 h, plus the margin,
    # in whole hours (VACUUM rounds to whole hours)
    assert maintain.retention_hours(168, now, now - 200 * HOUR_MS) == 201
    assert maintain.retention_hours(0, now, now) == 1  # removed just now: kept
    assert maintain.retention_hours(0) == 0 and maintain.retention_hours(0.4) == 1


@pytest.mark.parametrize("hours", [0, 0.5])
def test_a_short_retention_is_refused_unless_asked_for(settings, hours):
    with pytest.raises(LambdalakeError, match="--no-retention-check"):
        maintain.run(None, settings, retain_hours=hours)


def merged(settings, views=MERGED_VIEWS):
    serving = Serving(settings, copy_to_duckdb=False)  # reads the Parquet files in place
    try:
        return serving.rows(views)
    finally:
        serving.close()


def produce(settings, seed, start, count=600):
    options = tolls.TollsOptions(count=count, seed=seed, start=start, customers=30,
                                 span=dt.timedelta(minutes=30),
                                 faults=stream.Faults(duplicate_fraction=0.02,
                                                      malformed_fraction=0.03))
    return tolls.produce(settings, tolls.toll_records(options), progress=False).events


def active_files(settings, name):
    return len(lake.open_table(settings, name).file_uris())


def last_checkpoint(settings, name):
    path = Path(lake.table_path(settings, name)) / "_delta_log" / "_last_checkpoint"
    return json.loads(path.read_text())["version"]


@pytest.mark.long(minutes=4)
def test_maintain_compacts_and_vacuums_keeping_what_runs_readers_and_replays_need(
        kafka_broker, settings, spark):
    settings = settings.replace(
        topics={"tolls_alerts": f"{settings.topics.tolls_events}.alerts"},
        kafka={"max_offsets_per_trigger": 200})  # several micro-batches a wave: small files
    topics.ensure_topics(settings, settings.topics.tolls_events, settings.topics.tolls_alerts)
    customers.write_customers(settings, tolls.customers(30, 5))
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2)
    accepted = []
    for wave in range(2):
        accepted += produce(settings, wave, start + dt.timedelta(minutes=30 * wave))
        tolls_stream.run(spark, settings, until_idle=True)
        if wave == 0:
            published = tolls_reports.run(spark, settings)
    # a later batch run killed after overwriting a view, before publishing it
    view = "tolls_customer_monthly_spend"
    view_path = lake.table_path(settings, view)
    lake.write_tagged(spark.createDataFrame([], schemas.spark_schema(view)), view_path,
                      "overwrite", "batch:killed:view")
    # a file a killed writer left in the landing zone, never committed, two days old
    landing_path = Path(lake.table_path(settings, "tolls_landing"))
    some_file = next(landing_path.rglob("*.parquet"))
    orphan = some_file.with_name("part-99999-orphan-c000.snappy.parquet")
    shutil.copy(some_file, orphan)
    two_days_ago = time.time() - 2 * 86400
    os.utime(orphan, (two_days_ago, two_days_ago))
    # the streaming job killed after its last micro-batch's commits, before Spark recorded it:
    # its next run replays that micro-batch, reading the landing zone as it was before it
    commits = Path(lake.checkpoint_path(settings, tolls_stream.QUERY_NAME)) / "commits"
    last = max(int(p.name) for p in commits.iterdir() if p.name.isdigit())
    for marker in (commits / str(last), commits / f".{last}.crc"):
        marker.unlink(missing_ok=True)

    expected = expected_reports(accepted)
    assert not differences(expected, merged(settings))
    files_before = {name: active_files(settings, name)
                    for name in ("tolls_landing", "tolls_speed_rows", "tolls_quarantine")}
    assert all(n >= 6 for n in files_before.values()), files_before
    cutover_rows = spark.read.format("delta").option(
        "versionAsOf", published.landing_version).load(str(landing_path)).count()

    lines = []
    report = maintain.run(spark, settings, retain_hours=0, retention_check=False,
                          log=lines.append)
    done = {t.table: t for t in report.tables}

    # still served: the published version of the view a killed run overwrote since ...
    assert done[view].protected.version == published.view_versions[view]
    assert done[view].retain_hours >= 1
    assert not differences(expected, merged(settings))
    # ... and the landing zone at the published cut-over
    assert spark.read.format("delta").option("versionAsOf", published.landing_version).load(
        str(landing_path)).count() == cutover_rows
    # compacted: fewer files in each table the streaming job appends to
    for name, before in files_before.items():
        assert active_files(settings, name) < before, name
    # vacuumed: the files compaction replaced in the speed rows, the orphan, are gone ...
    assert done["tolls_speed_rows"].files_after < done["tolls_speed_rows"].files_before
    assert not orphan.exists()
    # ... but not the landing files of the published cut-over, compacted since
    assert done["tolls_landing"].protected.version == published.landing_version
    assert done["tolls_landing"].files_after == done["tolls_landing"].files_before  # +1 -orphan
    # every log is checkpointed at its latest version
    for name, result in done.items():
        assert result.checkpoint_version == lake.open_table(settings, name).version(), name
        assert last_checkpoint(settings, name) == result.checkpoint_version, name
    assert len(lines) == len(done) and all(line.startswith("maintain: ") for line in lines)

    # the streaming job replays its last micro-batch over the compacted landing zone, and goes on
    replay = tolls_stream.run(spark, settings, until_idle=True)
    assert replay.batches == 1
    accepted += produce(settings, 7, start + dt.timedelta(minutes=90))
    tolls_stream.run(spark, settings, until_idle=True)
    expected = expected_reports(accepted)
    assert not differences(expected, merged(settings))
    tolls_reports.run(spark, settings)
    assert not differences(expected, merged(settings))
    # once a run published a cut-over after the compaction, and the streaming job committed
    # after it, nothing needs the files it replaced: they go
    again = {t.table: t for t in maintain.run(spark, settings, retain_hours=0, compact=False,
                                              retention_check=False).tables}
    assert again["tolls_landing"].files_after < again["tolls_landing"].files_before
    assert not differences(expected, merged(settings))
    # nothing lost or counted twice across the compaction
    progress = (lake.read_table(spark, settings, "tolls_speed_rows")
                .where(F.col("view_name") == "tolls_stream_progress"))
    assert progress.agg(F.sum("landed_count")).first()[0] == len(accepted)
    assert lake.read_table(spark, settings, "tolls_landing").count() == len(accepted)


def produce_clicks(settings, seed, start, count=600):
    options = clicks.ClicksOptions(count=count, seed=seed, start=start, articles=20, sessions=50,
                                   span=dt.timedelta(minutes=30),
                                   faults=stream.Faults(duplicate_fraction=0.02,
                                                        malformed_fraction=0.03))
    return stream.produce(settings, clicks.click_records(options), settings.topics.clicks_events,
                          progress=False).events


@pytest.mark.long(minutes=3)
def test_each_landing_zone_keeps_the_cutover_of_its_own_domains_runs(kafka_broker, settings,
                                                                     spark):
    """Clicks published first, tolls later: the clickstream's landing zone keeps the files of
    the clicks run's cut-over, not of the latest run of any domain, and compacts the rest."""
    settings = settings.replace(
        topics={"tolls_alerts": f"{settings.topics.tolls_events}.alerts"},
        kafka={"max_offsets_per_trigger": 200})  # several micro-batches a wave: small files
    topics.ensure_topics(settings, settings.topics.clicks_events, settings.topics.tolls_events,
                         settings.topics.tolls_alerts)
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2)
    viewed = produce_clicks(settings, 1, start)
    stream_job.run(CLICKS, spark, settings, until_idle=True)
    clicks_run = views_job.run(CLICKS_REPORTS, spark, settings)
    viewed += produce_clicks(settings, 2, start + dt.timedelta(minutes=30))
    stream_job.run(CLICKS, spark, settings, until_idle=True)
    # the tolls domain streams more micro-batches and publishes after the clickstream
    produce(settings, 3, start)
    tolls_stream.run(spark, settings, until_idle=True)
    produce(settings, 4, start + dt.timedelta(minutes=30))
    tolls_stream.run(spark, settings, until_idle=True)
    tolls_run = tolls_reports.run(spark, settings)
    assert tolls_run.landing_version != clicks_run.landing_version

    clicks_landing = str(lake.table_path(settings, "clicks_landing"))
    cutover_rows = spark.read.format("delta").option(
        "versionAsOf", clicks_run.landing_version).load(clicks_landing).count()
    files_before = active_files(settings, "clicks_landing")
    expected = expected_reports(viewed, "clicks_event")
    assert not differences(expected, merged(settings, CLICKS_REPORT_SQL))

    report = maintain.run(spark, settings, retain_hours=0, retention_check=False)
    done = {t.table: t for t in report.tables}
    assert done["clicks_landing"].protected.version == clicks_run.landing_version
    assert active_files(settings, "clicks_landing") < files_before  # compacted
    # the clickstream's published cut-over is still readable, and its merged views exact
    assert spark.read.format("delta").option("versionAsOf", clicks_run.landing_version).load(
        clicks_landing).count() == cutover_rows
    assert not differences(expected, merged(settings, CLICKS_REPORT_SQL))
