"""`lambdalake status`: one screen for an operator, read without Spark.

What it shows, and where it comes from:

- the streaming job: alive or not, from the job file it keeps in the state directory, one per
  checkpoint (`<state.dir>/jobs/tolls_stream-<hash>.json`: pid, host, start time, checkpoint;
  how and when it stopped);
- its last micro-batch and the totals of every micro-batch (read = landed + quarantined +
  duplicates), from the progress rows in the lake;
- the Kafka lag per partition: the topic's end offsets minus the offsets of the last
  micro-batch the checkpoint records as done (a checkpoint on a local path only);
- the batch cut-over: the landing version and publication time of the published batch views,
  and the age of the oldest against the 30-minute freshness requirement;
- the alerts: rows in `speed.tolls_alerts` and messages on the alerts topic;
- any gap recorded by the streaming job (offsets Kafka's retention deleted before they were
  read), from `quarantine.tolls_kafka_gaps`.

The same lines, prefixed `clicks`, follow for the clickstream's job once it has run (a job file
or progress rows): job, last micro-batch, records, lag, batch cut-over and gaps.

The lines under `attention:` say what needs an operator; the exit code is 1 when there is one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from lambdalake import domains, processes, retention, topics
from lambdalake.config import Settings, local_path
from lambdalake.domains import Domain
from lambdalake.errors import LambdalakeError

QUERY = domains.TOLLS.query_name


@dataclass(frozen=True)
class Watched:
    """A streaming domain as the screen shows it: its names, its lines' prefix and the command
    that runs its streaming job."""

    names: Domain
    prefix: str
    speed_run: str

    @property
    def progress(self) -> str:
        """Its progress rows' relation."""
        return _relation(self.names.progress)

    @property
    def gaps(self) -> str:
        """Its gaps' relation."""
        return _relation(self.names.gaps)

    def label(self, text: str) -> str:
        """A line's label: `streaming job`, `clicks streaming job`."""
        return f"{self.prefix}{text}"


def _relation(table: str) -> str:
    """The served relation of a lake table (serving is imported only once it is needed)."""
    from serving.engine import relation_name

    return relation_name(table)


TOLLS = Watched(domains.TOLLS, "", "lambdalake speed run")
CLICKS = Watched(domains.CLICKS, "clicks ", "lambdalake speed run --domain clicks")
FRESHNESS = dt.timedelta(minutes=30)  # SPEC: batch reports at most 30 minutes behind
STALE_JOB = dt.timedelta(minutes=5)  # a running job whose last micro-batch is older: say so


def job_file(settings: Settings, query: str = QUERY) -> Path:
    """Where a streaming job (by its query, the tolls one by default) keeps its job file: one
    per checkpoint, so that jobs on other checkpoints (another lake, a test) on the same machine
    are told apart."""
    checkpoint = f"{settings.checkpoint.root.rstrip('/')}/{query}"
    digest = hashlib.sha1(checkpoint.encode()).hexdigest()[:12]
    return Path(settings.state.dir) / "jobs" / f"{query}-{digest}.json"


def job_started(settings: Settings, query: str = QUERY) -> None:
    """Record that this process runs the streaming job `query` (replaced atomically)."""
    path = job_file(settings, query)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"pid": os.getpid(), "host": socket.gethostname(),
              "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "lake_root": settings.lake.root, "checkpoint_root": settings.checkpoint.root}
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(record) + "\n")
    temporary.replace(path)


