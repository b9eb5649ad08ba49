"""The tolls streaming job: Kafka -> landing zone + quarantine + speed views, checkpointed.

Per micro-batch it validates every record, appends accepted events (with their Kafka topic,
partition, offset and ingest time) to the landing zone, writes rejected records with their reason
to quarantine, sets aside duplicates (a transaction_id already landed: kept in quarantine with a
`duplicate:` reason and counted), and appends the speed views' partial rows tagged with the
landing commit's Delta version, so the serving layer can tell which speed rows a batch run has
covered. Every write is an
idempotent Delta append (txnAppId/txnVersion), so a replayed micro-batch after a crash is not
written twice.

Usage (local, offline, with the JVM cache from `make setup`):
    lambdalake speed run [--until-idle]
Usage on a cluster:
    spark-submit --master yarn \
      --packages io.delta:delta-spark_2.12:3.3.2,org.apache.spark:spark-sql-kafka-0-10_2.12:3.5.7 \
      --py-files dist/lambdalake-jobs.zip speed/tolls_stream.py [--until-idle]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

import schemas
from batch.tolls.views import customer_spend_10m, daily_class_traffic, plaza_revenue_30m
from lambdalake import customers, lake, topics
from lambdalake.config import Settings, load_settings
from lambdalake.errors import LambdalakeError
from lambdalake.spark import create_spark_session
from speed.tolls import alerts
from speed.tolls.dedupe import flag_duplicates, outcome
from speed.tolls.validate import accepted_events, quarantined_records, validate_toll_records

QUERY_NAME = "tolls_stream"
SPEED_VIEWS: dict[str, Callable[..., Callable[[DataFrame], DataFrame]]] = {
    "speed_tolls_customer_spend_10m": customer_spend_10m,
    "speed_tolls_plaza_revenue_30m": plaza_revenue_30m,
    "speed_tolls_daily_class_traffic": daily_class_traffic,
}
TABLES = ("tolls_landing", "tolls_quarantine", "tolls_stream_progress", "tolls_alerts",
          *SPEED_VIEWS)


@dataclass
class StreamTotals:
    """Running totals of what the job did since it started."""

    batches: int = 0
    read: int = 0
    landed: int = 0
    quarantined: int = 0
    duplicates: int = 0
    log: list[str] = field(default_factory=list)

    def add(self, counts: dict[str, int]) -> None:
        """Count one micro-batch's outcomes (landed, quarantined, duplicate)."""
        self.batches += 1
        self.read += sum(counts.values())
        self.landed += counts.get("landed", 0)
        self.quarantined += counts.get("quarantined", 0)
        self.duplicates += counts.get("duplicate", 0)


def _append(df: DataFrame, path: str, app_id: str, batch_id: int, tag: str) -> None:
    """Idempotent Delta append: a replay of the same micro-batch is skipped by Delta."""
    lake.write_tagged(df, path, "append", tag, txn=(app_id, batch_id))


def _stream_app_id(spark: SparkSession, checkpoint: str) -> str:
    """The streaming query's id, stable for the life of its checkpoint."""
    text = spark.read.text(f"{checkpoint}/metadata").first()[0]
    return f"lambdalake-{QUERY_NAME}-{json.loads(text)['id']}"


def _landed_ids(spark: SparkSession, settings: Settings, path: str, version: int,
                now: dt.datetime) -> DataFrame:
    """transaction_ids landed up to `version`, within the duplicate window (by ingest date)."""
    since = (now - dt.timedelta(days=settings.validation.duplicate_window_days)).date()
    return (spark.read.format("delta").option("versionAsOf", version).load(path)
            .where(F.col("ingest_date") >= F.lit(since)).select("transaction_id"))


