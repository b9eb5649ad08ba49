"""Fault injection for the fault tests: SIGKILL the job at a named point of its work.

Off unless `LAMBDALAKE_FAULT_KILL_AT` names one or more points (comma-separated); then the job
kills its whole process group (itself and its JVM: what `kill -9` of a job's group does) the
first time it reaches one of them, after printing `fault: SIGKILL at <point>`. Points:

- `speed:after-landing-commit`: a micro-batch's landing commit is made, nothing else;
- `speed:after-alerts-stored`: its alerts are in the alerts table, not yet on the topic;
- `speed:after-writes`: every write of the micro-batch is made, Spark has not recorded it;
- `batch:after-view-write`: a batch run has overwritten one view, published nothing;
- `create:<table>`: the creation of `<table>` has begun and its first commit is not yet
  made (a local lake only; the kill comes the moment its first commit's temporary file shows
  up in its `_delta_log`, which is the state a kill during creation leaves behind).

A test hook, documented for operators who want to see the recovery for themselves; a disarmed
point costs one look-up of an environment variable.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from lambdalake.config import local_path

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


@contextmanager
def killed_during_creation(table: str, path: str) -> Iterator[None]:
    """Around the creation of `table` at `path`: if `create:<table>` is armed, SIGKILL the job
    as soon as the table's first commit is being written (its temporary file exists)."""
    point = f"create:{table}"
    folder = local_path(path)
    if not armed(point) or folder is None:
        yield
        return
    log = folder / "_delta_log"
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            try:
                if any(name.endswith(".tmp") for name in os.listdir(log)):
                    kill_now(point)
            except FileNotFoundError:
                time.sleep(0.0005)

    watcher = threading.Thread(target=watch, name="lambdalake-fault", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
        print(f"fault: {point} armed, but the creation finished before the kill", flush=True)
