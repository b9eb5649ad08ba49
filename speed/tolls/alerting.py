"""The tolls streaming job's extension: threshold alerts from each micro-batch's partial rows.

The rule and the state are `speed.tolls.alerts`; this is what runs them in the job: it rebuilds
the state when the job starts, works out the due alerts from a micro-batch's partial rows of the
10-minute spend, finds their crossing transactions once the landing commit is known, stores them
in `tolls_alerts` (a commit tagged like the job's own) and sends them to the alerts topic, on a
replay only those not there yet.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from lambdalake import customers, faults, lake, topics
from lambdalake.config import Settings
from lambdalake.errors import LambdalakeError
from speed.stream import LandedBatch, PhaseClock, Writer
from speed.tolls import alerts

ALERTS = "tolls_alerts"
SPEED_ROWS = "tolls_speed_rows"
LANDING = "tolls_landing"


class TollsAlerts:
    """The alerts of the tolls job (an `speed.stream.Extension`): the alert state, the
    customers' thresholds and a Kafka producer."""

    tables = (ALERTS,)

    def __init__(self, spark: SparkSession, settings: Settings, write: Writer) -> None:
        """Nothing is read until the job loads its state."""
        self.spark, self.settings, self.write = spark, settings, write
        self.alert_state: alerts.AlertState | None = None
        self.customers_version: int | None = None
        self.thresholds: dict[str, Decimal | None] = {}
        self.producer: Any = None

    def close(self) -> None:
        """Close the alerts producer."""
        if self.producer is not None:
            self.producer.close()
            self.producer = None

    def load(self, landing: DataFrame | None, landing_version: int) -> str:
        """Rebuild the alert state as of `landing_version`."""
        self.alert_state, source = self._load_alert_state(landing, landing_version)
        return f"the spend of {len(self.alert_state.spend)} customer-months ({source})"

    def plan(self, partial_rows: pa.Table) -> tuple[list[alerts.Due], Callable[[], None]]:
        """The alerts due after this micro-batch, from its partial rows' month totals."""
        return self._due_alerts(alerts.month_totals(partial_rows))

    def finish(self, plan: tuple[list[alerts.Due], Callable[[], None]],
               batch: LandedBatch) -> str:
        """Find the due alerts' crossings, advance the state, store and send them."""
        due, advance = plan
        rows = self._alert_rows(batch.events, batch.landed_rows, due, batch.landing_version,
                                batch.now)
        advance()
        sent = self._store_and_send_alerts(rows, batch.landing_version, batch.tag, batch.clock,
                                           stored=ALERTS in batch.stored, replay=batch.replay)
        batch.clock.lap("alerts")
        return f"alerts {sent}"

    def _due_alerts(self, totals: dict[alerts.Key, Decimal]
                    ) -> tuple[list[alerts.Due], Callable[[], None]]:
        """Alerts due after this micro-batch (from its month totals), and the function that
        records the micro-batch in the alert state once its alerts are worked out."""
        version = customers.table_version(self.settings)
        if version != self.customers_version:  # thresholds changed: no restart needed
            self.thresholds = customers.thresholds(self.settings)
            self.customers_version = version
        state, thresholds = self.alert_state, self.thresholds
        due = state.due(totals, thresholds)
        raised = [(d.customer_id, d.month, d.threshold) for d in due]
        return due, lambda: state.advance(totals, thresholds, raised)

    def _load_alert_state(self, landing: DataFrame | None, landing_version: int
                          ) -> tuple[alerts.AlertState, str]:
        """Spend per customer-month over `landing` (the landing zone as of `landing_version`,
        before the micro-batch being processed; None when it held no event) and the alerts
        raised so far; with where the spend came from."""
        if landing is None:  # no spend, told without a Spark job
            spend_rows, source = [], "nothing landed yet"
        else:
            spend_rows, source = self._published_spend(landing_version)
        if spend_rows is None:  # no batch run published yet, or one past this version
            month = F.trunc("event_time", "month")
            spend_rows = landing.groupBy("customer_id", month).agg(F.sum("amount")).collect()
            source = "spend from the whole landing zone"
        raised = lake.table_rows(self.spark, self.settings, ALERTS,
                                 ["customer_id", "month", "threshold"])
        return (alerts.AlertState(spend={(r[0], r[1]): r[2] for r in spend_rows},
                                  alerted={(r[0], r[1], r[2]) for r in raised}), source)

    def _published_spend(self, landing_version: int) -> tuple[list[Row] | None, str]:
        """Spend per customer-month as of `landing_version` from the published batch view of
        monthly spend and the speed rows after its cut-over (a read bounded by customers x
        months and about two batch intervals of speed rows, however large the landing zone);
        None when no published run has a cut-over at or before that version."""
        spark, settings = self.spark, self.settings
        view = "tolls_customer_monthly_spend"
        published = (lake.read_table(spark, settings, "batch_runs")
                     .where(F.col("view_name") == view)
                     .orderBy(F.col("published_at").desc()).limit(1).collect())
        if not published or published[0]["landing_version"] > landing_version:
            return None, ""
        cutover = int(published[0]["landing_version"])
        batch = lake.read_table(spark, settings, view, int(published[0]["view_version"]))
        speed = (lake.read_table(spark, settings, SPEED_ROWS)
                 .where(F.col("view_name") == "speed_tolls_customer_spend_10m"))
        rows = alerts.month_spend(batch, speed, cutover, landing_version).collect()
        return rows, f"spend from the batch view at cut-over v{cutover} and the speed rows after it"

    def _alert_rows(self, events: DataFrame, landed_rows: pa.Table | None,
                    due: list[alerts.Due], landing_version: int, now: dt.datetime
                    ) -> list[dict]:
        """The `tolls_alerts` rows of the due alerts, each with its crossing transaction (found
        among the micro-batch's events: `landed_rows` when they are in the driver already, else
        `events`, collected for the customers and months concerned)."""
        if not due:
            return []
        in_batch = [d for d in due if d.crossed_in_batch]
        earlier = [d for d in due if not d.crossed_in_batch]  # threshold lowered below the spend
        crossings: dict[alerts.Crossing, dict] = {}
        for group, read, before in (
                (in_batch, lambda: events, lambda d: d.spend_before),
                (earlier, lambda: lake.read_table(self.spark, self.settings, LANDING,
                                                  landing_version), lambda d: Decimal(0))):
            if not group:
                continue
            customer_ids, months = sorted({d.customer_id for d in group}), {d.month for d in group}
            if group is in_batch and landed_rows is not None:
                found = alerts.month_events(landed_rows, customer_ids, months)
            else:  # those customers' events of those months, to the driver (one stage)
                source, month = read(), F.trunc("event_time", "month")
                found = (source.where(F.col("customer_id").isin(customer_ids)
                                     & month.isin(sorted(months)))
                         .select("customer_id", month.alias("month"), "amount", "event_time",
                                 "transaction_id", *alerts.LANDING_ORDER).collect())
            crossings.update(alerts.first_crossings(
                found, [(d.customer_id, d.month, d.threshold, before(d)) for d in group]))
        rows = []
        for d in due:
            crossing = crossings.get((d.customer_id, d.month, d.threshold))
            if crossing is None:
                raise LambdalakeError(f"no crossing transaction found for alert "
                                      f"{alerts.alert_id(d.customer_id, d.month, d.threshold)}")
            rows.append({"alert_id": alerts.alert_id(d.customer_id, d.month, d.threshold),
                         "customer_id": d.customer_id, "month": d.month,
                         "threshold": d.threshold, "spend": crossing["spend"],
                         "event_time": crossing["event_time"],
                         "transaction_id": crossing["transaction_id"], "alerted_at": now,
                         "landing_version": landing_version})
        return rows

    def _store_and_send_alerts(self, rows: list[dict], landing_version: int, tag: str,
                               clock: PhaseClock, stored: bool, replay: bool) -> int:
        """Append the alert rows (unless a replay finds them stored) and send them to the
        alerts topic (on a replay, only those not already there); return how many were sent."""
        spark, settings = self.spark, self.settings
        if rows and not stored:
            self.write(rows, ALERTS, tag, clock, len(rows)).result()
            faults.kill_point("speed:after-alerts-stored")
        if replay:  # this batch's alerts may have been stored before the crash but not sent
            rows = [r.asDict() for r in lake.read_table(spark, settings, ALERTS)
                    .where(F.col("landing_version") == landing_version).collect()]
        if not rows:
            return 0
        messages = {r["alert_id"].encode(): alert_message(r) for r in rows}
        if replay:
            published = topics.published_keys(settings, settings.topics.tolls_alerts,
                                               set(messages))
            for key in published:
                del messages[key]
        if self.producer is None:
            self.producer = topics.producer(settings, linger_ms=0)
        sends = [self.producer.send(settings.topics.tolls_alerts, key=key, value=value)
                 for key, value in messages.items()]
        self.producer.flush()
        for send in sends:  # a send that failed fails the micro-batch, which is then replayed
            try:
                send.get(timeout=0)
            except Exception as error:  # noqa: BLE001 (kafka-python's errors, one line)
                raise LambdalakeError(f"alerts could not be sent to Kafka topic "
                                      f"{settings.topics.tolls_alerts}: {error!r}") from None
        return len(messages)


def alert_message(row: dict) -> bytes:
    """The JSON message of an alert on the alerts topic."""
    return json.dumps({
        "customer_id": row["customer_id"], "month": row["month"].strftime("%Y-%m"),
        "threshold": float(row["threshold"]), "spend": float(row["spend"]),
        "event_time": row["event_time"].replace(tzinfo=dt.timezone.utc).isoformat(),
        "transaction_id": row["transaction_id"],
        "alerted_at": row["alerted_at"].replace(tzinfo=dt.timezone.utc).isoformat(),
    }).encode()
