"""The streaming job rides out a Kafka outage (issue 9): a broker stopped while the job runs, and
a job (re)started while the broker is down, replaying a micro-batch that needs Kafka to tell
which of its alerts were already sent. Each test runs its own broker, so that stopping it does
not disturb the other tests."""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from lambdalake import broker, customers, lake, topics
from lambdalake.config import Settings
from lambdalake.generators import stream, tolls
from speed import tolls_stream
from tests.integration.test_replay import alert_keys

pytestmark = pytest.mark.integration


def produce(settings: Settings, seed: int, count: int) -> list[dict]:
    """Send `count` toll records (20 customers with thresholds); return the accepted events."""
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    options = tolls.TollsOptions(count=count, seed=seed, start=start, customers=20,
                                 faults=stream.Faults(duplicate_fraction=0.0))
    return tolls.produce(settings, tolls.toll_records(options), progress=False).events


def landed_ids(spark, settings: Settings) -> list[str]:
    return [r[0] for r in lake.read_table(spark, settings, "tolls_landing")
            .select("transaction_id").collect()]


def later(seconds: float, action) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(seconds), action()), daemon=True)
    thread.start()
    return thread


def test_a_replay_started_while_the_broker_is_down_waits_for_it(own_broker, spark, capsys):
    settings = own_broker
    topics.ensure_topics(settings, settings.topics.tolls_events, settings.topics.tolls_alerts)
    customers.write_customers(settings, tolls.customers(20, 3))
    events = produce(settings, seed=4, count=1500)
    first = tolls_stream.run(spark, settings, until_idle=True)
    keys = alert_keys(settings)
    assert first.batches == 1 and len(keys) > 0
    # a crash after the micro-batch's writes, before Spark recorded it: it is replayed, and the
    # replay asks Kafka which alerts were already sent
    commits = Path(lake.checkpoint_path(settings, tolls_stream.QUERY_NAME)) / "commits"
    for marker in (commits / "0", commits / ".0.crc"):
        marker.unlink(missing_ok=True)

    broker.stop(settings)
    restarted = later(8, lambda: broker.start(settings))
    replay = tolls_stream.run(spark, settings, until_idle=True)
    restarted.join()

    assert replay.batches == 1 and replay.read == first.read
    assert "speed: waiting for Kafka" in capsys.readouterr().out
    assert sorted(landed_ids(spark, settings)) == sorted(e["transaction_id"] for e in events)
    assert alert_keys(settings) == keys  # none sent twice


def test_a_broker_restart_while_the_job_runs_loses_and_repeats_nothing(own_broker, spark,
                                                                       capsys):
    settings = own_broker
    topics.ensure_topics(settings, settings.topics.tolls_events, settings.topics.tolls_alerts)
    customers.write_customers(settings, tolls.customers(20, 3))
    events = produce(settings, seed=5, count=1000)
    expected = len(events)
    sent: list[dict] = []

    def chaos() -> None:
        deadline = time.monotonic() + 240
        while len(landed_ids(spark, settings)) < expected and time.monotonic() < deadline:
            time.sleep(0.5)
        broker.stop(settings)  # while the job waits for its next micro-batch
        time.sleep(10)
        broker.start(settings)
        sent.extend(produce(settings, seed=6, count=1000))
        while (len(landed_ids(spark, settings)) < expected + len(sent)
               and time.monotonic() < deadline):
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)  # the job stops after its current micro-batch

    thread = threading.Thread(target=chaos, daemon=True)
    thread.start()
    totals = tolls_stream.run(spark, settings, until_idle=False)
    thread.join()

    ids = landed_ids(spark, settings)
    assert len(ids) == len(set(ids)) == expected + len(sent)
    assert totals.landed == len(ids)
    keys = alert_keys(settings)
    assert len(keys) == len(set(keys)) == lake.read_table(spark, settings,
                                                           "tolls_alerts").count() > 0
