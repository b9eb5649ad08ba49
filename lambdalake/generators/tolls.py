"""Generator of toll events (the JSON wire format of `schemas/tolls_event.json`) and customers.

`toll_records` is pure and deterministic for its options (seed, start, ...); `produce` writes the
records to Kafka with kafka-python. Fractions of late, out-of-order, duplicate and malformed
records exercise the pipeline's guarantees; each record says what it is, so callers can compute the
ground truth from the accepted events.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal

from tqdm import tqdm

from lambdalake import topics
from lambdalake.config import Settings

PLAZAS = tuple(f"P{n:02d}" for n in range(1, 13))
CLASS_WEIGHTS = (60, 20, 10, 6, 4)
BASE_TOLL = {1: Decimal("2.50"), 2: Decimal("4.00"), 3: Decimal("6.75"), 4: Decimal("9.50"),
             5: Decimal("12.25")}


@dataclass(frozen=True)
class TollsOptions:
    """What to generate."""

    count: int
    seed: int = 0
    start: dt.datetime | None = None
    span: dt.timedelta = dt.timedelta(hours=1)
    customers: int = 200
    late_fraction: float = 0.0
    max_lateness: dt.timedelta = dt.timedelta(days=2)
    out_of_order_fraction: float = 0.0
    duplicate_fraction: float = 0.0
    malformed_fraction: float = 0.0


@dataclass(frozen=True)
class TollRecord:
    """One Kafka record and what it is: `event` (accepted), `duplicate` or `malformed`."""

    key: bytes | None
    value: bytes
    kind: str
    event: dict | None = None


def default_start(span: dt.timedelta) -> dt.datetime:
    """Start of generated event times when none is given: `span` before now, whole seconds."""
    return (dt.datetime.now(dt.timezone.utc) - span).replace(microsecond=0)


def plazas() -> list[dict]:
    """The toll plazas the generator uses (plaza_id, name), for the plazas table."""
    return [{"plaza_id": p, "name": f"Plaza {p[1:]}"} for p in PLAZAS]


def customer_ids(count: int) -> list[str]:
    """The customer ids the generator uses."""
    return [f"C{n:05d}" for n in range(1, count + 1)]


def customers(count: int, seed: int = 0) -> list[dict]:
    """Customers with a deterministic monthly threshold (every 10th has none)."""
    rng = random.Random(seed)
    rows = []
    for n, customer_id in enumerate(customer_ids(count)):
        threshold = None if n % 10 == 9 else Decimal(rng.choice([50, 75, 100, 150, 250]))
        rows.append({"customer_id": customer_id, "name": f"Customer {customer_id[1:]}",
                     "monthly_threshold": threshold})
    return rows


def _event(rng: random.Random, at: dt.datetime, n_customers: int) -> dict:
    vehicle_class = rng.choices(range(1, 6), weights=CLASS_WEIGHTS)[0]
    plaza_id = rng.choice(PLAZAS)
    surcharge = Decimal(PLAZAS.index(plaza_id) % 4) * Decimal("0.25")
    customer = rng.randrange(1, n_customers + 1)
    return {
        "transaction_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "customer_id": f"C{customer:05d}",
        "plate": f"{rng.choice('ABCDEFGHJKLMNPRSTUVWXYZ')}{rng.randrange(100, 999)}"
                 f"{rng.choice('ABCDEFGHJKLMNPRSTUVWXYZ')}{customer % 100:02d}",
        "plaza_id": plaza_id,
        "lane": rng.randrange(1, 7),
        "vehicle_class": vehicle_class,
        "amount": BASE_TOLL[vehicle_class] + surcharge,
        "currency": "USD",
        "event_time": at,
    }


def encode_event(event: dict, amount_as_string: bool = False) -> bytes:
    """The JSON wire bytes of an event (amount as a JSON number, or as a decimal string)."""
    wire = dict(event)
    amount = event["amount"]
    wire["amount"] = f"{amount:.2f}" if amount_as_string else float(amount)
    wire["event_time"] = event["event_time"].isoformat(timespec="milliseconds")
    return json.dumps(wire, separators=(",", ":")).encode()


def _malformed(rng: random.Random, event: dict) -> bytes:
    good = json.loads(encode_event(event))
    kind = rng.randrange(7)
    if kind == 0:
        return encode_event(event)[:-7]  # truncated JSON
    if kind == 1:
        return b"\xff\xfe" + encode_event(event)  # not UTF-8
    if kind == 2:
        del good["plaza_id"]
    elif kind == 3:
        good["amount"] = "twelve"
    elif kind == 4:
        good["amount"] = -abs(good["amount"])
    elif kind == 5:
        good["event_time"] = "yesterday"
    else:
        good["vehicle_class"] = 9
    return json.dumps(good).encode()


def toll_records(options: TollsOptions) -> Iterator[TollRecord]:
    """Generate the records, deterministic for the options."""
    rng = random.Random(options.seed)
    start = options.start or default_start(options.span)
    step = options.span / max(options.count, 1)
    landed: list[TollRecord] = []
    held: list[TollRecord] = []
    for index in range(options.count):
        at = start + step * index
        if rng.random() < options.late_fraction:
            at -= options.max_lateness * rng.random()
        event = _event(rng, at, options.customers)
        roll = rng.random()
        if roll < options.malformed_fraction:
            yield TollRecord(None, _malformed(rng, event), "malformed")
            continue
        record = TollRecord(event["transaction_id"].encode(),
                            encode_event(event, amount_as_string=rng.random() < 0.5),
                            "event", event)
        if rng.random() < options.out_of_order_fraction:
            held.append(record)
            continue
        yield record
        landed.append(record)
        if held and rng.random() < 0.2:
            yield from held
            landed.extend(held)
            held = []
        if landed and rng.random() < options.duplicate_fraction:
            again = landed[rng.randrange(len(landed))]
            yield TollRecord(again.key, again.value, "duplicate", again.event)
        if len(landed) > 10_000:
            landed = landed[-5_000:]
    yield from held


@dataclass(frozen=True)
class ProduceReport:
    """What `produce` sent."""

    sent: int
    events: list[dict]
    seconds: float


def produce(settings: Settings, records: Iterable[TollRecord], total: int | None = None,
            rate: float | None = None, topic: str | None = None,
            progress: bool = True) -> ProduceReport:
    """Send records to the tolls topic (at `rate` records/s if given) and wait for every ack."""
    topic = topic or settings.topics.tolls_events
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

