"""Generator of toll events (the JSON wire format of `schemas/tolls_event.json`) and customers.

`toll_records` is pure and deterministic for its options (seed, start, ...); `produce` writes the
records to Kafka with kafka-python. Fractions of late, out-of-order, duplicate and malformed
records exercise the pipeline's guarantees; each record says what it is, so callers can compute the
ground truth from the accepted events. The stream and its faults are `generators.stream`'s,
shared with the other domains; the toll events are this module's.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal

from lambdalake.config import Settings
from lambdalake.generators import stream
from lambdalake.generators.stream import ProduceReport, default_start

# a toll record: the stream's record (`kind` event, duplicate or malformed; `event` the toll)
TollRecord = stream.Record
__all__ = ["ProduceReport", "TollRecord", "TollsOptions", "default_start", "produce",
           "toll_records"]

PLAZAS = tuple(f"P{n:02d}" for n in range(1, 13))
CLASS_WEIGHTS = (60, 20, 10, 6, 4)
BASE_TOLL = {1: Decimal("2.50"), 2: Decimal("4.00"), 3: Decimal("6.75"), 4: Decimal("9.50"),
             5: Decimal("12.25")}


@dataclass(frozen=True)
class TollsOptions(stream.StreamOptions):
    """What to generate: the stream's options and how many customers."""

    customers: int = 200


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


# how a malformed toll event is broken, besides truncated or not UTF-8
_BREAKS = (lambda e: e.pop("plaza_id"), lambda e: e.update(amount="twelve"),
           lambda e: e.update(amount=-abs(e["amount"])),
           lambda e: e.update(event_time="yesterday"), lambda e: e.update(vehicle_class=9))


def _malformed(rng: random.Random, event: dict) -> bytes:
    return stream.malformed(rng, encode_event(event), 7, _BREAKS)


def toll_records(options: TollsOptions) -> Iterator[TollRecord]:
    """Generate the records, deterministic for the options."""
    domain = stream.Domain(
        event=lambda rng, at: _event(rng, at, options.customers),
        encode=lambda rng, event: encode_event(event, amount_as_string=rng.random() < 0.5),
        malform=_malformed, key=lambda event: event["transaction_id"].encode())
    return stream.records(domain, options.count, options.seed, options.start, options.span,
                          options.faults)


def produce(settings: Settings, records: Iterable[TollRecord], total: int | None = None,
            rate: float | None = None, topic: str | None = None,
            progress: bool = True) -> ProduceReport:
    """Send records to the tolls topic (at `rate` records/s if given) and wait for every ack."""
    return stream.produce(settings, records, topic or settings.topics.tolls_events, total,
                          rate, progress)
