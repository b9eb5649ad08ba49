"""Shared set-up of the benchmarks: a private lake and a private local Kafka broker."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from lambdalake import broker
from lambdalake.config import Settings, load_settings
from lambdalake.generators import tolls


@contextlib.contextmanager
def bench_environment(keep: bool = False, kafka: bool = True) -> Iterator[Settings]:
    """Settings on a temporary lake with (by default) a freshly started broker, stopped after."""
    root = Path(tempfile.mkdtemp(prefix="lambdalake-bench-"))
    settings = load_settings().replace(
        lake={"root": str(root / "lake")}, checkpoint={"root": str(root / "checkpoints")},
        state={"dir": str(root / "state")},
        kafka={"bootstrap_servers": f"127.0.0.1:{broker.free_port()}",
               "local_controller_port": broker.free_port()},
        topics={"tolls_events": "bench.tolls.events"})
    if kafka:
        broker.start(settings, heap="1g")
    try:
        yield settings
    finally:
        if kafka:
            broker.stop(settings)
        if not keep:
            import shutil

            shutil.rmtree(root, ignore_errors=True)


def _send(producer: Any, topic: str, record: tolls.TollRecord) -> None:  # noqa: ANN401
    """Queue one record with a confluent-kafka producer, serving its acks while its queue is
    full."""
    while True:
        try:
            producer.produce(topic, key=record.key, value=record.value)
            return
        except BufferError:
            producer.poll(0.01)


def produce_all(bootstrap_servers: str, topic: str, records: Iterable[tolls.TollRecord]
                ) -> int:
    """Send the records as fast as confluent-kafka can (batched, every ack awaited); return how
    many were sent. For benchmarks whose producing is not what they time."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap_servers, "acks": "all",
                         "linger.ms": 20, "enable.idempotence": True})
    sent = 0
    for record in records:
        _send(producer, topic, record)
        sent += 1
    if producer.flush(60):
        raise RuntimeError(f"{topic}: not every record was acknowledged by Kafka")
    return sent


def produce_paced(bootstrap_servers: str, topic: str, options: tolls.TollsOptions, rate: float,
                  out: str | None) -> None:
    """Child process: send the records at `rate`/s with confluent-kafka, then write one
    `transaction_id<TAB>wall-clock send time` line per accepted event to `out` (if given), in
    send order."""
    from confluent_kafka import Producer

    # linger.ms 5: the client's default (librdkafka since 1.5, Kafka's Java producer since 4.0);
    # its wait is inside the measured latency, and the broker sharing the job's two cores then
    # handles batches rather than one request per record
    producer = Producer({"bootstrap.servers": bootstrap_servers, "acks": "all",
                         "linger.ms": 5, "enable.idempotence": True})
    sent: list[tuple[str, float]] = []
    t0 = time.time()
    for i, record in enumerate(tolls.toll_records(options)):
        wait = t0 + i / rate - time.time()
        if wait > 0.002:
            time.sleep(wait)
        _send(producer, topic, record)
        producer.poll(0)
        if record.kind == "event":
            sent.append((record.event["transaction_id"], time.time()))
    producer.flush()
    if out:
        Path(out).write_text("".join(f"{tx}\t{at!r}\n" for tx, at in sent))
