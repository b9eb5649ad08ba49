"""The tolls pipeline on a real Kafka broker, real Spark + Delta and real DuckDB."""

import dataclasses
import datetime as dt
import io
import json
import stat
import subprocess
import sys
from decimal import Decimal

import pytest
from pyspark.sql import functions as F

import schemas
from batch import tolls_reports
from lambdalake import lake, topics
from lambdalake.generators import stream, tolls
from lambdalake.groundtruth import differences, events_table, expected_reports
from serving.engine import MERGED_VIEWS, Serving
from speed import tolls_stream
from speed.union_rows import member_rows
from tests.speed.test_validate import key_of


@pytest.fixture
def pipeline(kafka_broker, settings, spark):
    """A fresh topic and lake on the shared broker and SparkSession."""
    topics.ensure_topics(settings, settings.topics.tolls_events)
    return settings


def send(settings, values, keys=None):
    """Produce raw values (keyed by `keys`, default: each one's transaction_id); return
    (partition, offset) of each, in order."""
    producer = topics.producer(settings)
    keys = [key_of(v) for v in values] if keys is None else keys
    futures = [producer.send(settings.topics.tolls_events, value=v, key=k)
               for k, v in zip(keys, values, strict=True)]
    producer.flush()
    producer.close()
    return [(m.partition, m.offset) for m in (f.get(timeout=30) for f in futures)]


def wave(settings, count, seed, start, **fractions):
    options = tolls.TollsOptions(count=count, seed=seed, start=start,
                                 span=dt.timedelta(hours=1), customers=30,
                                 faults=stream.Faults(**fractions))
    return tolls.produce(settings, tolls.toll_records(options), total=count,
                         progress=False).events


def merged(serving):
    serving.refresh()
    return {view: set(serving.con.execute(f"select * from {view}").fetchall())
            for view in MERGED_VIEWS}


def read_table(spark, settings, name):
    union = schemas.stored_in(name)
    if union:
        return lake.read_table(spark, settings, union).transform(member_rows(name))
    return spark.read.format("delta").load(lake.table_path(settings, name))


def test_events_are_landed_with_their_kafka_offsets(pipeline, spark):
    settings = pipeline
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(minutes=30)
    records = list(tolls.toll_records(tolls.TollsOptions(count=40, seed=5, start=start)))
    coordinates = send(settings, [r.value for r in records], [r.key for r in records])

    totals = tolls_stream.run(spark, settings, until_idle=True)

    landed = read_table(spark, settings, "tolls_landing")
    got = {(r.transaction_id, r.kafka_partition, r.kafka_offset, r.kafka_topic)
           for r in landed.collect()}
    expected = {(r.event["transaction_id"], p, o, settings.topics.tolls_events)
                for r, (p, o) in zip(records, coordinates, strict=True)}
    assert got == expected
    assert totals.read == totals.landed == 40
    row = landed.where(F.col("transaction_id") == records[0].event["transaction_id"]).first()
    assert row.amount == records[0].event["amount"]
    assert row.event_time.replace(tzinfo=dt.timezone.utc) == records[0].event["event_time"]
    assert row.ingested_at is not None and row.ingest_date is not None


def test_malformed_record_is_quarantined_and_the_job_goes_on(pipeline, spark):
    settings = pipeline
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    good = [tolls.encode_event({**e, "event_time": now}) for e in (
        next(tolls.toll_records(tolls.TollsOptions(count=1, seed=s, start=now))).event
        for s in (1, 2, 3))]
    bad = b'{"transaction_id": "x-1", "amount": '
    coordinates = send(settings, [good[0], bad, good[1]])
    tolls_stream.run(spark, settings, until_idle=True)

    quarantine = read_table(spark, settings, "tolls_quarantine").collect()
    assert [(bytes(q.raw_value), q.kafka_partition, q.kafka_offset, q.reason)
            for q in quarantine] == [(bad, *coordinates[1],
                                      "malformed JSON: not a valid JSON object")]
    assert read_table(spark, settings, "tolls_landing").count() == 2

    send(settings, [good[2], b"\xff\xfe\xfd"])  # the same job, restarted from its checkpoint
    totals = tolls_stream.run(spark, settings, until_idle=True)
    assert (totals.read, totals.landed, totals.quarantined) == (2, 1, 1)
    assert read_table(spark, settings, "tolls_landing").count() == 3
    progress = read_table(spark, settings, "tolls_stream_progress").agg(
        F.sum("read_count"), F.sum("landed_count"), F.sum("quarantined_count")).first()
    assert tuple(progress) == (5, 3, 2)
    # the last micro-batch's duration, up to its speed rows: within its wall time
    last = read_table(spark, settings, "tolls_stream_progress").orderBy(
        F.desc("ingest_batch_id")).first()
    assert 0 < last.processing_seconds <= totals.seconds[-1]