def _load_alert_state(spark: SparkSession, settings: Settings, landing_version: int
                      ) -> alerts.AlertState:
    """Rebuild the alert state from the lake: spend per customer-month as of `landing_version`
    (the commit before the micro-batch being processed) and the alerts raised so far."""
    month = F.trunc("event_time", "month")
    spend = (lake.read_table(spark, settings, "tolls_landing", landing_version)
             .groupBy("customer_id", month).agg(F.sum("amount")).collect())
    raised = (lake.read_table(spark, settings, "tolls_alerts")
              .select("customer_id", "month", "threshold").collect())
    return alerts.AlertState(spend={(r[0], r[1]): r[2] for r in spend},
                             alerted={(r[0], r[1], r[2]) for r in raised})


def _ordered_events(df: DataFrame, customer_ids: set[str]) -> dict[alerts.Key, list]:
    """Events of some customers, grouped by customer-month, in landing order."""
    rows = (df.where(F.col("customer_id").isin(sorted(customer_ids)))
            .select("customer_id", "event_time", "amount", "transaction_id", "ingested_at",
                    "kafka_partition", "kafka_offset").collect())
    rows.sort(key=lambda r: (r["ingested_at"], r["kafka_partition"], r["kafka_offset"]))
    grouped: dict[alerts.Key, list] = {}
    for r in rows:
        grouped.setdefault((r["customer_id"], r["event_time"].date().replace(day=1)),
                           []).append(r)
    return grouped


def _raise_alerts(spark: SparkSession, settings: Settings, events: DataFrame,
                  landing_version: int, now: dt.datetime, state: dict) -> list[dict]:
    """Alerts due after this micro-batch, as `tolls_alerts` rows; advances the alert state."""
    if "alerts" not in state:
        state["alerts"] = _load_alert_state(spark, settings, landing_version - 1)
    current: alerts.AlertState = state["alerts"]
    version = customers.table_version(settings)
    if version != state.get("customers_version"):
        state["thresholds"] = customers.thresholds(settings)
        state["customers_version"] = version
    thresholds = state.get("thresholds", {})
    totals = {(r[0], r[1]): r[2] for r in events.groupBy(
        "customer_id", F.trunc("event_time", "month")).agg(F.sum("amount")).collect()}
    due = current.due(totals, thresholds)
    in_batch = [d for d in due if d.crossed_in_batch]
    earlier = [d for d in due if not d.crossed_in_batch]  # threshold lowered below the spend
    ordered = _ordered_events(events, {d.customer_id for d in in_batch}) if in_batch else {}
    if earlier:
        history = lake.read_table(spark, settings, "tolls_landing", landing_version)
        ordered_history = _ordered_events(history, {d.customer_id for d in earlier})
    rows = []
    for d in due:
        key = (d.customer_id, d.month)
        found = (alerts.find_crossing(ordered.get(key, []), d.spend_before, d.threshold)
                 if d.crossed_in_batch else
                 alerts.find_crossing(ordered_history.get(key, []), Decimal(0), d.threshold))
        if found is None:
            raise LambdalakeError(f"no crossing transaction found for alert "
                                  f"{alerts.alert_id(d.customer_id, d.month, d.threshold)}")
        event, spend = found
        rows.append({"alert_id": alerts.alert_id(d.customer_id, d.month, d.threshold),
                     "customer_id": d.customer_id, "month": d.month, "threshold": d.threshold,
                     "spend": spend, "event_time": event["event_time"],
                     "transaction_id": event["transaction_id"], "alerted_at": now,
                     "landing_version": landing_version})
    current.advance(totals, thresholds,
                    [(d.customer_id, d.month, d.threshold) for d in due])
    return rows


