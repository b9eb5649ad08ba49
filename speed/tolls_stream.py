"""The tolls streaming job: Kafka -> landing zone + quarantine + speed views, checkpointed.

Per micro-batch it validates every record, appends accepted events (with their Kafka topic,
partition, offset and ingest time) to the landing zone, writes rejected records with their reason
to quarantine, sets aside duplicates (a transaction_id already landed: kept in quarantine with a
`duplicate:` reason and counted), and appends, in one commit to `speed.tolls_speed_rows`, the
partial rows of every speed view (tagged with the landing commit's Delta version, so the serving
layer can tell which speed rows a batch run has covered) and the micro-batch's progress row. It
raises threshold alerts from the same partial rows.

A micro-batch is two Delta commits on the critical path (landing, then the speed rows), plus the
quarantine commit beside the landing one when something was rejected, and an alerts commit when
alerts are raised. On a local lake each commit is written by delta-rs from the driver, the rows
collected as Arrow (tens of milliseconds, where a Spark write pays 0.3-0.4 s of jobs); on an object
store, or for a write over `speed.driver_commit_max_rows` rows, by Spark. Every commit is tagged
with the micro-batch (`<query id>:<batch id>`); after a restart, the first micro-batch (the only
one Spark may run again) skips the writes whose tag is already in the lake, so a replay writes
nothing twice.

Usage (local, offline, with the JVM cache from `make setup`):
    lambdalake speed run [--until-idle]
Usage on a cluster:
    spark-submit --master yarn \\
      --packages io.delta:delta-spark_2.12:3.3.2,org.apache.spark:spark-sql-kafka-0-10_2.12:3.5.7 \\
      --py-files dist/lambdalake-jobs.zip speed/tolls_stream.py [--until-idle]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from functools import reduce
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

import schemas
from batch.tolls.views import customer_spend_10m, daily_class_traffic, plaza_revenue_30m
from lambdalake import customers, faults, lake, plazas, retention, status, topics
from lambdalake.config import Settings, load_settings
from lambdalake.errors import LambdalakeError
from lambdalake.spark import create_spark_session
from speed.landed_ids import HASH_COLUMNS, LandedIdIndex, collect_arrow, id_hashes
from speed.tolls import alerts
from speed.tolls.dedupe import DUPLICATES_SCHEMA, duplicate_records, mark_duplicates
from speed.tolls.validate import toll_rules
from speed.union_rows import as_union_rows
from speed.validate import accepted_events, quarantined_records, validate_records

QUERY_NAME = "tolls_stream"
LANDING, QUARANTINE, SPEED_ROWS, ALERTS = ("tolls_landing", "tolls_quarantine",
                                           "tolls_speed_rows", "tolls_alerts")
PROGRESS = "tolls_stream_progress"
# The speed views (stored in SPEED_ROWS) and the batch transformation each one applies.
SPEED_VIEWS: dict[str, Callable[..., Callable[[DataFrame], DataFrame]]] = {
    "speed_tolls_customer_spend_10m": customer_spend_10m,
    "speed_tolls_plaza_revenue_30m": plaza_revenue_30m,
    "speed_tolls_daily_class_traffic": daily_class_traffic,
}
GAPS = "tolls_kafka_gaps"
TABLES = (LANDING, QUARANTINE, SPEED_ROWS, ALERTS, GAPS)


@dataclass
class StreamTotals:
    """Running totals of what the job did since it started."""

    batches: int = 0
    read: int = 0
    landed: int = 0
    quarantined: int = 0
    duplicates: int = 0
    log: list[str] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # wall time of each micro-batch

    def add(self, counts: dict[str, int], seconds: float) -> None:
        """Count one micro-batch's outcomes (landed, quarantined, duplicate) and duration."""
        self.batches += 1
        self.seconds.append(seconds)
        self.read += sum(counts.values())
        self.landed += counts.get("landed", 0)
        self.quarantined += counts.get("quarantined", 0)
        self.duplicates += counts.get("duplicate", 0)


