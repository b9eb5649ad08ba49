"""The streaming job of a domain: Kafka -> landing zone + quarantine + speed views, checkpointed.

One job serves every domain (tolls, clicks), driven by its `StreamDomain`: the event spec it
validates against, its topic, tables and speed views, and what the domain adds (the tolls
alerts, an `Extension`).

Per micro-batch it validates every record against the event's spec, appends accepted events
(with their Kafka topic, partition, offset and ingest time) to the landing zone, writes rejected
records with their reason to quarantine, sets aside duplicates (an id already landed: kept in
quarantine with a `duplicate:` reason and counted), and appends, in one commit to the domain's
speed rows table, the partial rows of every speed view (tagged with the landing commit's Delta
version, so the serving layer can tell which speed rows a batch run has covered) and the
micro-batch's progress row. The domain's extension then works from the same partial rows.

A micro-batch is two Delta commits on the critical path (landing, then the speed rows), plus the
quarantine commit beside the landing one when something was rejected, and the extension's (an
alerts commit when alerts are raised). On a local lake each commit is written by delta-rs from
the driver, the rows collected as Arrow (tens of milliseconds, where a Spark write pays 0.3-0.4 s
of jobs); on an object store, or for a write over `speed.driver_commit_max_rows` rows, by Spark.
Every commit is tagged with the micro-batch (`<query id>:<batch id>`); after a restart, the first
micro-batch (the only one Spark may run again) skips the writes whose tag is already in the
lake, so a replay writes nothing twice.

The duplicate look-up needs the batch's ids in the driver before anything is written, so the
landed events and the partial rows are collected beside it as if the batch held no duplicate
(almost always). When it holds some, they are found in the driver too, from the collected
landed events and the id hashes (`duplicates_in_driver`: no Spark job), the landed events are
that collect less the duplicates (by Kafka partition and offset), and the partial rows that
collect less the partial rows of the duplicates alone (partial rows are additive:
`partial_rows_less`); where Spark commits them, they are computed again without the duplicates.

The jobs themselves are `speed/tolls_stream.py` and `speed/clicks_stream.py` (their `main`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import signal
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from functools import reduce
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.types import DecimalType

import schemas
from lambdalake import faults, lake, retention, status, topics
from lambdalake.config import Settings, ValidationSettings, load_settings
from lambdalake.domains import Domain, same_names
from lambdalake.errors import LambdalakeError
from lambdalake.spark import create_spark_session
from speed.dedupe import (
    DUPLICATES_SCHEMA,
    are_duplicates,
    duplicate_records,
    duplicates_in_driver,
    mark_duplicates,
    without_duplicates,
)
from speed.landed_ids import (
    HASH_COLUMNS,
    LandedIdIndex,
    collect_arrow,
    id_hashes,
    repeated_pairs,
)
from speed.union_rows import as_union_rows, partial_rows_less
from speed.validate import (
    EventRules,
    Known,
    accepted_events,
    quarantined_records,
    validate_records,
)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
# a micro-batch's own integers in generated code (`with_batch_values`): any 64-bit one fits
BATCH_VALUE_TYPE = DecimalType(20, 0)
CACHE_COMPRESSED = "spark.sql.inMemoryColumnarStorage.compressed"
Writer = Callable[..., Future]  # StreamProcessor.write: (data, table, tag, clock, rows) -> Future


@dataclass(frozen=True)
class LandedBatch:
    """What an extension gets of a micro-batch whose events were landed."""

    events: DataFrame  # the landed events (landing columns)
    landed_rows: pa.Table | None  # the same in the driver, when delta-rs wrote them
    landing_version: int
    now: dt.datetime  # the micro-batch's ingest time
    tag: str  # its commits' tag
    clock: PhaseClock
    stored: frozenset[str]  # the extension's tables that already hold this micro-batch
    replay: bool  # whether the micro-batch is one Spark runs again after a crash


class Extension(Protocol):
    """What a domain adds to each micro-batch (the tolls alerts), working from the partial rows
    of its speed views. Built once per run with the job's writer."""

    tables: tuple[str, ...]  # the tables it writes (tagged like the job's own)

    def load(self, landing: DataFrame | None, landing_version: int) -> str:
        """Rebuild its state from the lake as of `landing_version` (`landing`, the landing
        zone then; None when it held no event); say what it loaded."""

    def plan(self, partial_rows: pa.Table) -> Any:  # noqa: ANN401 (the extension's own)
        """Work out from a micro-batch's partial rows what to do, before the landing commit is
        known (e.g. which alerts are due)."""

    def finish(self, plan: Any, batch: LandedBatch) -> str:  # noqa: ANN401
        """Do it once the landing commit is there; return a fragment of the log line."""

    def close(self) -> None:
        """Release what it holds (a Kafka producer)."""


