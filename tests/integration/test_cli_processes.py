"""The CLI as users run it: separate processes, real broker, real Spark."""

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time

from lambdalake import topics
from lambdalake.generators import tolls


def cli_env(settings, **extra):
    env = dict(os.environ)
    env.update({
        "LAMBDALAKE_KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "LAMBDALAKE_KAFKA_LOCAL_CONTROLLER_PORT": str(settings.kafka.local_controller_port),
        "LAMBDALAKE_LAKE_ROOT": settings.lake.root,
        "LAMBDALAKE_CHECKPOINT_ROOT": settings.checkpoint.root,
        "LAMBDALAKE_STATE_DIR": settings.state.dir,
        "LAMBDALAKE_TOPICS_TOLLS_EVENTS": settings.topics.tolls_events,
        "LAMBDALAKE_TOPICS_CLICKS_EVENTS": settings.topics.clicks_events,
        "LAMBDALAKE_SPARK_DRIVER_MEMORY": "1g",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


def lambdalake(*args, env, timeout=120):
    return subprocess.run([sys.executable, "-m", "lambdalake.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_kafka_status_reports_the_running_broker(kafka_broker, settings):
    result = lambdalake("kafka", "status", env=cli_env(settings))
    assert result.returncode == 0
    assert "running" in result.stdout and "accepting connections" in result.stdout


def test_missing_broker_is_waited_for_then_one_readable_line(settings, tmp_path):
    env = cli_env(settings, LAMBDALAKE_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1",
                  LAMBDALAKE_KAFKA_OUTAGE_TIMEOUT_S="3")
    result = lambdalake("speed", "run", "--until-idle", env=env)
    assert result.returncode == 2
    assert "speed: waiting for Kafka at 127.0.0.1:1" in result.stdout
    errors = [line for line in result.stderr.strip().splitlines()
              if not line.startswith("WARNING")]  # the JVM's own start-up warnings
    assert len(errors) == 1, result.stderr
    assert re.fullmatch(
        r"lambdalake: error: Kafka at 127\.0\.0\.1:1 unreachable or failing for \d+s, longer "
        r"than kafka\.outage_timeout_s=3: stopping \(a restart resumes from the checkpoint\); "
        r"last failure: .*cannot reach Kafka at 127\.0\.0\.1:1.*", errors[0])


def test_streaming_job_stops_gracefully_on_sigterm(kafka_broker, settings):
    env = cli_env(settings)
    topics.ensure_topics(settings, settings.topics.tolls_events)
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)
    tolls.produce(settings, tolls.toll_records(tolls.TollsOptions(count=200, seed=3,
                                                                   start=start)),
                  progress=False)
    job = subprocess.Popen([sys.executable, "-m", "lambdalake.cli", "speed", "run"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = job.stdout.readline()
        lines.append(line)
        if "landed 200" in line or not line:
            break
    assert any("landed 200" in line for line in lines), lines
    job.send_signal(signal.SIGTERM)
    out, _ = job.communicate(timeout=60)
    assert job.returncode == 0, out
    assert "stopping after the current micro-batch" in out
    assert "speed: done:" in out and "landed 200" in out


def test_reference_commands_exit_cleanly_every_time(settings):
    # pyarrow's threaded scan made about half of these runs abort at exit (code 134)
    # with tables of a few files (each change adds one)
    env = cli_env(settings)
    for customer_id, amount in (("C00001", "100"), ("C00002", "none"), ("C00001", "150")):
        assert lambdalake("customers", "set-threshold", customer_id, amount,
                          env=env).returncode == 0
    for plaza_id in ("P01", "P02", "P01"):
        assert lambdalake("plazas", "add", plaza_id, "--name", "Exit", env=env).returncode == 0
    for _ in range(6):
        listed = lambdalake("customers", "list", env=env)
        assert (listed.returncode, listed.stdout) == (0, "C00001\t150.00\nC00002\tnone\n"), \
            listed.stderr
        listed = lambdalake("plazas", "list", env=env)
        assert (listed.returncode, listed.stdout) == (0, "P01\tExit\nP02\tExit\n"), \
            listed.stderr