def _stream_app_id(spark: SparkSession, checkpoint: str) -> str:
    """The streaming query's id, stable for the life of its checkpoint."""
    text = spark.read.text(f"{checkpoint}/metadata").first()[0]
    return f"lambdalake-{QUERY_NAME}-{json.loads(text)['id']}"


def speed_partials() -> Callable[[DataFrame], DataFrame]:
    """Return a transformation giving the partial rows of every speed view over a micro-batch's
    landed events, in the columns of `tolls_speed_rows` (their landing version still to be
    set), in one partition.

    A micro-batch is small: on one partition the three aggregations need no shuffle, so they
    run as one stage, not three shuffles of several tasks.
    """
    no_version = F.lit(None).cast("long").alias("landing_version")
    views = [(view(), as_union_rows(name)) for name, view in SPEED_VIEWS.items()]

    def transform(events: DataFrame) -> DataFrame:
        one = events.coalesce(1)
        parts = [one.transform(view).select("*", no_version).transform(shape)
                 for view, shape in views]
        return reduce(DataFrame.unionByName, parts).coalesce(1)

    return transform


class PhaseClock:
    """Wall time of the phases of a micro-batch, for its log line."""

    def __init__(self) -> None:
        """Start the clock."""
        self.started = self.last = time.monotonic()
        self.phases: dict[str, float] = {}

    def lap(self, phase: str) -> None:
        """Charge the time since the previous lap to `phase`."""
        now = time.monotonic()
        self.phases[phase] = self.phases.get(phase, 0.0) + now - self.last
        self.last = now

    def timed(self, phase: str, work: Callable[[], Any]) -> Any:
        """Run `work` (in any thread) and record its duration as `phase`."""
        began = time.monotonic()
        try:
            return work()
        finally:
            self.phases[phase] = time.monotonic() - began

    def elapsed(self) -> float:
        """Seconds since the clock started."""
        return time.monotonic() - self.started

    def summary(self) -> str:
        """`in 0.9s: validate 0.3, ...`."""
        parts = ", ".join(f"{name} {seconds:.2f}" for name, seconds in self.phases.items())
        return f"in {self.elapsed():.1f}s ({parts})"