@dataclass(frozen=True)
class StreamDomain:
    """A streaming domain: its names, event spec, validation, speed views and extension."""

    names: Domain  # its tables, query and topic (lambdalake/domains.py)
    event_spec: str
    rules: Callable[[ValidationSettings, Mapping[str, Known]], EventRules]
    # the speed views (members of the speed rows table) and the batch transformation of each
    speed_views: Mapping[str, Callable[..., Callable[[DataFrame], DataFrame]]]
    log_prefix: str
    extension: Callable[[SparkSession, Settings, Writer], Extension] | None = None
    extra_topics: Callable[[Settings], tuple[str, ...]] = lambda _settings: ()

    def __post_init__(self) -> None:
        same_names(f"{self.names.name} speed views", tuple(self.speed_views),
                   self.names.speed_views)

    @property
    def id_column(self) -> str:
        """The event's id: what tells a duplicate."""
        return schemas.load(self.event_spec).primary_key[0]

    def references(self) -> dict[str, tuple[str, str]]:
        """The event's fields checked against a reference table: field -> (table, column)."""
        return {c.name: tuple(c.references.split(".", 1))
                for c in schemas.load(self.event_spec).columns if c.references}

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


def _then(future: Future, work: Callable[[Any], Any]) -> Future:
    """A future of `work(future's result)`, run by whichever thread completes `future` (no
    worker of its own)."""
    result: Future = Future()

    def done(finished: Future) -> None:
        try:
            result.set_result(work(finished.result()))
        except BaseException as error:  # noqa: BLE001 (handed on to whoever waits on `result`)
            result.set_exception(error)

    future.add_done_callback(done)
    return result


def _stream_app_id(spark: SparkSession, checkpoint: str, query_name: str) -> str:
    """The streaming query's id, stable for the life of its checkpoint."""
    text = lake.read_text(spark, f"{checkpoint}/metadata")  # no Spark job
    return f"lambdalake-{query_name}-{json.loads(text)['id']}"


def with_batch_values(values: Mapping[str, int | None]) -> Callable[[DataFrame], DataFrame]:
    """Return a transformation setting the long columns named in `values` (added at the end, or
    replaced where they are) to a micro-batch's own integers: a batch id, a version, a time in
    microseconds; None is a null.

    Spark writes a long literal into the Java code it generates, so a plan with the micro-batch's
    own literals is compiled anew every micro-batch (0.06-0.08 s of a warm 5,000-event one,
    BENCHMARKS.md, session 32). Here each value is a decimal literal, which the generated code
    reads from its references, of one type whatever its digits, behind a condition Spark cannot
    fold (`spark_partition_id() >= 0`, always true), in a projection of its own: being
    nondeterministic it is not merged into the next one, which casts it to a long (merged, the
    optimizer would fold the cast into a long literal again). Every micro-batch's plans then
    generate the same code, compiled once per run.
    """
    always = F.spark_partition_id() >= 0
    staged = {name: (f"_batch_value_{name}", F.lit(None) if value is None else
                     F.when(always, F.lit(Decimal(value)).cast(BATCH_VALUE_TYPE)))
              for name, value in values.items()}

    def transform(df: DataFrame) -> DataFrame:
        kept = [F.col(c) if c not in staged else F.col(staged[c][0]).cast("long").alias(c)
                for c in df.columns]
        added = [F.col(hidden).cast("long").alias(name)
                 for name, (hidden, _) in staged.items() if name not in df.columns]
        return (df.select("*", *[value.alias(hidden) for hidden, value in staged.values()])
                .select(*kept, *added))

    return transform


def with_ingest_columns(ingested_at: dt.datetime, batch_id: int
                        ) -> Callable[[DataFrame], DataFrame]:
    """Return a transformation adding a micro-batch's `ingested_at` (a UTC-aware time) and
    `ingest_batch_id` to every row, in code compiled once per run (`with_batch_values`).

    The checks that use `ingested_at` then run per record, which makes the tolls validation's
    generated method larger than the 8,000 bytes HotSpot compiles by default: the JVM needs
    `-XX:-DontCompileHugeMethods` (`lambdalake.spark.DRIVER_JIT`).
    """
    micros = (ingested_at - _EPOCH) // dt.timedelta(microseconds=1)
    values = with_batch_values({"ingested_at": micros, "ingest_batch_id": batch_id})

    def transform(df: DataFrame) -> DataFrame:
        return (df.transform(values)
                .withColumn("ingested_at", F.timestamp_micros("ingested_at")))

    return transform


