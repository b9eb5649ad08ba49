"""`lambdalake status` against a running streaming job (separate processes, real broker)."""

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from lambdalake import topics
from lambdalake.generators import stream, tolls
from tests.integration.test_cli_processes import cli_env, lambdalake

pytestmark = pytest.mark.integration


def status(env) -> tuple[int, str]:
    result = lambdalake("status", env=env, timeout=60)
    assert result.stderr.strip() == "", result.stderr
    return result.returncode, result.stdout


def line(screen: str, label: str) -> str:
    found = [row for row in screen.splitlines() if row.startswith(label)]
    assert found, f"no {label!r} line in:\n{screen}"
    return found[0][len(label):].strip()


def test_status_shows_the_running_job_its_progress_and_lag_then_its_death(
        kafka_broker, settings, tmp_path):
    env = cli_env(settings, LAMBDALAKE_TOPICS_TOLLS_ALERTS=f"{settings.topics.tolls_events}.a")
    topics.ensure_topics(settings, settings.topics.tolls_events)
    code, screen = status(env)  # nothing ran yet
    assert code == 1
    assert line(screen, "streaming job") == "not running (no job file)"
    assert line(screen, "last micro-batch") == "none yet"

    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=20)
    report = tolls.produce(settings, tolls.toll_records(tolls.TollsOptions(count=300, seed=8,
            start=start, faults=stream.Faults(malformed_fraction=0.05, duplicate_fraction=0.05))),
        progress=False)
    log = (tmp_path / "job.log").open("w")
    job = subprocess.Popen([sys.executable, "-m", "lambdalake.cli", "speed", "run"], env=env,
                           stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        code, screen = status(env)
        # until a micro-batch's progress row is there and the checkpoint has every record read
        while not (re.search(r"^records ", screen, re.M) and " 0 records behind" in screen):
            assert job.poll() is None, (tmp_path / "job.log").read_text()[-3000:]
            assert time.monotonic() < deadline, screen
            time.sleep(1)
            code, screen = status(env)
        assert line(screen, "streaming job").startswith(f"running: pid {job.pid}, started ")
        records = line(screen, "records")
        landed = len(report.events)
        match = re.fullmatch(r"read ([\d,]+) = landed ([\d,]+) \+ quarantined ([\d,]+) \+ "
                             r"duplicates ([\d,]+) over [\d,]+ micro-batches", records)
        assert match, records
        read, got_landed, quarantined, duplicates = (int(g.replace(",", ""))
                                                     for g in match.groups())
        assert (read, got_landed) == (report.sent, landed)
        assert quarantined + duplicates == report.sent - landed and duplicates > 0
        assert line(screen, "kafka lag").startswith(
            f"{settings.topics.tolls_events}: 0 records behind (p0 0, p1 0;")
        assert line(screen, "batch cut-over").startswith("no batch run published yet")
        assert line(screen, "gaps") == "none recorded"
        assert re.search(r"\(landing v\d+\) in \d+\.\ds$", line(screen, "last micro-batch"))
        assert code == 1  # no batch run yet: attention

        # more records than the job has read: the lag says so while it is stopped
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(timeout=30)
        tolls.produce(settings, tolls.toll_records(tolls.TollsOptions(
            count=50, seed=9, start=start)), progress=False)
        code, screen = status(env)
        assert code == 1
        assert line(screen, "streaming job").startswith(
            f"not running: pid {job.pid} (started ")
        assert "ended without a clean stop" in line(screen, "streaming job")
        assert re.match(rf"{re.escape(settings.topics.tolls_events)}: 50 records behind",
                        line(screen, "kafka lag"))
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait(timeout=30)
        log.close()


def test_a_clean_stop_and_a_failure_are_told_apart(settings):
    env = cli_env(settings, LAMBDALAKE_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1",
                  LAMBDALAKE_KAFKA_OUTAGE_TIMEOUT_S="1")
    failed = lambdalake("speed", "run", "--until-idle", env=env)
    assert failed.returncode == 2
    code, screen = status(env)
    assert code == 1
    assert re.match(r"not running: failed: Kafka at 127\.0\.0\.1:1 unreachable .* at \d{4}-",
                    line(screen, "streaming job"))
    assert line(screen, "kafka lag") == "unknown: Kafka at 127.0.0.1:1 does not answer"