class TollsBatchProcessor:
    """The foreachBatch function of the streaming query, with what it keeps between batches:
    the query's id, the alert state, the customers' thresholds and a Kafka producer."""

    def __init__(self, spark: SparkSession, settings: Settings, checkpoint: str,
                 totals: StreamTotals) -> None:
        """Prepare for the first micro-batch (nothing is read until it comes)."""
        self.spark, self.settings, self.totals = spark, settings, totals
        self.checkpoint = checkpoint
        self.paths = {name: lake.table_path(settings, name) for name in TABLES}
        self.logs = {name: lake.CommitLog(spark, path) for name, path in self.paths.items()}
        self.app_id: str | None = None
        self.first_batch = True
        self.alert_state: alerts.AlertState | None = None
        self.customers_version: int | None = None
        self.thresholds: dict[str, Decimal | None] = {}
        self.producer: Any = None
        self.pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="lambdalake-write")
        # built once (validation again when the plazas change): a micro-batch only applies them
        self.plazas_version: int | None = None
        self.validate: Callable[[DataFrame], DataFrame] | None = None
        self.quarantined: Callable[[DataFrame], DataFrame] | None = None
        self.partials = speed_partials()
        self.landed_ids = LandedIdIndex("transaction_id",
                                        settings.validation.duplicate_window_days)
        self.in_batch = False  # True while a micro-batch is being processed

    def close(self) -> None:
        """Release the writer threads, the cached ids and the alerts producer."""
        self.pool.shutdown(wait=True)
        self.landed_ids.close()
        if self.producer is not None:
            self.producer.close()
            self.producer = None

    def _driver_commit(self, name: str, rows: int) -> bool:
        """Whether a write of up to `rows` rows to table `name` is committed by delta-rs from the
        driver (see the module docstring) rather than by Spark."""
        limit = self.settings.speed.driver_commit_max_rows
        return 0 < limit and rows <= limit and self.logs[name].can_append()

    def _write(self, data: DataFrame | pa.Table | list[dict], name: str, tag: str,
               clock: PhaseClock, rows: int = 0) -> Future:
        """Append `data` (a frame, rows as dicts, or, when delta-rs commits, an Arrow table) to
        table `name` in one commit tagged `tag`, in a writer thread: by delta-rs from the driver
        (a frame collected as Arrow) when `_driver_commit(name, rows)`, else by Spark. The
        future's result is the rows written as Arrow when delta-rs wrote them, else None."""
        if self._driver_commit(name, rows):
            log, schema = self.logs[name], schemas.arrow_schema(name)
            partition_by = schemas.load(name).partition_by

            def work() -> pa.Table:
                table = (pa.Table.from_pylist(data, schema) if isinstance(data, list) else
                         data if isinstance(data, pa.Table) else collect_arrow(data))
                table = table.select(schema.names).cast(schema)
                log.append(table, tag, partition_by)
                return table
        else:
            if isinstance(data, pa.Table):  # decided with the same `_driver_commit` call
                raise TypeError(f"an Arrow table for {name}, but Spark commits this write")
            frame = (data if isinstance(data, DataFrame) else
                     self.spark.createDataFrame(data, schemas.spark_schema(name)))

            def work() -> None:
                lake.write_tagged(frame, self.paths[name], "append", tag)
        return self.pool.submit(clock.timed, f"write {name}", work)

    def _already_written(self, tag: str) -> dict[str, int]:
        """Tables that already hold this micro-batch's commit (a replay after a crash): only
        the first micro-batch of a run can be one."""
        if not self.first_batch:
            return {}
        self.first_batch = False
        found = {name: log.tagged_version(tag) for name, log in self.logs.items()}
        return {name: v for name, v in found.items() if v is not None}

    def __call__(self, raw: DataFrame, batch_id: int) -> None:
        """Process one micro-batch (see the module docstring)."""
        self.in_batch = True
        try:
            self._process(raw, batch_id)
        finally:
            self.in_batch = False

    def _process(self, raw: DataFrame, batch_id: int) -> None:
        clock = PhaseClock()
        spark = self.spark
        self.app_id = self.app_id or _stream_app_id(spark, self.checkpoint)
        tag = f"{self.app_id}:{batch_id}"
        now = dt.datetime.now(dt.timezone.utc)
        done = self._already_written(tag)
        self._refresh_validation()
        if not self.landed_ids.loaded:  # once per run, before anything is written
            # what was landed before this micro-batch, also when it is a replay
            before = done[LANDING] - 1 if LANDING in done else self.logs[LANDING].version()
            self._load_state(before, now)
        clock.lap("prepare")
        validated = raw.select("*", F.lit(now).cast("timestamp").alias("ingested_at"),
                               F.lit(batch_id).cast("long").alias("ingest_batch_id")
                               ).transform(self.validate).persist()
        partials = None
        writes: list[Future] = []
        try:
            keys = collect_arrow(validated.select("is_accepted", "partition", "offset",
                                                  *id_hashes("transaction_id")))
            accepted = keys.filter(keys.column("is_accepted"))
            if not self.settings.kafka.fail_on_data_loss and GAPS not in done:
                self._record_gaps(batch_id, keys, now, tag, clock)
            clock.lap("validate")
            duplicates = self._duplicates(validated, accepted, now)
            records = (validated.transform(mark_duplicates(spark.createDataFrame(
                duplicates, DUPLICATES_SCHEMA))) if duplicates else
                validated.withColumn("duplicate_reason", F.lit(None).cast("string")))
            counts = {"landed": accepted.num_rows - len(duplicates),
                      "quarantined": keys.num_rows - accepted.num_rows,
                      "duplicate": len(duplicates)}
            landed = counts["landed"]
            clock.lap("duplicates")
            events = records.transform(accepted_events(LANDING))
            landing_write = (self._write(events, LANDING, tag, clock, landed)
                             if landed and LANDING not in done else None)
            writes += [landing_write] if landing_write is not None else []
            rejected = counts["quarantined"] + counts["duplicate"]
            if rejected and QUARANTINE not in done:
                writes.append(self._write(records.transform(self.quarantined).coalesce(1),
                                          QUARANTINE, tag, clock, rejected))
            if landed:
                self._index_landed(accepted, duplicates, now)
            due: list[alerts.Due] = []
            partial_rows: pa.Table | None = None
            speed_rows_as_arrow = self._driver_commit(SPEED_ROWS, landed + 1)
            if landed:  # while the landing commit is written
                partials = events.transform(self.partials)
                if not speed_rows_as_arrow:  # Spark writes them too
                    partials = partials.persist()
                partial_rows = collect_arrow(partials)
                due, advance = self._due_alerts(alerts.month_totals(partial_rows))
                clock.lap("partials")
            landed_rows: pa.Table | None = None  # the landed events, when in the driver
            if landing_write is not None:
                landed_rows = landing_write.result()
                clock.lap("wait landing")
                faults.kill_point("speed:after-landing-commit")
            landing_version = (done.get(LANDING) if LANDING in done else
                               self.logs[LANDING].commit_version(tag, depth=10) if landed
                               else None)
            if SPEED_ROWS not in done:
                writes.append(self._write(
                    self._speed_rows(partials, partial_rows, batch_id, counts, landing_version,
                                     now, clock.elapsed(), speed_rows_as_arrow), SPEED_ROWS,
                    tag, clock,
                    landed + 1))
            sent = 0
            if landed:
                alert_rows = self._alert_rows(events, landed_rows, due, landing_version, now)
                advance()
                sent = self._store_and_send_alerts(alert_rows, landing_version, tag, clock,
                                                   stored=ALERTS in done, replay=bool(done))
                clock.lap("alerts")
            for write in writes:
                write.result()
            clock.lap("wait writes")
            faults.kill_point("speed:after-writes")
        finally:
            for write in writes:  # the cached frames are released only once no write reads them
                write.exception()
            if partials is not None:
                partials.unpersist()
            validated.unpersist()
        self._log(batch_id, counts, sent if landed else None, landing_version, clock)

    def _refresh_validation(self) -> None:
        """Build the validation for the known plazas: before the first micro-batch, and again
        when the plazas table has changed (a plaza added counts with no restart)."""
        version = plazas.table_version(self.settings)
        if self.validate is not None and version == self.plazas_version:
            return
        known = plazas.plaza_ids(self.settings)
        rules = toll_rules(self.settings.validation, known)
        self.validate = validate_records(rules)
        self.quarantined = quarantined_records(rules)
        if version != self.plazas_version:
            print("speed: " + ("no plazas table: every plaza_id is accepted" if known is None
                               else f"{len(known)} known plazas (plazas table version {version})"),
                  flush=True)
        self.plazas_version = version

    def _load_state(self, landing_version: int, now: dt.datetime) -> None:
        """What the job keeps in memory, rebuilt from the lake as of `landing_version` (the
        commit before the micro-batch about to be processed): the landed ids of the duplicate
        window, and the alert state."""
        began = time.monotonic()
        landing = lake.read_table(self.spark, self.settings, LANDING, landing_version)
        count = self.landed_ids.load(landing, now)
        self.alert_state, source = self._load_alert_state(landing, landing_version)
        print(f"speed: loaded {count} landed ids of the last "
              f"{self.settings.validation.duplicate_window_days} days and the spend of "
              f"{len(self.alert_state.spend)} customer-months (landing v{landing_version}; "
              f"{source}) in {time.monotonic() - began:.1f}s", flush=True)

    def _duplicates(self, validated: DataFrame, accepted: pa.Table,
                    now: dt.datetime) -> list[Row]:
        """The micro-batch's duplicate records (`DUPLICATES_SCHEMA` rows). The accepted records'
        id hashes are looked up in the landed-id index and among themselves; only when some id
        was landed or repeats (rare) does `duplicate_records` run, on those records alone."""
        h1, h2 = (accepted.column(c).to_numpy() for c in HASH_COLUMNS)
        was_landed = self.landed_ids.contains(h1, h2, now)
        both = np.stack([h1, h2], axis=1)
        pairs, seen = np.unique(both, axis=0, return_counts=True)
        suspects = {(int(a), int(b)): True for a, b in both[was_landed]}
        for a, b in pairs[seen > 1]:
            suspects.setdefault((int(a), int(b)), False)
        if not suspects:
            return []
        spark = self.spark
        hashes = spark.createDataFrame([(a, b, landed) for (a, b), landed in suspects.items()],
                                       f"{HASH_COLUMNS[0]} long, {HASH_COLUMNS[1]} long, "
                                       "was_landed boolean")
        suspect = (validated.select("*", *id_hashes("transaction_id"))
                   .join(F.broadcast(hashes), list(HASH_COLUMNS)))
        landed_ids = suspect.where("was_landed").select("transaction_id").distinct()
        return (suspect.select(*validated.columns)
                .transform(duplicate_records(landed_ids)).collect())

    def _index_landed(self, accepted: pa.Table, duplicates: list[Row],
                      now: dt.datetime) -> None:
        """Add the ids the micro-batch lands (accepted, not duplicates) to the landed-id index."""
        keep = np.ones(accepted.num_rows, dtype=bool)
        if duplicates:
            where = {(p, o): i for i, (p, o) in enumerate(zip(
                accepted.column("partition").to_pylist(), accepted.column("offset").to_pylist(),
                strict=True))}
            for row in duplicates:
                keep[where[(row["partition"], row["offset"])]] = False
        h1, h2 = (accepted.column(c).to_numpy()[keep] for c in HASH_COLUMNS)
        self.landed_ids.add(h1, h2, now.date())

    def _record_gaps(self, batch_id: int, keys: pa.Table, now: dt.datetime, tag: str,
                     clock: PhaseClock) -> None:
        """Record what Kafka's retention deleted before this micro-batch could read it (with
        `kafka.fail_on_data_loss` off, Spark reads on from the earliest offset kept): where
        the checkpoint says the batch starts, against the first offset it read, and Kafka's
        earliest offset only when those differ. Two small checkpoint files a micro-batch."""
        topic = self.settings.topics.tolls_events
        offsets = [lake.read_text(self.spark, f"{self.checkpoint}/offsets/{n}")
                   for n in (batch_id - 1, batch_id)]
        if batch_id == 0 or None in offsets:
            return
        start, end = (retention.parse_offsets(text).get(topic, {}) for text in offsets)
        first = keys.group_by("partition").aggregate([("offset", "min")]).to_pylist()
        first_read = {r["partition"]: r["offset_min"] for r in first}
        if all(first_read.get(p, end.get(p, s)) <= s for p, s in start.items()):
            return  # read from where it was to start: no gap (the common case)
        earliest = {p: e for p, (e, _) in topics.offset_ranges(self.settings, topic).items()}
        gaps = retention.find_gaps(topic, start, earliest, first_read)
        if not gaps:
            return
        print(f"speed: batch {batch_id}: Kafka's retention deleted records before they were "
              f"read (recorded in {GAPS}): {retention.describe(gaps)}", flush=True)
        names = schemas.arrow_schema(GAPS).names
        rows = [dict(zip(names, (g.topic, g.partition, g.from_offset, g.to_offset, now,
                                 batch_id), strict=True)) for g in gaps]
        self._write(rows, GAPS, tag, clock, len(rows)).result()

    def _speed_rows(self, partials: DataFrame | None, partial_rows: pa.Table | None,
                    batch_id: int, counts: dict[str, int], landing_version: int | None,
                    now: dt.datetime, seconds: float, as_arrow: bool) -> DataFrame | pa.Table:
        """The micro-batch's rows of SPEED_ROWS: its partial rows (`partials`, also collected
        as `partial_rows`) with their landing version, and its progress row (begun at `now`,
        `seconds` ago); an Arrow table when delta-rs commits them (`as_arrow`), else a frame
        for Spark."""
        progress = dict(zip(schemas.spark_schema(PROGRESS).names, (
            batch_id, sum(counts.values()), counts.get("landed", 0),
            counts.get("quarantined", 0), counts.get("duplicate", 0), landing_version, now,
            round(seconds, 3)), strict=True))
        if not as_arrow:
            rows = (self.spark.createDataFrame([progress], schemas.spark_schema(PROGRESS))
                    .transform(as_union_rows(PROGRESS)))
            if partials is not None:
                rows = partials.withColumn("landing_version", F.lit(landing_version)
                                           .cast("long")).unionByName(rows)
            return rows.withColumn("ingest_batch_id", F.lit(batch_id).cast("long")).coalesce(1)
        schema = schemas.arrow_schema(SPEED_ROWS)
        tables = [pa.Table.from_pylist([{"view_name": PROGRESS, **progress}], schema)]
        if partial_rows is not None:
            tagged = partial_rows.select(schema.names).cast(schema)
            for name, value in (("landing_version", landing_version),
                                ("ingest_batch_id", batch_id)):
                column = pa.array(np.full(tagged.num_rows, value, dtype=np.int64))
                tagged = tagged.set_column(schema.get_field_index(name), name, column)
            tables.insert(0, tagged)
        return pa.concat_tables(tables)

    def _log(self, batch_id: int, counts: dict[str, int], alerted: int | None,
             landing_version: int | None, clock: PhaseClock) -> None:
        self.totals.add(counts, clock.elapsed())
        line = (f"speed: batch {batch_id}: read {sum(counts.values())}, landed "
                f"{counts.get('landed', 0)}, quarantined {counts.get('quarantined', 0)}, "
                f"duplicates {counts.get('duplicate', 0)}"
                + (f", alerts {alerted}" if alerted is not None else "")
                + (f" (landing v{landing_version})" if landing_version is not None else "")
                + f" {clock.summary()}")
        self.totals.log.append(line)
        print(line, flush=True)

    # -- alerts ---------------------------------------------------------------------------------

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

    def _load_alert_state(self, landing: DataFrame, landing_version: int
                          ) -> tuple[alerts.AlertState, str]:
        """Spend per customer-month over `landing` (the landing zone as of `landing_version`,
        before the micro-batch being processed) and the alerts raised so far; with where the
        spend came from."""
        spark, settings = self.spark, self.settings
        spend_rows, source = self._published_spend(landing_version)
        if spend_rows is None:  # no batch run published yet, or one past this version
            month = F.trunc("event_time", "month")
            spend_rows = landing.groupBy("customer_id", month).agg(F.sum("amount")).collect()
            source = "spend from the whole landing zone"
        raised = (lake.read_table(spark, settings, ALERTS)
                  .select("customer_id", "month", "threshold").collect())
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
            self._write(rows, ALERTS, tag, clock, len(rows)).result()
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