def _alerts(spark: SparkSession, settings: Settings, events: DataFrame, landing_version: int,
            now: dt.datetime, state: dict, app_id: str, batch_id: int, tag: str,
            replay: bool) -> int:
    """Raise, store and publish the alerts of a micro-batch; return how many were sent."""
    rows = _raise_alerts(spark, settings, events, landing_version, now, state)
    path = lake.table_path(settings, "tolls_alerts")
    if rows:
        _append(spark.createDataFrame(rows, schemas.spark_schema("tolls_alerts")), path, app_id,
                batch_id, tag)
    if replay:  # this batch's alerts may have been stored but not sent
        rows = [r.asDict() for r in lake.read_table(spark, settings, "tolls_alerts")
                .where(F.col("landing_version") == landing_version).collect()]
    return _publish_alerts(settings, rows, replay=replay)


def _publish_alerts(settings: Settings, rows: list, replay: bool) -> int:
    """Send alert rows to the alerts topic (on a replay, only those not already there)."""
    if not rows:
        return 0
    messages = {r["alert_id"].encode(): json.dumps({
        "customer_id": r["customer_id"], "month": r["month"].strftime("%Y-%m"),
        "threshold": float(r["threshold"]), "spend": float(r["spend"]),
        "event_time": r["event_time"].replace(tzinfo=dt.timezone.utc).isoformat(),
        "transaction_id": r["transaction_id"],
        "alerted_at": r["alerted_at"].replace(tzinfo=dt.timezone.utc).isoformat(),
    }).encode() for r in rows}
    if replay:
        for key in topics.published_keys(settings, settings.topics.tolls_alerts, set(messages)):
            del messages[key]
    producer = topics.producer(settings)
    try:
        for key, value in messages.items():
            producer.send(settings.topics.tolls_alerts, key=key, value=value)
        producer.flush()
    finally:
        producer.close()
    return len(messages)