def speed_partials(speed_views: Mapping[str, Callable[..., Callable[[DataFrame], DataFrame]]]
                   ) -> Callable[[DataFrame], DataFrame]:
    """Return a transformation giving the partial rows of every speed view (member table ->
    its batch transformation) over a micro-batch's landed events, in the columns of the speed
    rows table that stores them (their landing version still to be set), in one partition.

    A micro-batch is small: on one partition the aggregations need no shuffle, so they run as
    one stage, not one shuffle of several tasks each.
    """
    no_version = F.lit(None).cast("long").alias("landing_version")
    views = [(view(), as_union_rows(name)) for name, view in speed_views.items()]

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


class StreamProcessor:
    """The foreachBatch function of a domain's streaming query, with what it keeps between
    batches: the query's id, the validation, the landed ids and the domain's extension."""

    def __init__(self, domain: StreamDomain, spark: SparkSession, settings: Settings,
                 checkpoint: str, totals: StreamTotals) -> None:
        """Prepare for the first micro-batch (nothing is read until it comes)."""
        self.domain = domain
        self.spark, self.settings, self.totals = spark, settings, totals
        self.checkpoint = checkpoint
        self.pool = ThreadPoolExecutor(max_workers=5, thread_name_prefix="lambdalake-write")
        self.extension = (None if domain.extension is None else
                          domain.extension(spark, settings, self.write))
        extra = () if self.extension is None else self.extension.tables
        self.paths = {name: lake.table_path(settings, name)
                      for name in (*domain.names.stream_tables, *extra)}
        self.logs = {name: lake.CommitLog(spark, path) for name, path in self.paths.items()}
        self.app_id: str | None = None
        self.first_batch = True
        # built once (validation again when a reference table changes): a micro-batch only
        # applies them
        self.reference_versions: dict[str, int | None] | None = None
        self.validate: Callable[[DataFrame], DataFrame] | None = None
        self.rules: EventRules | None = None
        self.quarantined: Callable[[DataFrame], DataFrame] | None = None  # built when needed
        self.partials = speed_partials(domain.speed_views)
        self.landed_ids = LandedIdIndex(domain.id_column,
                                        settings.validation.duplicate_window_days)
        self.in_batch = False  # True while a micro-batch is being processed
        # Each validated micro-batch is cached once and read three times; not compressing that
        # cache made a warm 500,000-event batch's validation 7.6-12.2 s instead of 11.9-17.4 s
        # (BENCHMARKS.md, 2026-12-02); it takes 400 bytes a toll event where compression would
        # take 353 (`bench.validation`). Set for the query's life only: in a session shared with
        # other jobs (the demo, the tests) their caches stay compressed.
        self.cache_compressed = spark.conf.get(CACHE_COMPRESSED, None)
        spark.conf.set(CACHE_COMPRESSED, "false")

    def close(self) -> None:
        """Release the writer threads, the cached ids and what the extension holds."""
        self.pool.shutdown(wait=True)
        if self.cache_compressed is None:
            self.spark.conf.unset(CACHE_COMPRESSED)
        else:
            self.spark.conf.set(CACHE_COMPRESSED, self.cache_compressed)
        self.landed_ids.close()
        if self.extension is not None:
            self.extension.close()

    def _driver_commit(self, name: str, rows: int) -> bool:
        """Whether a write of up to `rows` rows to table `name` is committed by delta-rs from the
        driver (see the module docstring) rather than by Spark."""
        limit = self.settings.speed.driver_commit_max_rows
        return 0 < limit and rows <= limit and self.logs[name].can_append()

    def write(self, data: DataFrame | pa.Table | Future | list[dict], name: str, tag: str,
              clock: PhaseClock, rows: int = 0) -> Future:
        """Append `data` (a frame, rows as dicts, or, when delta-rs commits, an Arrow table or a
        future of one) to table `name` in one commit tagged `tag`, in a writer thread: by
        delta-rs from the driver (a frame collected as Arrow) when `_driver_commit(name, rows)`,
        else by Spark. The future's result is the rows written as Arrow when delta-rs wrote
        them, else None."""
        if self._driver_commit(name, rows):
            log, schema = self.logs[name], schemas.arrow_schema(name)
            partition_by = schemas.load(name).partition_by

            def work() -> pa.Table:
                table = (pa.Table.from_pylist(data, schema) if isinstance(data, list) else
                         data if isinstance(data, pa.Table) else
                         data.result() if isinstance(data, Future) else collect_arrow(data))
                table = table.select(schema.names).cast(schema)
                log.append(table, tag, partition_by)
                return table
        else:
            if isinstance(data, pa.Table | Future):  # decided by the same `_driver_commit`
                raise TypeError(f"an Arrow table for {name}, but Spark commits this write")
            frame = (data if isinstance(data, DataFrame) else
                     self.spark.createDataFrame(data, schemas.spark_schema(name)))

            def work() -> None:
                lake.write_tagged(frame, self.paths[name], "append", tag)
        return self.pool.submit(clock.timed, f"write {name}", work)

    def _guess(self, events: DataFrame) -> dict[str, Future]:
        """Collect as Arrow, beside the duplicate look-up's collect, what a micro-batch writes
        if it holds no duplicate, which is almost always (`events`: what it then lands): its
        landed events and its partial rows, for the tables whose commits delta-rs writes. Their
        Spark jobs are planned while the look-up's runs, and the landing collect's tasks take
        the core the partials' one task leaves."""
        names = self.domain.names
        frames = {names.landing: lambda: events,
                  names.speed_rows: lambda: events.transform(self.partials)}
        return {name: self.pool.submit(lambda frame=frame: collect_arrow(frame()))
                for name, frame in frames.items() if self._driver_commit(name, 1)}

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
        spark, domain = self.spark, self.domain
        names = domain.names
        landing, quarantine, speed_rows = names.landing, names.quarantine, names.speed_rows
        self.app_id = self.app_id or _stream_app_id(spark, self.checkpoint, names.query_name)
        tag = f"{self.app_id}:{batch_id}"
        now = dt.datetime.now(dt.timezone.utc)
        done = self._already_written(tag)
        # what was landed before this micro-batch, also when it is a replay
        self.prepare(now, done[landing] - 1 if landing in done else None)
        clock.lap("prepare")
        validated = (raw.transform(with_ingest_columns(now, batch_id))
                     .transform(self.validate).persist())
        unique = validated.withColumn("duplicate_reason", F.lit(None).cast("string"))
        unique_events = unique.transform(accepted_events(landing))
        guesses = self._guess(unique_events)
        partials = None
        writes: list[Future] = []
        try:
            keys = collect_arrow(validated.select("is_accepted", "partition", "offset",
                                                  *id_hashes(domain.id_column)))
            accepted = keys.filter(keys.column("is_accepted"))
            if not self.settings.kafka.fail_on_data_loss and names.gaps not in done:
                self._record_gaps(batch_id, keys, now, tag, clock)
            clock.lap("validate")
            duplicates = self._duplicates(validated, accepted, now, guesses.get(landing))
            positions = (spark.createDataFrame(duplicates, DUPLICATES_SCHEMA) if duplicates
                         else None)
            records = (validated.transform(mark_duplicates(positions)) if positions is not None
                       else unique)
            counts = {"landed": accepted.num_rows - len(duplicates),
                      "quarantined": keys.num_rows - accepted.num_rows,
                      "duplicate": len(duplicates)}
            landed = counts["landed"]
            clock.lap("duplicates")
            events = (records.transform(accepted_events(landing)) if duplicates else
                      unique_events)
            # what the guesses assumed holds; with duplicates, the landed events' guess less them
            guessed = (guesses if not duplicates else
                       {landing: _then(guesses[landing], lambda table: without_duplicates(
                           table, duplicates))} if landing in guesses else {})
            landing_write = (self.write(
                guessed[landing] if landing in guessed and self._driver_commit(landing, landed)
                else events, landing, tag, clock, landed)
                if landed and landing not in done else None)
            writes += [landing_write] if landing_write is not None else []
            rejected = counts["quarantined"] + counts["duplicate"]
            if rejected and quarantine not in done:
                writes.append(self.write(records.transform(self._quarantined()).coalesce(1),
                                         quarantine, tag, clock, rejected))
            if landed:
                self._index_landed(accepted, duplicates, now)
            plan: Any = None
            partial_rows: pa.Table | None = None
            speed_rows_as_arrow = self._driver_commit(speed_rows, landed + 1)
            if landed:  # while the landing commit is written
                if speed_rows in guessed and speed_rows_as_arrow:
                    partial_rows = guessed[speed_rows].result()
                elif positions is not None and speed_rows in guesses and speed_rows_as_arrow:
                    # the guess less the partial rows of the duplicates alone (few records)
                    removed = collect_arrow(validated.join(
                        F.broadcast(positions.select("partition", "offset")),
                        ["partition", "offset"], "left_semi")
                        .transform(accepted_events(landing)).transform(self.partials))
                    partial_rows = partial_rows_less(guesses[speed_rows].result(), removed,
                                                     domain.speed_views)
                else:
                    partials = events.transform(self.partials)
                    if not speed_rows_as_arrow:  # Spark writes them too
                        partials = partials.persist()
                    partial_rows = collect_arrow(partials)
                if self.extension is not None:
                    plan = self.extension.plan(partial_rows)
                clock.lap("partials")
            landed_rows: pa.Table | None = None  # the landed events, when in the driver
            if landing_write is not None:
                landed_rows = landing_write.result()
                clock.lap("wait landing")
                faults.kill_point("speed:after-landing-commit")
            landing_version = (done.get(landing) if landing in done else
                               self.logs[landing].commit_version(tag, depth=10) if landed
                               else None)
            if speed_rows not in done:
                writes.append(self.write(
                    self._speed_rows(partials, partial_rows, batch_id, counts, landing_version,
                                     now, clock.elapsed(), speed_rows_as_arrow), speed_rows,
                    tag, clock, landed + 1))
            said = ""
            if landed and self.extension is not None:
                said = self.extension.finish(plan, LandedBatch(
                    events, landed_rows, landing_version, now, tag, clock,
                    frozenset(done) & frozenset(self.extension.tables), bool(done)))
            for write in writes:
                write.result()
            clock.lap("wait writes")
            faults.kill_point("speed:after-writes")
        finally:
            # the cached frames are released only once no write nor guess reads them
            for future in [*writes, *guesses.values()]:
                future.exception()
            if partials is not None:
                partials.unpersist()
            validated.unpersist()
        self._log(batch_id, counts, said, landing_version, clock)

    def ensure_tables(self) -> None:
        """Create the tables the processor writes, where missing (before its query starts)."""
        for name in self.paths:
            lake.ensure_table(self.spark, self.settings, name)

    def prepare(self, now: dt.datetime, landing_version: int | None = None) -> None:
        """The start-up every micro-batch begins with: build the validation (again when a
        reference table changed) and, once per run, load the state as of `landing_version`
        (default: the landing zone's latest version). Also called from outside to warm a JVM
        up or to time a start-up."""
        self._refresh_validation()
        if not self.landed_ids.loaded:  # once per run, before anything is written
            version = (self.logs[self.domain.names.landing].version()
                       if landing_version is None else landing_version)
            self._load_state(version, now)

    def _refresh_validation(self) -> None:
        """Build the validation for the values of the reference tables the event spec names:
        before the first micro-batch, and again when one of them has changed (a plaza added
        counts with no restart)."""
        references = self.domain.references()
        versions = {table: lake.table_version(self.settings, table)
                    for table, _ in references.values()}
        if self.validate is not None and versions == self.reference_versions:
            return
        known: dict[str, Known] = {}
        for name, (table, column) in references.items():
            known[name] = lake.column_values(self.settings, table, column)
            print(f"{self.domain.log_prefix}: " + (
                f"no {table} table: every {name} is accepted" if known[name] is None else
                f"{len(known[name])} known {name} values ({table} version {versions[table]})"),
                flush=True)
        rules = self.domain.rules(self.settings.validation, known)
        self.validate = validate_records(rules)
        self.rules, self.quarantined = rules, None
        self.reference_versions = versions

    def _quarantined(self) -> Callable[[DataFrame], DataFrame]:
        """The transformation giving the quarantine rows of a micro-batch's rejected records,
        built the first time one has any: its reasons take some 300 py4j calls (0.2-0.3 s on
        a cold JVM), which a start whose records are all accepted does not pay."""
        if self.quarantined is None:
            self.quarantined = quarantined_records(self.rules)
        return self.quarantined

    def _load_state(self, landing_version: int, now: dt.datetime) -> None:
        """What the job keeps in memory, rebuilt from the lake as of `landing_version` (the
        commit before the micro-batch about to be processed): the landed ids of the duplicate
        window, and the extension's state."""
        began = time.monotonic()
        name = self.domain.names.landing
        # a landing zone with no event then (a new lake) is told by delta-rs: no Spark job,
        # which on a new lake would be the job's first use of Delta's Spark machinery (4-5 s
        # of a cold JVM; BENCHMARKS.md, session 36)
        landing = (None if self.logs[name].holds_files(landing_version) is False else
                   lake.read_table(self.spark, self.settings, name, landing_version))
        count = self.landed_ids.load(landing, now)
        said = ("" if self.extension is None else
                f" and {self.extension.load(landing, landing_version)}")
        print(f"{self.domain.log_prefix}: loaded {count} landed ids of the last "
              f"{self.settings.validation.duplicate_window_days} days{said} (landing "
              f"v{landing_version}) in {time.monotonic() - began:.1f}s", flush=True)

    def _duplicates(self, validated: DataFrame, accepted: pa.Table, now: dt.datetime,
                    landed_guess: Future | None) -> list[Row] | list[dict]:
        """The micro-batch's duplicate records (`DUPLICATES_SCHEMA` rows). The accepted records'
        id hashes are looked up in the landed-id index and among themselves; only when some id
        was landed or repeats (rare) are they found: in the driver, from the landed events
        collected beside (`landed_guess`, a future of them as Arrow) when there is that
        collect, else by `duplicate_records` on those records alone."""
        h1, h2 = (accepted.column(c).to_numpy() for c in HASH_COLUMNS)
        was_landed = self.landed_ids.contains(h1, h2, now)
        repeated = repeated_pairs(h1, h2)
        if not was_landed.any() and not len(repeated):
            return []
        id_column = self.domain.id_column
        if landed_guess is not None:  # no Spark job (about 0.6 s even for a few duplicates)
            return duplicates_in_driver(accepted, was_landed, landed_guess.result(), id_column)
        suspects = {(int(a), int(b)): True for a, b in zip(h1[was_landed], h2[was_landed],
                                                            strict=True)}
        for a, b in repeated:
            suspects.setdefault((int(a), int(b)), False)
        spark = self.spark
        hashes = spark.createDataFrame([(a, b, landed) for (a, b), landed in suspects.items()],
                                       f"{HASH_COLUMNS[0]} long, {HASH_COLUMNS[1]} long, "
                                       "was_landed boolean")
        suspect = (validated.select("*", *id_hashes(id_column))
                   .join(F.broadcast(hashes), list(HASH_COLUMNS)))
        landed_ids = suspect.where("was_landed").select(id_column).distinct()
        return (suspect.select(*validated.columns)
                .transform(duplicate_records(landed_ids, id_column)).collect())

    def _index_landed(self, accepted: pa.Table, duplicates: list[Row] | list[dict],
                      now: dt.datetime) -> None:
        """Add the ids the micro-batch lands (accepted, not duplicates) to the landed-id index."""
        keep = ~are_duplicates(accepted.column("partition").to_numpy(),
                               accepted.column("offset").to_numpy(), duplicates)
        if accepted.num_rows - int(keep.sum()) != len(duplicates):
            raise RuntimeError("duplicates that are not among the micro-batch's accepted records")
        h1, h2 = (accepted.column(c).to_numpy()[keep] for c in HASH_COLUMNS)
        self.landed_ids.add(h1, h2, now.date())

    def _record_gaps(self, batch_id: int, keys: pa.Table, now: dt.datetime, tag: str,
                     clock: PhaseClock) -> None:
        """Record what Kafka's retention deleted before this micro-batch could read it (with
        `kafka.fail_on_data_loss` off, Spark reads on from the earliest offset kept): where
        the checkpoint says the batch starts, against the first offset it read, and Kafka's
        earliest offset only when those differ. Two small checkpoint files a micro-batch."""
        topic, gaps_table = self.domain.names.topic(self.settings), self.domain.names.gaps
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
        print(f"{self.domain.log_prefix}: batch {batch_id}: Kafka's retention deleted records "
              f"before they were read (recorded in {gaps_table}): {retention.describe(gaps)}",
              flush=True)
        names = schemas.arrow_schema(gaps_table).names
        rows = [dict(zip(names, (g.topic, g.partition, g.from_offset, g.to_offset, now,
                                 batch_id), strict=True)) for g in gaps]
        self.write(rows, gaps_table, tag, clock, len(rows)).result()

    def _speed_rows(self, partials: DataFrame | None, partial_rows: pa.Table | None,
                    batch_id: int, counts: dict[str, int], landing_version: int | None,
                    now: dt.datetime, seconds: float, as_arrow: bool) -> DataFrame | pa.Table:
        """The micro-batch's rows of the speed rows table: its partial rows (`partials`, also
        collected as `partial_rows`) with their landing version, and its progress row (begun at
        `now`, `seconds` ago); an Arrow table when delta-rs commits them (`as_arrow`), else a
        frame for Spark."""
        progress_table = self.domain.names.progress
        progress = dict(zip(schemas.spark_schema(progress_table).names, (
            batch_id, sum(counts.values()), counts.get("landed", 0),
            counts.get("quarantined", 0), counts.get("duplicate", 0), landing_version, now,
            round(seconds, 3)), strict=True))
        if not as_arrow:
            rows = (self.spark.createDataFrame([progress], schemas.spark_schema(progress_table))
                    .transform(as_union_rows(progress_table)))
            if partials is not None:
                rows = partials.unionByName(rows)
            return (rows.transform(with_batch_values({"landing_version": landing_version,
                                                      "ingest_batch_id": batch_id}))
                    .coalesce(1))
        schema = schemas.arrow_schema(self.domain.names.speed_rows)
        tables = [pa.Table.from_pylist([{"view_name": progress_table, **progress}], schema)]
        if partial_rows is not None:
            tagged = partial_rows.select(schema.names).cast(schema)
            for name, value in (("landing_version", landing_version),
                                ("ingest_batch_id", batch_id)):
                column = pa.array(np.full(tagged.num_rows, value, dtype=np.int64))
                tagged = tagged.set_column(schema.get_field_index(name), name, column)
            tables.insert(0, tagged)
        return pa.concat_tables(tables)

    def _log(self, batch_id: int, counts: dict[str, int], said: str,
             landing_version: int | None, clock: PhaseClock) -> None:
        self.totals.add(counts, clock.elapsed())
        line = (f"{self.domain.log_prefix}: batch {batch_id}: read {sum(counts.values())}, "
                f"landed {counts.get('landed', 0)}, quarantined "
                f"{counts.get('quarantined', 0)}, duplicates {counts.get('duplicate', 0)}"
                + (f", {said}" if said else "")
                + (f" (landing v{landing_version})" if landing_version is not None else "")
                + f" {clock.summary()}")
        self.totals.log.append(line)
        print(line, flush=True)


