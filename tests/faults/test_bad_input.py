"""Every bad input class of SPEC section 7 (issue 9), sent through Kafka to the running streaming
job: each record is quarantined with its reason, nothing else is lost, and the job keeps
running (it lands a good record sent after all of them)."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import time

import pytest
from kafka import KafkaProducer

from lambdalake import lake, plazas, topics
from lambdalake.generators import tolls
from tests.integration.test_cli_processes import cli_env

pytestmark = pytest.mark.integration

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def event(n: int, **changes: object) -> dict:
    """A good event (as JSON-ready values), with `changes` applied (None deletes a field)."""
    good = {"transaction_id": f"bad-input-{n:03d}", "customer_id": "C00001", "plate": "ABC123",
            "plaza_id": "P01", "lane": 2, "vehicle_class": 1, "amount": 2.5, "currency": "USD",
            "event_time": (NOW - dt.timedelta(minutes=5)).isoformat()}
    good.update(changes)
    return {k: v for k, v in good.items() if v is not None}


def record(n: int, **changes: object) -> tuple[bytes | None, bytes]:
    """A (key, value) whose value is event `n` as JSON, keyed by its transaction id."""
    body = event(n, **changes)
    return str(body.get("transaction_id", n)).encode(), json.dumps(body).encode()


def raw(n: int, value: bytes | None) -> tuple[bytes, bytes | None]:
    return f"bad-input-{n:03d}".encode(), value


# class -> (records, a piece of the reason every one of them must get)
BAD = {
    "malformed JSON": ([raw(1, b'{"transaction_id": "bad-input-001", "amount": ')],
                       "malformed JSON"),
    "non-UTF-8 bytes": ([raw(2, b"\xff\xfe" + record(2)[1])], "not valid UTF-8"),
    "missing field": ([record(3, plaza_id=None)], "missing field plaza_id"),
    "mistyped field": ([record(4, lane="2"), record(5, vehicle_class=2.5)],
                       "must be a JSON integer"),
    "mistyped text field": ([record(28, plate=1234), record(29, customer_id=True)],
                            "must be a JSON string"),
    "negative amount": ([record(6, amount=-2.5)], "amount is negative"),
    "absurd amount": ([record(7, amount=25_000_000)], "amount is above the limit"),
    "unknown plaza": ([record(8, plaza_id="P99")], "unknown plaza_id: P99"),
    "far future": ([record(9, event_time=(NOW + dt.timedelta(days=365)).isoformat())],
                   "event_time is in the future"),
    "far past": ([record(10, event_time="1990-01-01T00:00:00Z")], "days old"),
    "oversized message": ([record(11, plate="X" * 70_000)], "oversized message"),
    "duplicate transaction id": ([record(12), record(12)], "duplicate: transaction_id"),
    "unexpected extra field": ([record(13, discount=1)], "unexpected field(s): discount"),
    "null key": ([(None, record(14)[1])], "record key is null"),
    "key not the transaction id": ([(b"other", record(15)[1])],
                                   "record key is not the transaction_id"),
    "empty value": ([raw(16, b""), raw(17, None)], "empty message"),
    "JSON array": ([raw(18, b"[1, 2, 3]"), raw(19, json.dumps([event(19)]).encode())],
                   "not a valid JSON object"),
    "NaN and Infinity": ([raw(20, record(20)[1].replace(b"2.5", b"NaN")),
                          raw(21, record(21)[1].replace(b"2.5", b"Infinity")),
                          raw(22, record(22)[1].replace(b'"lane": 2', b'"lane": -Infinity'))],
                         "malformed JSON"),  # NaN and Infinity are not JSON numbers
    "huge numbers": ([raw(23, record(23)[1].replace(b'"lane": 2', b'"lane": ' + b"9" * 40)),
                      raw(24, record(24)[1].replace(b"2.5", b"1e400")),
                      raw(25, record(25)[1].replace(b"2.5", b"9" * 60 + b".5"))],
                     "lane must be a JSON integer|amount is not a decimal|amount is above"),
    "very long strings": ([record(26, customer_id="C" * 5_000),
                           record(27, transaction_id="T" * 1_000)], "is too long"),
    "escaped field name": ([raw(30, record(30)[1].replace(b'"lane"', b'"l\\u0061ne"'))],
                           "field name(s) written with escapes: lane"),
}


def quarantined(spark, settings) -> dict[int, str]:
    rows = lake.read_table(spark, settings, "tolls_quarantine").select(
        "kafka_offset", "reason").collect()
    return {r[0]: r[1] for r in rows}


def test_every_bad_input_class_is_quarantined_with_its_reason_by_the_running_job(
        kafka_broker, settings, spark, tmp_path):
    topic = settings.topics.tolls_events
    topics.ensure_topics(settings.replace(kafka={"topic_partitions": 1}), topic)
    plazas.write_plazas(settings, tolls.plazas())
    log = (tmp_path / "job.log").open("w")
    job = subprocess.Popen([sys.executable, "-m", "lambdalake.cli", "speed", "run"],
                           env=cli_env(settings), stdout=log, stderr=subprocess.STDOUT)
    producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers,
                             max_request_size=1_000_000)
    try:
        offsets: dict[int, str] = {}  # offset -> bad input class
        for name, (records, _reason) in BAD.items():
            for key, value in records:
                sent = producer.send(topic, key=key, value=value).get(timeout=30)
                offsets[sent.offset] = name

        def landed_in_time(key: bytes, value: bytes) -> None:
            offset = producer.send(topic, key=key, value=value).get(timeout=30).offset
            deadline = time.monotonic() + 180
            while lake.read_table(spark, settings, "tolls_landing").where(
                    f"kafka_offset = {offset}").count() == 0:
                assert job.poll() is None, (tmp_path / "job.log").read_text()[-3000:]
                assert time.monotonic() < deadline, (
                    f"the good record at offset {offset} was not landed in 180 s; landed: "
                    f"{lake.read_table(spark, settings, 'tolls_landing').count()}; job log:\n"
                    + (tmp_path / "job.log").read_text()[-3000:])
                time.sleep(1)

        landed_in_time(*record(99))
        assert job.poll() is None  # still running after every bad input
        # a plaza added while the job runs counts from its next micro-batch
        plazas.add_plaza(settings, "P99")
        landed_in_time(*record(100, plaza_id="P99"))
    finally:
        producer.close()
        job.send_signal(signal.SIGTERM)
        job.wait(timeout=120)
        log.close()

    reasons = quarantined(spark, settings)
    landed = {r[0]: r[1] for r in lake.read_table(spark, settings, "tolls_landing")
              .select("kafka_offset", "transaction_id").collect()}
    # exactly the first copy of the duplicate and the good records landed
    assert sorted(landed.values()) == ["bad-input-012", "bad-input-099", "bad-input-100"]
    for offset, name in offsets.items():
        if offset in landed:
            assert name == "duplicate transaction id"
            continue
        assert offset in reasons, f"{name}: record at offset {offset} neither landed nor " \
                                  "quarantined"
        expected = BAD[name][1]
        assert any(piece in reasons[offset] for piece in expected.split("|")), (
            f"{name}: reason {reasons[offset]!r} does not say {expected!r}")
    assert len(reasons) == len(offsets) - 1