def batch_processor(spark: SparkSession, settings: Settings, checkpoint: str,
                    totals: StreamTotals) -> Callable[[DataFrame, int], None]:
    """The foreachBatch function of the streaming query."""
    paths = {name: lake.table_path(settings, name) for name in TABLES}
    state: dict[str, Any] = {}

    def process(raw: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        app_id = state.setdefault("app_id", _stream_app_id(spark, checkpoint))
        tag = f"{app_id}:{batch_id}"
        now = dt.datetime.now(dt.timezone.utc)
        landing = paths["tolls_landing"]
        commits = lake.recent_commits(spark, landing)
        replayed = next((v for v, meta in commits if meta == tag), None)
        # duplicates are judged against what was landed before this micro-batch, also on replay
        before = replayed - 1 if replayed is not None else commits[0][0]
        # validated once and cached: the duplicate check reads it twice more
        validated = (raw.withColumn("ingested_at", F.lit(now).cast("timestamp"))
                     .transform(validate_toll_records(settings.validation))
                     .persist())
        records = (validated
                   .transform(flag_duplicates(_landed_ids(spark, settings, landing, before, now)))
                   .transform(outcome)
                   .persist())
        try:
            counts = dict(records.groupBy("outcome").count().collect())
            landed = counts.get("landed", 0)
            rejected = counts.get("quarantined", 0) + counts.get("duplicate", 0)
            landing_version = None
            writes: list[tuple[DataFrame, str]] = []
            if landed:
                events = records.transform(accepted_events(batch_id))
                _append(events, landing, app_id, batch_id, tag)
                landing_version = (replayed if replayed is not None
                                   else lake.commit_version(spark, landing, tag))
                tagged = events.withColumn("landing_version", F.lit(landing_version).cast("long"))
                writes += [(tagged.transform(view(by=["landing_version"])), paths[name])
                           for name, view in SPEED_VIEWS.items()]
            if rejected:
                writes.append((records.transform(quarantined_records(batch_id)),
                               paths["tolls_quarantine"]))
            progress = spark.createDataFrame(
                [(batch_id, sum(counts.values()), landed, counts.get("quarantined", 0),
                  counts.get("duplicate", 0), landing_version, now)],
                schema=schemas.spark_schema("tolls_stream_progress"))
            writes.append((progress, paths["tolls_stream_progress"]))
            # the views, quarantine and progress are written while alerts are worked out
            with ThreadPoolExecutor(max_workers=len(writes)) as pool:
                pending = [pool.submit(_append, df, path, app_id, batch_id, tag)
                           for df, path in writes]
                alerted = (_alerts(spark, settings, events, landing_version, now, state, app_id,
                                   batch_id, tag, replayed is not None) if landed else 0)
                for done in pending:
                    done.result()
        finally:
            records.unpersist()
            validated.unpersist()
        totals.add(counts)
        line = (f"speed: batch {batch_id}: read {sum(counts.values())}, landed {landed}, "
                f"quarantined {counts.get('quarantined', 0)}, "
                f"duplicates {counts.get('duplicate', 0)}"
                + (f", alerts {alerted}" if landed else "")
                + (f" (landing v{landing_version})" if landing_version is not None else "")
                + f" in {time.monotonic() - started:.1f}s")
        totals.log.append(line)
        print(line, flush=True)

    return process


def start_query(spark: SparkSession, settings: Settings, until_idle: bool,
                totals: StreamTotals) -> StreamingQuery:
    """Start the streaming query: Kafka source -> foreachBatch(batch_processor)."""
    for name in TABLES:
        lake.ensure_table(spark, settings, name)
    checkpoint = lake.checkpoint_path(settings, QUERY_NAME)
    source = (spark.readStream.format("kafka")
              .option("kafka.bootstrap.servers", settings.kafka.bootstrap_servers)
              .option("subscribe", settings.topics.tolls_events)
              .option("startingOffsets", settings.kafka.starting_offsets)
              .option("maxOffsetsPerTrigger", settings.kafka.max_offsets_per_trigger)
              .option("failOnDataLoss", str(settings.kafka.fail_on_data_loss).lower())
              .load())
    writer = (source.writeStream.queryName(QUERY_NAME)
              .option("checkpointLocation", checkpoint)
              .foreachBatch(batch_processor(spark, settings, checkpoint, totals)))
    writer = (writer.trigger(availableNow=True) if until_idle
              else writer.trigger(processingTime=settings.spark.trigger_interval))
    return writer.start()


def run(spark: SparkSession, settings: Settings, until_idle: bool) -> StreamTotals:
    """Run the streaming job; with `until_idle`, process what is in Kafka now and return."""
    topics.ensure_topics(settings, settings.topics.tolls_events, settings.topics.tolls_alerts)
    totals = StreamTotals()
    query = start_query(spark, settings, until_idle, totals)
    stop_requested: list[int] = []

    def request_stop(signum: int, _frame: object) -> None:
        print(f"speed: signal {signum}: stopping after the current micro-batch", flush=True)
        stop_requested.append(signum)

    previous = {}
    if not until_idle:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, request_stop)
    try:
        while query.isActive:
            if stop_requested and not query.status["isTriggerActive"]:
                query.stop()
                break
            query.awaitTermination(0.5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    error = query.exception()
    if error is not None:
        raise LambdalakeError(f"the streaming query failed: {str(error.desc).splitlines()[0]}")
    return totals


def main(argv: list[str] | None = None) -> int:
    """Entry point for spark-submit and `lambdalake speed run`."""
    parser = argparse.ArgumentParser(prog="speed/tolls_stream.py", description=__doc__.split(
        "\n")[0])
    parser.add_argument("--until-idle", action="store_true",
                        help="process what is in Kafka now, then exit (tests, demo)")
    args = parser.parse_args(argv)
    settings = load_settings()
    topics.ensure_topics(settings, settings.topics.tolls_events)
    spark = create_spark_session(settings, "lambdalake-speed-tolls")
    totals = run(spark, settings, until_idle=args.until_idle)
    print(f"speed: done: {totals.batches} micro-batches, read {totals.read}, landed "
          f"{totals.landed}, quarantined {totals.quarantined}, duplicates {totals.duplicates}",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
