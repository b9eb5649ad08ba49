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
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

import schemas
from batch.tolls.views import customer_spend_10m, daily_class_traffic, plaza_revenue_30m
from lambdalake import lake, topics
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


def _alerts_due(spark: SparkSession, settings: Settings, events: DataFrame,
                landing_version: int, now: dt.datetime, state: dict) -> list:
    """Alert rows due after this micro-batch (none when there is no customers table).

    Nothing read from Delta here is cached: a cached Delta read would be served again to later
    reads of the same table, hiding threshold changes.
    """
    customers_path = lake.table_path(settings, "tolls_customers")
    if not DeltaTable.isDeltaTable(spark, customers_path):
        return []
    customers = spark.read.format("delta").load(customers_path)
    seen = state.get("thresholds_seen_at")
    changed = customers if seen is None else customers.where(F.col("updated_at") > F.lit(seen))
    published = (lake.read_table(spark, settings, "batch_runs")
                 .where(F.col("view_name") == "tolls_customer_monthly_spend")
                 .orderBy(F.col("published_at").desc()).limit(1).collect())
    if published:
        batch_monthly = lake.read_table(spark, settings, "tolls_customer_monthly_spend",
                                        int(published[0]["view_version"]))
        cutover = int(published[0]["landing_version"])
    else:
        batch_monthly, cutover = lake.read_table(spark, settings,
                                                 "tolls_customer_monthly_spend"), -1
    cumulative = alerts.monthly_spend(
        batch_monthly, lake.read_table(spark, settings, "speed_tolls_customer_spend_10m"), cutover)
    due = alerts.due_alerts(events, cumulative, customers,
                            lake.read_table(spark, settings, "tolls_alerts"),
                            changed.select("customer_id"))
    base = alerts.batch_base_spend(due, events)
    crossings = alerts.first_crossings(due, events, base)
    earlier = alerts.crossed_before(due, base)
    if not earlier.isEmpty():  # threshold lowered below a spend reached in earlier batches
        history = (lake.read_table(spark, settings, "tolls_landing", landing_version)
                   .join(earlier.select("customer_id").distinct(), "customer_id", "left_semi"))
        no_base = spark.createDataFrame([], "customer_id string, month date, base decimal(18,2)")
        crossings = crossings.unionByName(alerts.first_crossings(earlier, history, no_base))
    rows = alerts.alert_rows(crossings, F.lit(now).cast("timestamp"), landing_version).collect()
    latest = customers.agg(F.max("updated_at")).first()[0]
    state["thresholds_seen_at"] = latest if latest is not None else seen
    return rows


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
        records = (raw.withColumn("ingested_at", F.lit(now).cast("timestamp"))
                   .transform(validate_toll_records(settings.validation))
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
            with ThreadPoolExecutor(max_workers=len(writes) or 1) as pool:
                for done in [pool.submit(_append, df, path, app_id, batch_id, tag)
                             for df, path in writes]:
                    done.result()
            alerted = 0
            if landed:
                new_alerts = _alerts_due(spark, settings, events, landing_version, now, state)
                if new_alerts:
                    _append(spark.createDataFrame(new_alerts, schemas.spark_schema(
                        "tolls_alerts")), paths["tolls_alerts"], app_id, batch_id, tag)
                if replayed is not None:  # this batch's alerts may be written but not sent
                    new_alerts = (lake.read_table(spark, settings, "tolls_alerts")
                                  .where(F.col("landing_version") == landing_version).collect())
                alerted = _publish_alerts(settings, new_alerts, replay=replayed is not None)
            progress = spark.createDataFrame(
                [(batch_id, sum(counts.values()), landed, counts.get("quarantined", 0),
                  counts.get("duplicate", 0), landing_version, now)],
                schema=schemas.spark_schema("tolls_stream_progress"))
            _append(progress, paths["tolls_stream_progress"], app_id, batch_id, tag)
        finally:
            records.unpersist()
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