def start_query(spark: SparkSession, settings: Settings, until_idle: bool,
                totals: StreamTotals) -> tuple[StreamingQuery, TollsBatchProcessor]:
    """Start the streaming query: Kafka source -> foreachBatch(TollsBatchProcessor); the caller
    closes the processor once the query has stopped."""
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
    processor = TollsBatchProcessor(spark, settings, checkpoint, totals)
    writer = (source.writeStream.queryName(QUERY_NAME)
              .option("checkpointLocation", checkpoint)
              .foreachBatch(processor))
    writer = (writer.trigger(availableNow=True) if until_idle
              else writer.trigger(processingTime=settings.spark.trigger_interval))
    return writer.start(), processor


# What a failure caused by an unreachable Kafka looks like, from Spark's Kafka clients (driver
# and tasks) or the alerts producer (kafka-python).
# Spark's Kafka source when offsets the query needs were deleted (failOnDataLoss)
_DATA_LOSS = re.compile(r"Some data may have been lost because they are not available in Kafka")
_KAFKA_TROUBLE = re.compile(r"org\.apache\.kafka|kafka\.errors|Kafka(Timeout|Connection)Error|"
                            r"NoBrokersAvailable|cannot reach Kafka|could not be sent to Kafka|"
                            r"Timed out waiting for a node|Cannot fetch record")


