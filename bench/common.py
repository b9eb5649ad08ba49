"""Shared set-up of the benchmarks: a private lake and a private local Kafka broker."""

from __future__ import annotations

import contextlib
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from lambdalake import broker
from lambdalake.config import Settings, load_settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def bench_environment(keep: bool = False, kafka: bool = True) -> Iterator[Settings]:
    """Settings on a temporary lake with (by default) a freshly started broker, stopped after."""
    root = Path(tempfile.mkdtemp(prefix="lambdalake-bench-"))
    settings = load_settings().replace(
        lake={"root": str(root / "lake")}, checkpoint={"root": str(root / "checkpoints")},
        state={"dir": str(root / "state")},
        kafka={"bootstrap_servers": f"127.0.0.1:{_free_port()}",
               "local_controller_port": _free_port()},
        topics={"tolls_events": "bench.tolls.events"})
    if kafka:
        broker.start(settings, heap="1g")
    try:
        yield settings
    finally:
        if kafka:
            broker.stop(settings)
        if not keep:
            import shutil

            shutil.rmtree(root, ignore_errors=True)
