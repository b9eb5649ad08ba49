"""Fault injection for the fault tests: SIGKILL the job at a named point of its work.

Off unless `LAMBDALAKE_FAULT_KILL_AT` names one or more points (comma-separated); then the job
kills its whole process group (itself and its JVM: what `kill -9` of a job's group does) the
first time it reaches one of them, after printing `fault: SIGKILL at <point>`. Points:

- `speed:after-landing-commit`: a micro-batch's landing commit is made, nothing else;
- `speed:after-alerts-stored`: its alerts are in the alerts table, not yet on the topic;
- `speed:after-writes`: every write of the micro-batch is made, Spark has not recorded it;
- `batch:after-view-write`: a batch run has overwritten one view, published nothing;
- `create:<table>`: the creation of `<table>` has begun and its first commit is not yet
  made (a local lake only: its `_delta_log` folder is made, then the kill; the state a kill
  during creation leaves behind).

A test hook, documented for operators who want to see the recovery for themselves; a disarmed
point costs one look-up of an environment variable.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

ENV = "LAMBDALAKE_FAULT_KILL_AT"


def armed(point: str) -> bool:
    """Whether `point` is one of the points named in `LAMBDALAKE_FAULT_KILL_AT`."""
    return point in {p.strip() for p in os.environ.get(ENV, "").split(",")}


def kill_now(point: str) -> None:
    """Print the fault line and SIGKILL this process's group when it leads one (a job started
    as its own group: the JVM dies with it), else this process alone (its JVM then exits when
    its parent's pipe closes)."""
    print(f"fault: SIGKILL at {point}", flush=True)
    if os.getpgrp() == os.getpid():
        os.killpg(os.getpgrp(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def kill_point(point: str) -> None:
    """SIGKILL the job here if `point` is armed."""
    if armed(point):
        kill_now(point)


def killed_during_creation(table: str, log: Path) -> None:
    """Before table `table` is created at the folder whose Delta log is `log`: if
    `create:<table>` is armed, make that log folder, as the writer's first step does, and SIGKILL
    the job before any commit, leaving the table half created. (delta-rs writes its first
    commit and renames it into place within a millisecond, holding Python's lock: too quick to
    catch in the act, as a watcher thread once caught Spark's writer.)"""
    point = f"create:{table}"
    if armed(point):
        log.mkdir(parents=True, exist_ok=True)
        kill_now(point)
