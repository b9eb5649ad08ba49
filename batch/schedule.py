"""Run batch jobs on a fixed interval: `lambdalake batch schedule --every 30m`.

Each tick runs every job once. A failed run is logged in one line and changes nothing that
readers see (the last published views stay); the next tick tries again. Ticks are aligned to the
start time, and a run that overruns its interval is followed at once by the next one.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from lambdalake.errors import LambdalakeError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_interval(text: str, option: str = "--every") -> float:
    """Seconds in an interval such as `30m`, `90s`, `1h` or `1.5h`."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
    if not match or float(match[1]) <= 0:
        raise LambdalakeError(f"{option} takes an interval such as 30m, 90s or 1h, got {text!r}")
    return float(match[1]) * _UNITS[match[2]]


@dataclass
class ScheduleLog:
    """What the scheduler did: one entry per run."""

    succeeded: int = 0
    failed: int = 0
    lines: list[str] = field(default_factory=list)


def run_schedule(jobs: Sequence[tuple[str, Callable[[], str], float]], every_s: float,
                 max_ticks: int | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 log: Callable[[str], None] = print, prefix: str = "batch",
                 on_failure: str = "the last published views stay") -> ScheduleLog:
    """Run `jobs` (name, function returning a summary, interval) on ticks `every_s` apart.

    A job runs on the first tick, then on the first tick due at least its interval after the
    last tick it succeeded on (with an interval of `every_s`: every tick; `1d`: once a day); a
    failed run is retried at the next tick. Stops after `max_ticks` ticks, or on SIGTERM/SIGINT
    once the current run has finished. Each run is logged as `<prefix>: <name>: <summary>`;
    a run whose summary is empty (nothing to say) is not logged; a failed one as
    `... run FAILED after 1.2s: <error>; <on_failure>; retrying at the next tick`.
    """
    last_tick: dict[str, float] = {}  # job -> when the tick it last succeeded on was due
    result = ScheduleLog()
    stopping: list[int] = []
    previous = {}
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda signum, _f: stopping.append(signum))
    except ValueError:  # not the main thread: no signal handling
        previous = {}
    start = clock()
    tick = 0
    try:
        while not stopping and (max_ticks is None or tick < max_ticks):
            due_at = start + tick * every_s
            for name, job, job_every_s in jobs:
                if name in last_tick and due_at - last_tick[name] < job_every_s - 1e-6:
                    continue
                began = clock()
                try:
                    summary = job()
                    line = f"{prefix}: {name}: {summary}" if summary else ""
                    result.succeeded += 1
                    last_tick[name] = due_at
                except Exception as exc:  # noqa: BLE001 (any failure: log, keep serving, retry)
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    line = (f"{prefix}: {name}: run FAILED after {clock() - began:.1f}s: "
                            f"{type(exc).__name__}: {first[:300]}; {on_failure}; "
                            "retrying at the next tick")
                    result.failed += 1
                if line:
                    result.lines.append(line)
                    log(line)
            tick += 1
            next_at = start + tick * every_s
            while not stopping and clock() < next_at and (max_ticks is None or tick < max_ticks):
                sleep(min(1.0, next_at - clock()))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return result
