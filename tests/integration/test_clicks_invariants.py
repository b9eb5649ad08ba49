"""The clickstream domain's invariants (SPEC 6 for SPEC 5.3): the exact merge after every step.

Page views with late (up to 2 days), out-of-order, duplicate and malformed records go through the
real broker, the clicks streaming job and the clicks batch job in waves, with batch runs in
between. After every step every merged clicks view (and the views over them) must equal the same
view computed by DuckDB directly over the accepted page views so far, the trending articles of
the last 10 minutes included, and the record counts must balance.
"""

import datetime as dt
import random

from batch import views_job
from batch.clicks_reports import CLICKS_REPORTS
from lambdalake import status, topics
from lambdalake.generators import clicks, stream
from lambdalake.groundtruth import CLICKS_REPORT_SQL, differences, events_table, expected_reports
from serving.engine import Serving
from speed import stream as stream_job
from speed.clicks_stream import CLICKS

SEED = 20261202
WAVES = 3
PER_WAVE = 3_000


def trending_is_exact(serving, accepted):
    """The served top articles of the last 10 minutes equal DuckDB's over the events, for the
    window the view used."""
    served = serving.con.execute(
        "select trending_rank, article_id, view_count, session_count, window_start, "
        "window_end from clicks_trending_10m order by trending_rank").fetchall()
    assert served, "no page view in the last 10 minutes"
    start, end = served[0][4], served[0][5]
    con = serving.con.cursor()
    con.register("accepted_views", events_table(accepted, "clicks_event"))
    expected = con.execute(
        "select row_number() over (order by count(*) desc, count(distinct session_id) desc, "
        "article_id), article_id, count(*), count(distinct session_id) from accepted_views "
        "where date_trunc('minute', event_time) >= ? and date_trunc('minute', event_time) < ? "
        "group by article_id order by 1", [start, end]).fetchall()
    assert [row[:4] for row in served] == expected
    return served


def test_merged_clicks_views_stay_exact_around_batch_runs(kafka_broker, settings, spark):
    topics.ensure_topics(settings, settings.topics.clicks_events)
    rng = random.Random(SEED)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    accepted: list[dict] = []
    produced = 0
    serving = Serving(settings)
    batch_runs = 0

    def check(step):
        diffs = differences(expected_reports(accepted, "clicks_event"),
                            serving.rows(CLICKS_REPORT_SQL))
        assert not diffs, f"after {step}: {diffs}"
        return trending_is_exact(serving, accepted)

    for wave in range(WAVES):
        # each wave ends now: its last minutes are trending; earlier waves' views come late
        options = clicks.ClicksOptions(
            count=PER_WAVE, seed=rng.randrange(2**31), articles=60, sessions=400,
            start=now - dt.timedelta(minutes=30 * (WAVES - wave)),
            span=dt.timedelta(minutes=30 * (WAVES - wave)), faults=stream.Faults(
                late_fraction=0.05, max_lateness=dt.timedelta(days=2),
                out_of_order_fraction=0.05, duplicate_fraction=0.03, malformed_fraction=0.02))
        report = stream.produce(settings, clicks.click_records(options),
                                settings.topics.clicks_events, progress=False)
        accepted += report.events
        produced += report.sent
        stream_job.run(CLICKS, spark, settings, until_idle=True)
        check(f"wave {wave}")
        if wave in (0, 1):
            views_job.run(CLICKS_REPORTS, spark, settings)
            batch_runs += 1
            check(f"batch run {batch_runs} after wave {wave}")

    assert batch_runs == 2 and produced >= 9_000
    # nothing lost: every record is landed, quarantined or counted as a duplicate
    read, landed, quarantined, duplicates = serving.con.execute(
        "select sum(read_count), sum(landed_count), sum(quarantined_count), "
        "sum(duplicate_count) from speed.clicks_stream_progress").fetchone()
    assert read == produced == landed + quarantined + duplicates
    assert landed == len(accepted) and duplicates > 0 and quarantined > 0
    # the operator's screen shows the clickstream's lines, balanced, with its cut-over
    lines = dict(status.status(settings).lines)
    assert lines["clicks records"].startswith(
        f"read {read:,} = landed {landed:,} + quarantined {quarantined:,} + duplicates "
        f"{duplicates:,}")
    assert lines["clicks batch cut-over"].startswith(f"landing v{cutover_of(serving)}, ")
    assert lines["clicks kafka lag"].startswith(f"{settings.topics.clicks_events}: 0 records")
    serving.close()


def cutover_of(serving):
    return serving.con.execute("select landing_version from batch.cutover "
                               "where view_name = 'clicks_article_views'").fetchone()[0]