def test_views_are_right_and_the_merge_is_exact_around_batch_runs(pipeline, spark, capsys,
                                                                   monkeypatch, tmp_path):
    settings = pipeline
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    accepted = wave(settings, 3000, seed=21, start=now - dt.timedelta(hours=3),
                    late_fraction=0.05, out_of_order_fraction=0.05, malformed_fraction=0.02,
                    duplicate_fraction=0.03)
    totals = tolls_stream.run(spark, settings, until_idle=True)
    assert totals.landed == len(accepted) and totals.duplicates > 50
    assert totals.read == totals.landed + totals.quarantined + totals.duplicates
    serving = Serving(settings)

    # the speed view alone: every accepted event in its 10-minute window
    speed = serving.query(
        "select customer_id, window_start, sum(transaction_count) as n, sum(spend) as spend "
        "from speed.tolls_customer_spend_10m group by all")
    serving.con.register("accepted_events", events_table(accepted))
    truth = serving.con.execute(
        "select customer_id, time_bucket(interval 10 minutes, event_time) as w, count(*), "
        "sum(amount) from accepted_events group by all").fetchall()
    assert set(map(tuple, (r.values() for r in speed.to_pylist()))) == set(truth)

    # before any batch run
    assert not differences(expected_reports(accepted), merged(serving))

    run1 = tolls_reports.run(spark, settings)
    assert run1.landed_event_count == len(accepted)
    serving.refresh()
    batch_only = {view: set(serving.con.execute(f"select * from batch.{view}").fetchall())
                  for view in MERGED_VIEWS}
    assert not differences(expected_reports(accepted), batch_only)
    assert not differences(expected_reports(accepted), merged(serving))

    # between batch runs: a second wave is only in the speed part
    accepted += wave(settings, 1000, seed=22, start=now - dt.timedelta(hours=1),
                     late_fraction=0.1, malformed_fraction=0.02)
    tolls_stream.run(spark, settings, until_idle=True)
    assert not differences(expected_reports(accepted), merged(serving))
    covered = serving.con.execute(
        "select count(*) from speed.tolls_customer_spend_10m s, batch.cutover c "
        "where c.view_name = 'tolls_customer_monthly_spend' "
        "and s.landing_version <= c.landing_version").fetchone()[0]
    assert covered > 0  # old speed rows are still there, and must not count
    # the same merged views from the served database file, by a client without lambdalake
    assert_served_file_matches(serving, settings, accepted, capsys, monkeypatch, tmp_path)

    # after a second batch run
    run2 = tolls_reports.run(spark, settings)
    assert run2.landing_version > run1.landing_version
    assert not differences(expected_reports(accepted), merged(serving))
    cutover = dict(serving.con.execute("select * from batch.cutover where view_name in "
                                       f"{tuple(tolls_reports.BATCH_VIEWS)}").fetchall())
    assert set(cutover.values()) == {run2.landing_version}
    serving.close()


def test_a_failed_batch_run_keeps_the_last_published_views(pipeline, spark, monkeypatch):
    settings = pipeline
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    accepted = wave(settings, 500, seed=31, start=now - dt.timedelta(hours=1))
    tolls_stream.run(spark, settings, until_idle=True)
    tolls_reports.run(spark, settings)
    accepted += wave(settings, 200, seed=32, start=now - dt.timedelta(minutes=30))
    tolls_stream.run(spark, settings, until_idle=True)

    def broken(events):
        raise RuntimeError("disk full")

    views = dict(tolls_reports.BATCH_VIEWS)
    views["tolls_plaza_revenue_30m"] = broken  # fails after the first view was overwritten
    monkeypatch.setattr(tolls_reports, "TOLLS_REPORTS", dataclasses.replace(
        tolls_reports.TOLLS_REPORTS, views=views))
    with pytest.raises(RuntimeError, match="disk full"):
        tolls_reports.run(spark, settings)
    serving = Serving(settings)
    assert not differences(expected_reports(accepted), merged(serving))
    serving.close()