def start_query(domain: StreamDomain, spark: SparkSession, settings: Settings, until_idle: bool,
                totals: StreamTotals) -> tuple[StreamingQuery, StreamProcessor]:
    """Start a domain's streaming query: Kafka source -> foreachBatch(StreamProcessor); the
    caller closes the processor once the query has stopped."""
    checkpoint = lake.checkpoint_path(settings, domain.names.query_name)
    processor = StreamProcessor(domain, spark, settings, checkpoint, totals)
    processor.ensure_tables()
    source = (spark.readStream.format("kafka")
              .option("kafka.bootstrap.servers", settings.kafka.bootstrap_servers)
              .option("subscribe", domain.names.topic(settings))
              .option("startingOffsets", settings.kafka.starting_offsets)
              .option("maxOffsetsPerTrigger", settings.kafka.max_offsets_per_trigger)
              .option("kafka.max.partition.fetch.bytes",
                      settings.kafka.max_partition_fetch_bytes)
              .option("kafka.max.poll.records", settings.kafka.max_poll_records)
              .option("failOnDataLoss", str(settings.kafka.fail_on_data_loss).lower())
              .load())
    writer = (source.writeStream.queryName(domain.names.query_name)
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


def _run_query(domain: StreamDomain, spark: SparkSession, settings: Settings, until_idle: bool,
               totals: StreamTotals, stop_requested: list[int]) -> str | None:
    """Run the streaming query until it ends, a stop is requested or it fails; return its
    failure's description, or None."""
    try:
        topics.ensure_topics(settings, domain.names.topic(settings),
                             *domain.extra_topics(settings))
    except LambdalakeError as error:  # Kafka unreachable: the caller waits for it
        return str(error)
    query, processor = start_query(domain, spark, settings, until_idle, totals)
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
                    stop_requested: list[int], prefix: str) -> None:
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
            print(f"{prefix}: Kafka at {servers} answers again after {waited:.0f}s: restarting "
                  "the query from its checkpoint", flush=True)
            return
        print(f"{prefix}: waiting for Kafka at {servers} ({waited:.0f}s so far, giving up after "
              f"{limit}s): next try in {delay:.0f}s", flush=True)
        time.sleep(delay)
        delay = min(delay * 2, 30.0)


