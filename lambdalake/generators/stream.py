"""What every event generator shares: a stream of Kafka records with faults mixed in, and
sending it to Kafka.

A domain gives `records` three pure functions: one event at a time, its wire bytes, and a
malformed variant. `records` spaces event times evenly over the span and mixes in late events
(event time up to `max_lateness` earlier), out-of-order records (held back and sent later),
duplicates (a record sent again, as a producer retry would) and malformed records. Each record
says what it is, so callers can compute the ground truth from the accepted events. Deterministic
for the options and the domain's functions.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from tqdm import tqdm

from lambdalake import topics
from lambdalake.config import Settings


@dataclass(frozen=True)
class Faults:
    """How many of the records are late, out of order, duplicated or malformed."""

    late_fraction: float = 0.0
    max_lateness: dt.timedelta = dt.timedelta(days=2)
    out_of_order_fraction: float = 0.0
    duplicate_fraction: float = 0.0
    malformed_fraction: float = 0.0


@dataclass(frozen=True)
class StreamOptions:
    """What every generator is asked for: how many records, the seed, the span of event times
    (from `start`, default: `span` before now) and the faults mixed in. A domain's options add
    its own fields."""

    count: int
    seed: int = 0
    start: dt.datetime | None = None
    span: dt.timedelta = dt.timedelta(hours=1)
    faults: Faults = field(default_factory=Faults)


@dataclass(frozen=True)
class Record:
    """One Kafka record and what it is: `event` (accepted), `duplicate` or `malformed`."""

    key: bytes | None
    value: bytes
    kind: str
    event: dict | None = None


@dataclass(frozen=True)
class Domain:
    """A domain's side of the generator: `event(rng, at)` makes one event at event time `at`;
    `encode(rng, event)` its wire bytes; `malform(rng, event)` a broken variant; `key(event)`
    its Kafka record key."""

    event: Callable[[random.Random, dt.datetime], dict]
    encode: Callable[[random.Random, dict], bytes]
    malform: Callable[[random.Random, dict], bytes]
    key: Callable[[dict], bytes]


def malformed(rng: random.Random, wire: bytes, cut: int,
              edits: Sequence[Callable[[dict], None]]) -> bytes:
    """A broken variant of an event's good `wire` bytes: cut short by `cut` bytes (truncated
    JSON), prefixed with bytes that are not UTF-8, or parsed and changed by one of `edits`."""
    kind = rng.randrange(2 + len(edits))
    if kind == 0:
        return wire[:-cut]
    if kind == 1:
        return b"\xff\xfe" + wire
    good = json.loads(wire)
    edits[kind - 2](good)
    return json.dumps(good).encode()


def default_start(span: dt.timedelta) -> dt.datetime:
    """Start of generated event times when none is given: `span` before now, whole seconds."""
    return (dt.datetime.now(dt.timezone.utc) - span).replace(microsecond=0)


def records(domain: Domain, count: int, seed: int, start: dt.datetime | None,
            span: dt.timedelta, faults: Faults) -> Iterator[Record]:
    """`count` records of `domain` with `faults` mixed in (see the module docstring)."""
    rng = random.Random(seed)
    start = start or default_start(span)
    step = span / max(count, 1)
    landed: list[Record] = []
    held: list[Record] = []
    for index in range(count):
        at = start + step * index
        if rng.random() < faults.late_fraction:
            at -= faults.max_lateness * rng.random()
        event = domain.event(rng, at)
        roll = rng.random()
        if roll < faults.malformed_fraction:
            yield Record(None, domain.malform(rng, event), "malformed")
            continue
        record = Record(domain.key(event), domain.encode(rng, event), "event", event)
        if rng.random() < faults.out_of_order_fraction:
            held.append(record)
            continue
        yield record
        landed.append(record)
        if held and rng.random() < 0.2:
            yield from held
            landed.extend(held)
            held = []
        if landed and rng.random() < faults.duplicate_fraction:
            again = landed[rng.randrange(len(landed))]
            yield Record(again.key, again.value, "duplicate", again.event)
        if len(landed) > 10_000:
            landed = landed[-5_000:]
    yield from held


@dataclass(frozen=True)
class ProduceReport:
    """What `produce` sent."""

    sent: int
    events: list[dict]
    seconds: float


def produce(settings: Settings, records: Iterable[Record], topic: str, total: int | None = None,
            rate: float | None = None, progress: bool = True) -> ProduceReport:
    """Send records to `topic` (at `rate` records/s if given) and wait for every ack."""
    topics.ensure_topics(settings, topic)
    producer = topics.producer(settings)
    events: list[dict] = []
    started = time.monotonic()
    sent = 0
    bar = tqdm(total=total, unit="ev", desc=f"producing to {topic}", disable=not progress,
               mininterval=0.5)
    try:
        for record in records:
            if rate:
                wait = started + sent / rate - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            producer.send(topic, key=record.key, value=record.value)
            if record.kind == "event":
                events.append(record.event)
            sent += 1
            bar.update(1)
        producer.flush()
    finally:
        bar.close()
        producer.close()
    return ProduceReport(sent, events, time.monotonic() - started)