def _run_query(spark: SparkSession, settings: Settings, until_idle: bool, totals: StreamTotals,
               stop_requested: list[int]) -> str | None:
    """Run the streaming query until it ends, a stop is requested or it fails; return its
    failure's description, or None."""
    try:
        topics.ensure_topics(settings, settings.topics.tolls_events, settings.topics.tolls_alerts)
    except LambdalakeError as error:  # Kafka unreachable: the caller waits for it
        return str(error)
    query, processor = start_query(spark, settings, until_idle, totals)
    try:
        while query.isActive:
            # a stop waits for the micro-batch in progress; the next one (if Spark has begun
            # it) is interrupted before anything is written, or replayed on the next start
            if stop_requested and not processor.in_batch:
                query.stop()
                break
            query.awaitTermination(0.5)
    except StreamingQueryException as error:
        return str(error.desc)
    finally:
        processor.close()
    error = query.exception()
    return None if error is None else str(error.desc)


def _wait_for_kafka(settings: Settings, failure: str, since: float,
                    stop_requested: list[int]) -> None:
    """After a failure while Kafka was (or may have been) unreachable: wait, retrying with
    backoff, until a broker answers; one readable error once `kafka.outage_timeout_s` has passed
    since the outage began (`since`, a monotonic time)."""
    limit, servers = settings.kafka.outage_timeout_s, settings.kafka.bootstrap_servers
    delay = 1.0
    while not stop_requested:
        waited = time.monotonic() - since
        if waited > limit:
            raise LambdalakeError(
                f"Kafka at {servers} unreachable or failing for {waited:.0f}s, longer than "
                f"kafka.outage_timeout_s={limit}: stopping (a restart resumes from the "
                f"checkpoint); last failure: {failure_line(failure)}")
        if topics.reachable(settings, timeout_s=min(5.0, max(1.0, limit - waited))):
            print(f"speed: Kafka at {servers} answers again after {waited:.0f}s: restarting "
                  "the query from its checkpoint", flush=True)
            return
        print(f"speed: waiting for Kafka at {servers} ({waited:.0f}s so far, giving up after "
              f"{limit}s): next try in {delay:.0f}s", flush=True)
        time.sleep(delay)
        delay = min(delay * 2, 30.0)