def run(domain: StreamDomain, spark: SparkSession, settings: Settings,
        until_idle: bool) -> StreamTotals:
    """Run a domain's streaming job; with `until_idle`, process what is in Kafka now and return.

    The job rides out a Kafka outage (a broker restart, a network cut, a start while the broker
    is down): when the query fails, or cannot start, while Kafka is unreachable, or with one of
    Kafka's errors, it waits for a broker with backoff and restarts the query from its
    checkpoint (a micro-batch cut short is replayed exactly); it stops with one line once the
    outage has lasted `kafka.outage_timeout_s`. Any other failure stops it at once, with its
    one line.
    """
    totals = StreamTotals()
    stop_requested: list[int] = []
    prefix = domain.log_prefix

    def request_stop(signum: int, _frame: object) -> None:
        print(f"{prefix}: signal {signum}: stopping after the current micro-batch", flush=True)
        stop_requested.append(signum)

    previous = {}
    if not until_idle:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, request_stop)
    outage_since: float | None = None
    try:
        while True:
            batches = totals.batches
            failure = _run_query(domain, spark, settings, until_idle, totals, stop_requested)
            if failure is None:
                return totals
            if stop_requested:  # a failure while stopping is still reported, not waited out
                raise LambdalakeError(f"the streaming query failed: {failure_line(failure)}")
            if _DATA_LOSS.search(failure):
                raise LambdalakeError(data_loss_line(domain, spark, settings, failure))
            kafka_trouble = bool(_KAFKA_TROUBLE.search(failure))
            if not kafka_trouble and topics.reachable(settings):
                raise LambdalakeError(f"the streaming query failed: {failure_line(failure)}")
            if outage_since is None or totals.batches > batches:  # a new outage
                outage_since = time.monotonic()
            print(f"{prefix}: the query stopped on a Kafka failure: {failure_line(failure)}",
                  flush=True)
            _wait_for_kafka(settings, failure, outage_since, stop_requested, prefix)
            if stop_requested:  # stopped while waiting: no query is running
                return totals
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def data_loss_line(domain: StreamDomain, spark: SparkSession, settings: Settings,
                   failure: str) -> str:
    """The one line for a query stopped because Kafka's retention deleted records it had not
    read (`kafka.fail_on_data_loss`): the gap of each partition, from the checkpoint's last
    done micro-batch to the earliest offset Kafka still holds."""
    checkpoint = lake.checkpoint_path(settings, domain.names.query_name)
    done = [int(n) for n in lake.list_names(spark, f"{checkpoint}/commits") or () if n.isdigit()]
    text = lake.read_text(spark, f"{checkpoint}/offsets/{max(done)}") if done else None
    topic = domain.names.topic(settings)
    gaps = []
    if text is not None and topics.reachable(settings):
        earliest = {p: e for p, (e, _) in topics.offset_ranges(settings, topic).items()}
        gaps = retention.find_gaps(topic, retention.parse_offsets(text).get(topic, {}),
                                   earliest)
    lost = (retention.describe(gaps) if gaps else
            f"{topic} (the gap is unknown: {failure_line(failure)})")
    return (f"Kafka's retention deleted records the streaming job had not read: {lost}. Set "
            f"kafka.fail_on_data_loss = false to go on past them (each gap is recorded in "
            f"quarantine.{domain.names.gaps} and shown by `lambdalake status`)")