def test_query_cli_prints_json_rows(pipeline, spark, capsys, monkeypatch, tmp_path):
    from lambdalake import cli

    settings = pipeline
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    accepted = wave(settings, 100, seed=41, start=now - dt.timedelta(minutes=50))
    tolls_stream.run(spark, settings, until_idle=True)
    monkeypatch.setenv("LAMBDALAKE_LAKE_ROOT", settings.lake.root)
    capsys.readouterr()  # drop the streaming job's own output
    (tmp_path / "empty.toml").write_text("")
    monkeypatch.setenv("LAMBDALAKE_CONFIG", str(tmp_path / "empty.toml"))
    assert cli.main(["query", "--format", "json",
                     "select customer_id, spend from tolls_customer_monthly_spend"]) == 0
    rows = json.loads(capsys.readouterr().out)
    total = sum(Decimal(str(r["spend"])) for r in rows)
    assert total == sum(e["amount"] for e in accepted)
    assert cli.main(["query", "select * from no_such_table"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    # with no SQL: the statements piped in, each result printed, an error in one line
    monkeypatch.setattr("sys.stdin", io.StringIO(
        "select count(*) as n\n  from landing.tolls_landing;\nselect * from nowhere;\n"))
    assert cli.main(["query", "--format", "csv"]) == 2
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["n", str(len(accepted))]
    assert out[2].startswith("error: Catalog Error") and len(out) == 3


PLAIN_DUCKDB_CLIENT = """
import json, sys
import duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
con.execute("SET TimeZone = 'UTC'")
views = json.loads(sys.argv[2])
result = {v: sorted(map(repr, con.execute(f"select * from {v}").fetchall())) for v in views}
try:
    con.execute("create table main.mine (x int)")
    result["write"] = "allowed"
except duckdb.Error as exc:
    result["write"] = str(exc)
result["imported"] = sorted(m for m in sys.modules if m.split(".")[0] in
                            ("lambdalake", "serving", "deltalake", "pyspark"))
print(json.dumps(result))
"""


def assert_served_file_matches(serving, settings, accepted, capsys, monkeypatch, tmp_path):
    """`lambdalake serve --once` writes a read-only file whose views a plain duckdb client (no
    lambdalake, no Delta reader imported) reads exactly as `serving` does, and cannot write."""
    from lambdalake import cli

    database = tmp_path / "served" / "lake.duckdb"
    (tmp_path / "empty.toml").write_text("")
    monkeypatch.setenv("LAMBDALAKE_CONFIG", str(tmp_path / "empty.toml"))
    monkeypatch.setenv("LAMBDALAKE_LAKE_ROOT", settings.lake.root)
    capsys.readouterr()
    assert cli.main(["serve", "--once", "--database", str(database)]) == 0
    assert f"serve: wrote {database}" in capsys.readouterr().out
    assert stat.S_IMODE(database.stat().st_mode) == 0o444

    views = [*MERGED_VIEWS, "tolls_customer_spend_this_month", "landing.tolls_landing",
             "speed.tolls_customer_spend_10m", "batch.cutover"]
    client = subprocess.run([sys.executable, "-c", PLAIN_DUCKDB_CLIENT, str(database),
                             json.dumps(views)], capture_output=True, text=True, check=True,
                            cwd=tmp_path)
    result = json.loads(client.stdout)
    assert result.pop("imported") == []
    assert "read-only" in result.pop("write")
    serving.refresh()
    for view in views:
        rows = serving.con.execute(f"select * from {view}").fetchall()
        assert result[view] == sorted(map(repr, rows)), view
    assert len(result["landing.tolls_landing"]) == len(accepted)