def run(spark: SparkSession, settings: Settings, until_idle: bool) -> StreamTotals:
    """Run the streaming job; with `until_idle`, process what is in Kafka now and return.

    The job rides out a Kafka outage (a broker restart, a network cut, a start while the broker
    is down): when the query fails, or cannot start, while Kafka is unreachable, or with one of
    Kafka's errors, it waits for a broker with backoff and restarts the query from its
    checkpoint (a micro-batch cut short is replayed exactly); it stops with one line once the
    outage has lasted `kafka.outage_timeout_s`. Any other failure stops it at once, with its
    one line.
    """
    totals = StreamTotals()
    stop_requested: list[int] = []

    def request_stop(signum: int, _frame: object) -> None:
        print(f"speed: signal {signum}: stopping after the current micro-batch", flush=True)
        stop_requested.append(signum)

    previous = {}
    if not until_idle:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, request_stop)
    outage_since: float | None = None
    try:
        while True:
            batches = totals.batches
            failure = _run_query(spark, settings, until_idle, totals, stop_requested)
            if failure is None:
                return totals
            if stop_requested:  # a failure while stopping is still reported, not waited out
                raise LambdalakeError(f"the streaming query failed: {failure_line(failure)}")
            if _DATA_LOSS.search(failure):
                raise LambdalakeError(data_loss_line(spark, settings, failure))
            kafka_trouble = bool(_KAFKA_TROUBLE.search(failure))
            if not kafka_trouble and topics.reachable(settings):
                raise LambdalakeError(f"the streaming query failed: {failure_line(failure)}")
            if outage_since is None or totals.batches > batches:  # a new outage
                outage_since = time.monotonic()
            print(f"speed: the query stopped on a Kafka failure: {failure_line(failure)}",
                  flush=True)
            _wait_for_kafka(settings, failure, outage_since, stop_requested)
            if stop_requested:  # stopped while waiting: no query is running
                return totals
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def data_loss_line(spark: SparkSession, settings: Settings, failure: str) -> str:
    """The one line for a query stopped because Kafka's retention deleted records it had not
    read (`kafka.fail_on_data_loss`): the gap of each partition, from the checkpoint's last
    done micro-batch to the earliest offset Kafka still holds."""
    checkpoint = lake.checkpoint_path(settings, QUERY_NAME)
    done = [int(n) for n in lake.list_names(spark, f"{checkpoint}/commits") or () if n.isdigit()]
    text = lake.read_text(spark, f"{checkpoint}/offsets/{max(done)}") if done else None
    topic = settings.topics.tolls_events
    gaps = []
    if text is not None and topics.reachable(settings):
        earliest = {p: e for p, (e, _) in topics.offset_ranges(settings, topic).items()}
        gaps = retention.find_gaps(topic, retention.parse_offsets(text).get(topic, {}),
                                   earliest)
    lost = (retention.describe(gaps) if gaps else
            f"{topic} (the gap is unknown: {failure_line(failure)})")
    return (f"Kafka's retention deleted records the streaming job had not read: {lost}. Set "
            f"kafka.fail_on_data_loss = false to go on past them (each gap is recorded in "
            f"quarantine.{GAPS} and shown by `lambdalake status`)")