def failure_line(description: str) -> str:
    """The line of a streaming query's failure that says what went wrong: the exception raised
    in a micro-batch (the last `...Error: ...` line of its Python traceback), else the first."""
    lines = [line.strip() for line in str(description).splitlines() if line.strip()]
    raised = [line for line in lines if re.match(r"^[\w.]+(Error|Exception): ", line)]
    return raised[-1] if raised else (lines[0] if lines else "no description")


def main(domain: StreamDomain, argv: list[str] | None, doc: str) -> int:
    """The body of a domain's job entry point (spark-submit, `lambdalake speed run`): the
    options, the session, the job file `lambdalake status` reads, the run and its summary."""
    parser = argparse.ArgumentParser(prog=f"speed/{domain.names.query_name}.py",
                                     description=doc.split("\n")[0])
    parser.add_argument("--until-idle", action="store_true",
                        help="process what is in Kafka now, then exit (tests, demo)")
    args = parser.parse_args(argv)
    settings = load_settings()
    spark = create_spark_session(settings, f"lambdalake-speed-{domain.names.name}")
    status.job_started(settings, domain.names.query_name)
    outcome = "failed"
    try:
        totals = run(domain, spark, settings, until_idle=args.until_idle)
        outcome = "stopped cleanly"
    except LambdalakeError as e:
        outcome = f"failed: {e}"
        raise
    finally:
        status.job_stopped(settings, outcome, domain.names.query_name)
    print(f"{domain.log_prefix}: done: {totals.batches} micro-batches, read {totals.read}, "
          f"landed {totals.landed}, quarantined {totals.quarantined}, duplicates "
          f"{totals.duplicates}", flush=True)
    return 0
