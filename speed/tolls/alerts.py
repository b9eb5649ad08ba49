"""Threshold alerts: the speed layer's cumulative-spend state and the alert rule.

A customer is alerted once per month per threshold: an alert (customer, month, threshold) is due
after a micro-batch when the customer's cumulative spend of that month, over landed events, is at
or above the threshold the customer has now, and no such alert exists yet. Its crossing
transaction is the first, in landing order (ingest time, Kafka partition, offset), at which the
cumulative spend reached the threshold.

The state is small, customers x months with spend: it is rebuilt when the streaming job starts
(from the latest published batch view of monthly spend plus the speed rows of the 10-minute spend
landed after its cut-over, so a restart reads a bounded amount however large the landing zone
grows; from the landing zone itself only before any batch run is published) and then advanced by
each micro-batch's totals (pure Python, in the driver), like the seed's DynamoDB table of
cumulative spend. The crossing transactions of the alerts that are due are found in the driver
(`first_crossings`) among the events of those customers in the due months, collected for it
only when some alert is due.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

Key = tuple[str, dt.date]  # (customer_id, month)
SPEND_10M = "speed_tolls_customer_spend_10m"  # the speed view the spend comes from


@dataclass(frozen=True)
class Due:
    """An alert that is due: its key, threshold and the month's spend before/after the batch."""

    customer_id: str
    month: dt.date
    threshold: Decimal
    spend_before: Decimal
    spend_after: Decimal

    @property
    def crossed_in_batch(self) -> bool:
        """Whether this micro-batch's events made the spend reach the threshold."""
        return self.spend_before < self.threshold


@dataclass
class AlertState:
    """Cumulative spend per customer-month, alerts already raised, thresholds last seen."""

    spend: dict[Key, Decimal] = field(default_factory=dict)
    alerted: set[tuple[str, dt.date, Decimal]] = field(default_factory=set)
    thresholds: dict[str, Decimal | None] = field(default_factory=dict)

    def due(self, batch_totals: Mapping[Key, Decimal],
            thresholds: Mapping[str, Decimal | None]) -> list[Due]:
        """Alerts due once `batch_totals` are added, under the current `thresholds`.

        Candidates: the customer-months of this batch, and every month of each customer whose
        threshold changed since the last call.
        """
        changed = {c for c, t in thresholds.items() if self.thresholds.get(c) != t}
        candidates = set(batch_totals) | {k for k in self.spend if k[0] in changed}
        out = []
        for customer_id, month in sorted(candidates):
            threshold = thresholds.get(customer_id)
            if threshold is None or (customer_id, month, threshold) in self.alerted:
                continue
            before = self.spend.get((customer_id, month), Decimal(0))
            after = before + batch_totals.get((customer_id, month), Decimal(0))
            if after >= threshold:
                out.append(Due(customer_id, month, threshold, before, after))
        return out

    def advance(self, batch_totals: Mapping[Key, Decimal],
                thresholds: Mapping[str, Decimal | None],
                raised: Iterable[tuple[str, dt.date, Decimal]]) -> None:
        """Record a processed micro-batch: its totals, the thresholds seen, the alerts raised."""
        for key, amount in batch_totals.items():
            self.spend[key] = self.spend.get(key, Decimal(0)) + amount
        self.thresholds = dict(thresholds)
        self.alerted.update(raised)


LANDING_ORDER = ("ingested_at", "kafka_partition", "kafka_offset")
Crossing = tuple[str, dt.date, Decimal]  # (customer_id, month, threshold)


def first_crossings(events: Iterable[Mapping[str, Any]],
                    due: Iterable[tuple[str, dt.date, Decimal, Decimal]]
                    ) -> dict[Crossing, dict[str, Any]]:
    """Each due alert's crossing transaction among landed events.

    `due` holds (customer_id, month, threshold, spend before these events); `events` are landed
    events (mappings with `customer_id`, `month` of the event time, `amount`, `event_time`,
    `transaction_id` and the landing order's columns), in any order. The result maps each
    (customer_id, month, threshold) that these events cross to the first event, in landing
    order, at which the month's spend reaches the threshold: its `spend` just after,
    `event_time` and `transaction_id`.
    """
    wanted: dict[Key, list[tuple[Decimal, Decimal]]] = {}
    for customer_id, month, threshold, before in due:
        wanted.setdefault((customer_id, month), []).append((threshold, before))
    spent: dict[Key, Decimal] = {}
    found: dict[Crossing, dict[str, Any]] = {}
    for event in sorted(events, key=lambda e: tuple(e[c] for c in LANDING_ORDER)):
        key = (event["customer_id"], event["month"])
        if key not in wanted:
            continue
        spent[key] = spent.get(key, Decimal(0)) + event["amount"]
        for threshold, before in wanted[key]:
            crossing = (*key, threshold)
            if crossing not in found and before + spent[key] >= threshold:
                found[crossing] = {"spend": before + spent[key],
                                   "event_time": event["event_time"],
                                   "transaction_id": event["transaction_id"]}
    return found


def month_totals(speed_rows: pa.Table) -> dict[Key, Decimal]:
    """Spend per (customer_id, month) of a micro-batch from its speed rows (an Arrow table in
    the columns of `tolls_speed_rows`): its 10-minute spend rows summed by the month of their
    window (a 10-minute window never spans two months), exactly, in decimals."""
    rows = speed_rows.filter(pc.equal(speed_rows["view_name"], SPEND_10M))
    month = pc.cast(pc.floor_temporal(rows["window_start"], unit="month"), pa.date32())
    totals = (pa.table({"customer_id": rows["customer_id"], "month": month,
                        "spend": rows["spend"]})
              .group_by(["customer_id", "month"]).aggregate([("spend", "sum")]))
    return {(r["customer_id"], r["month"]): r["spend_sum"] for r in totals.to_pylist()}


def month_events(events: pa.Table, customer_ids: Iterable[str],
                 months: Iterable[dt.date]) -> list[dict[str, Any]]:
    """The events (an Arrow table of landed events) of `customer_ids` in `months`, as the
    mappings `first_crossings` takes (with `month`, the first day of the event time's month)."""
    month = pc.cast(pc.floor_temporal(events["event_time"], unit="month"), pa.date32())
    wanted = pc.and_(pc.is_in(events["customer_id"], pa.array(sorted(set(customer_ids)))),
                     pc.is_in(month, pa.array(sorted(set(months)), pa.date32())))
    columns = ["customer_id", "amount", "event_time", "transaction_id", *LANDING_ORDER]
    return (events.select(columns).append_column("month", month).filter(wanted)).to_pylist()


def month_spend(batch_monthly: DataFrame, speed_10m: DataFrame, cutover: int,
                through: int) -> DataFrame:
    """Spend per (customer_id, month) over the landing zone as of version `through`, from the
    batch view of monthly spend covering it as of `cutover` (<= `through`) and the speed layer's
    10-minute spend rows (with their `landing_version`); 10-minute windows never straddle two
    months. Columns: customer_id, month, spend."""
    later = (speed_10m
             .where((F.col("landing_version") > cutover) & (F.col("landing_version") <= through))
             .select("customer_id", F.trunc("window_start", "month").alias("month"), "spend"))
    return (batch_monthly.select("customer_id", "month", "spend").unionByName(later)
            .groupBy("customer_id", "month").agg(F.sum("spend").alias("spend")))


def alert_id(customer_id: str, month: dt.date, threshold: Decimal) -> str:
    """Identity of an alert, also its Kafka key: `customer_id|YYYY-MM|threshold`."""
    return f"{customer_id}|{month:%Y-%m}|{threshold}"