def job_stopped(settings: Settings, outcome: str, query: str = QUERY) -> None:
    """Record in the job file, if it is this process's, that the job stopped and how
    (`stopped cleanly`, or `failed: <its one line>`)."""
    path = job_file(settings, query)
    try:
        record = json.loads(path.read_text())
        if record.get("pid") != os.getpid():
            return
        record.update(pid=None, outcome=outcome,
                      stopped_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
        path.write_text(json.dumps(record) + "\n")
    except (OSError, ValueError):
        pass


@dataclass
class Report:
    """The status screen: (label, text) lines and what needs attention."""

    lines: list[tuple[str, str]] = field(default_factory=list)
    attention: list[str] = field(default_factory=list)

    def add(self, label: str, text: str) -> None:
        """Add one line."""
        self.lines.append((label, text))

    def render(self) -> str:
        """The screen as text."""
        width = max(len(label) for label, _ in self.lines)
        out = [f"{label:<{width}}  {text}" for label, text in self.lines]
        if self.attention:  # once each (Kafka down is said by each domain's lag)
            out += ["", "attention:"] + [f"  - {a}" for a in dict.fromkeys(self.attention)]
        else:
            out += ["", "attention: none"]
        return "\n".join(out)


def _ago(at: dt.datetime | None, now: dt.datetime) -> str:
    if at is None:
        return "never"
    seconds = int((now - at).total_seconds())
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h {seconds % 3600 // 60}m ago"


def _utc(at: dt.datetime | None) -> dt.datetime | None:
    if at is None:
        return None
    return at.replace(tzinfo=dt.timezone.utc) if at.tzinfo is None else at


def _stamp(at: dt.datetime) -> str:
    return at.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _job(settings: Settings, report: Report, watched: Watched) -> bool:
    path, label = job_file(settings, watched.names.query_name), watched.label("streaming job")
    job = f"the {watched.label('streaming job')}"
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        report.add(label, "not running (no job file)")
        report.attention.append(f"{job} is not running: `{watched.speed_run}`")
        return False
    except (OSError, ValueError) as e:
        report.add(label, f"unknown: unreadable job file {path} ({e})")
        return False
    started = f"started {record.get('started_at')}"
    if record.get("pid") is None:
        outcome = record.get("outcome", "stopped")
        report.add(label, f"not running: {outcome} at {record.get('stopped_at')}")
        report.attention.append(f"{job} is not running: `{watched.speed_run}`"
                                + ("" if outcome == "stopped cleanly" else
                                   " (after fixing why it failed)"))
        return False
    if record.get("host") != socket.gethostname():
        report.add(label, f"pid {record.get('pid')} on host {record.get('host')}, "
                          f"{started} (another host: not checked from here)")
        return True
    if processes.alive(int(record["pid"]), (b"lambdalake", watched.names.query_name.encode())):
        report.add(label, f"running: pid {record['pid']}, {started}")
        return True
    report.add(label, f"not running: pid {record.get('pid')} ({started}) ended "
                      "without a clean stop (killed or crashed)")
    report.attention.append(f"{job} died without a clean stop: see its log, then "
                            f"`{watched.speed_run}` (it resumes from its checkpoint)")
    return False


def _progress(serving, report: Report, now: dt.datetime, running: bool,  # noqa: ANN001
              watched: Watched) -> None:
    last = serving.con.execute(
        "select ingest_batch_id, processed_at, read_count, landed_count, quarantined_count, "
        f"duplicate_count, landing_version, processing_seconds from {watched.progress} "
        "order by processed_at desc limit 1").fetchone()
    if last is None:
        report.add(watched.label("last micro-batch"), "none yet")
        return
    batch_id, at, read, landed, quarantined, duplicates, version, seconds = last
    at = _utc(at)
    report.add(watched.label("last micro-batch"), f"{batch_id} at {_stamp(at)} "
               f"({_ago(at, now)}): read "
                                   f"{read:,}, landed {landed:,}, quarantined {quarantined:,}, "
                                   f"duplicates {duplicates:,}"
               + (f" (landing v{version})" if version is not None else "")
               + (f" in {seconds:.1f}s" if seconds is not None else ""))
    totals = serving.con.execute(
        "select count(*), sum(read_count), sum(landed_count), sum(quarantined_count), "
        f"sum(duplicate_count) from {watched.progress}").fetchone()
    batches, read, landed, quarantined, duplicates = (int(v or 0) for v in totals)
    balanced = "" if read == landed + quarantined + duplicates else "  (DOES NOT BALANCE)"
    report.add(watched.label("records"), f"read {read:,} = landed {landed:,} + quarantined "
               f"{quarantined:,} + duplicates {duplicates:,} over {batches:,} "
               f"micro-batches{balanced}")
    if balanced:
        report.attention.append(f"the progress rows of {watched.progress} do not balance: "
                                "read != landed + quarantined + duplicates")
    if running and now - at > STALE_JOB:
        report.add("", f"(no micro-batch for {_ago(at, now)[:-4]}: idle topic, or stuck?)")


def checkpoint_offsets(settings: Settings, query: str = QUERY
                       ) -> tuple[int, dict[str, dict[int, int]]] | None:
    """(batch id, {topic: {partition: next offset}}) of the last micro-batch the streaming
    query's checkpoint records as done, or None (no checkpoint, or not on a local path)."""
    root = local_path(settings.checkpoint.root)
    if root is None:
        return None
    folder = root / query
    try:
        done = [int(p.name) for p in (folder / "commits").iterdir() if p.name.isdigit()]
    except FileNotFoundError:
        return None
    if not done:
        return None
    batch_id = max(done)
    return batch_id, retention.parse_offsets((folder / "offsets" / str(batch_id)).read_text())


def _lag(settings: Settings, report: Report, watched: Watched) -> bool:
    """Add the lag line; return whether Kafka answered."""
    topic, label = watched.names.topic(settings), watched.label("kafka lag")
    checkpoint = checkpoint_offsets(settings, watched.names.query_name)
    try:
        ranges = topics.offset_ranges(settings, topic, timeout_s=3.0)
    except LambdalakeError:
        report.add(label, f"unknown: Kafka at {settings.kafka.bootstrap_servers} does "
                          "not answer")
        report.attention.append(f"Kafka at {settings.kafka.bootstrap_servers} does not answer")
        return False
    if not ranges:
        report.add(label, f"topic {topic} does not exist yet")
        return True
    done = (checkpoint or (None, {}))[1].get(topic)
    if done is None:
        waiting = sum(end - earliest for earliest, end in ranges.values())
        report.add(label, f"{topic}: {waiting:,} records on the topic (no micro-batch "
                          "done in a checkpoint on a local path)")
        return True
    parts, total = [], 0
    for partition, (earliest, end) in sorted(ranges.items()):
        position = done.get(partition, earliest)
        lag = max(0, end - position)
        total += lag
        parts.append(f"p{partition} {lag:,}")
        if position < earliest:
            report.attention.append(
                f"{topic} partition {partition}: offsets {position}-{earliest - 1} were deleted "
                "by retention before the job read them")
    report.add(label, f"{topic}: {total:,} records behind ({', '.join(parts)}; "
                      f"checkpoint batch {checkpoint[0]})")
    return True


def _batch(serving, report: Report, now: dt.datetime, watched: Watched) -> None:  # noqa: ANN001
    label = watched.label("batch cut-over")
    views = ", ".join(f"'{view}'" for view in watched.names.batch_views)
    version, published, published_count = serving.con.execute(
        "with latest as (select view_name, arg_max(landing_version, published_at) as version, "
        f"max(published_at) as published_at from batch.runs where view_name in ({views}) "
        "group by view_name) "
        "select min(version), min(published_at), count(*) from latest").fetchone()
    reports = len(watched.names.batch_views)
    if not published_count:
        report.add(label, "no batch run published yet (the speed part serves everything)")
        job = watched.names.batch_job
        report.attention.append(f"no {job} batch run published: `lambdalake batch run {job}` "
                                f"or `lambdalake batch schedule --every 30m --jobs {job}`")
        return
    published = _utc(published)
    age = now - published
    verdict = ("within" if age <= FRESHNESS else "OVER") + " the 30-minute requirement"
    partial = "" if published_count == reports else f" ({published_count} of {reports} views)"
    report.add(label, f"landing v{version}, published {_stamp(published)}, "
                      f"{_ago(published, now)}: {verdict}{partial}")
    if age > FRESHNESS:
        report.attention.append(f"the {watched.names.batch_job} batch views are "
                                f"{_ago(published, now)[:-4]} old, over 30 minutes: is "
                                "`lambdalake batch schedule` running?")


def _alerts(settings: Settings, serving, report: Report, kafka_up: bool  # noqa: ANN001
            ) -> None:
    alerts = _relation("tolls_alerts")
    stored = serving.con.execute(f"select count(*) from {alerts}").fetchone()[0]
    topic = settings.topics.tolls_alerts
    try:
        if not kafka_up:
            raise LambdalakeError("Kafka does not answer")
        ranges = topics.offset_ranges(settings, topic, timeout_s=3.0)
    except LambdalakeError:
        report.add("alerts", f"{stored:,} in {alerts}; topic {topic} unknown (Kafka "
                             "does not answer)")
        return
    on_topic = sum(end - earliest for earliest, end in ranges.values())
    trimmed = any(earliest > 0 for earliest, _ in ranges.values())
    report.add("alerts", f"{stored:,} in {alerts}, {on_topic:,} on {topic}"
               + (" (older ones removed by retention)" if trimmed else ""))
    if not trimmed and on_topic < stored:
        report.attention.append(f"{stored - on_topic} alerts are stored but not on {topic} "
                                "(the job sends them when it replays their micro-batch)")


def _gaps(serving, report: Report, watched: Watched) -> None:  # noqa: ANN001
    rows = serving.con.execute(
        "select kafka_topic, kafka_partition, from_offset, to_offset, detected_at "
        f"from {watched.gaps} order by detected_at").fetchall()
    if not rows:
        report.add(watched.label("gaps"), "none recorded")
        return
    missing = sum(r[3] - r[2] for r in rows)
    report.add(watched.label("gaps"), f"{len(rows)} recorded, {missing:,} records never read:")
    for topic, partition, start, end, at in rows[-5:]:
        report.add("", f"{topic} p{partition} offsets {start}-{end - 1} (found "
                       f"{_stamp(_utc(at))})")
    report.attention.append(f"{missing:,} records were deleted by Kafka retention before the "
                            f"job read them ({watched.gaps})")


def status(settings: Settings) -> Report:
    """Gather the status screen (no Spark: DuckDB over the lake, kafka-python, the files)."""
    from serving.engine import Serving

    now = dt.datetime.now(dt.timezone.utc)
    report = Report()
    report.add("lake", f"{settings.lake.root} (checkpoint {settings.checkpoint.root})")
    serving = Serving(settings, copy_to_duckdb=False)
    try:
        for watched in (TOLLS, CLICKS):
            in_use = watched is TOLLS or job_file(settings, watched.names.query_name).exists() or (
                serving.con.execute(f"select count(*) from {watched.progress}").fetchone()[0])
            if not in_use:  # the clickstream shows once its job has run
                continue
            running = _job(settings, report, watched)
            _progress(serving, report, now, running, watched)
            kafka_up = _lag(settings, report, watched)
            _batch(serving, report, now, watched)
            if watched is TOLLS:
                _alerts(settings, serving, report, kafka_up)
            _gaps(serving, report, watched)
    finally:
        serving.close()
    return report