def failure_line(description: str) -> str:
    """The line of a streaming query's failure that says what went wrong: the exception raised
    in a micro-batch (the last `...Error: ...` line of its Python traceback), else the first."""
    lines = [line.strip() for line in str(description).splitlines() if line.strip()]
    raised = [line for line in lines if re.match(r"^[\w.]+(Error|Exception): ", line)]
    return raised[-1] if raised else (lines[0] if lines else "no description")


def main(argv: list[str] | None = None) -> int:
    """Entry point for spark-submit and `lambdalake speed run`."""
    parser = argparse.ArgumentParser(prog="speed/tolls_stream.py", description=__doc__.split(
        "\n")[0])
    parser.add_argument("--until-idle", action="store_true",
                        help="process what is in Kafka now, then exit (tests, demo)")
    args = parser.parse_args(argv)
    settings = load_settings()
    spark = create_spark_session(settings, "lambdalake-speed-tolls")
    status.job_started(settings)
    outcome = "failed"
    try:
        totals = run(spark, settings, until_idle=args.until_idle)
        outcome = "stopped cleanly"
    except LambdalakeError as e:
        outcome = f"failed: {e}"
        raise
    finally:
        status.job_stopped(settings, outcome)
    print(f"speed: done: {totals.batches} micro-batches, read {totals.read}, landed "
          f"{totals.landed}, quarantined {totals.quarantined}, duplicates {totals.duplicates}",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
