"""Shared fixtures: settings in a temporary folder, one SparkSession, one real Kafka broker."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lambdalake import broker
from lambdalake.config import Settings, load_settings


@pytest.fixture(scope="session")
def base_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings isolated from the user's: temporary lake, checkpoints, state and free ports."""
    root = tmp_path_factory.mktemp("lambdalake")
    env = {k: v for k, v in os.environ.items() if k == "LAMBDALAKE_JVM_CACHE_DIR"}
    env.update({
        "LAMBDALAKE_LAKE_ROOT": str(root / "lake"),
        "LAMBDALAKE_CHECKPOINT_ROOT": str(root / "checkpoints"),
        "LAMBDALAKE_STATE_DIR": str(root / "state"),
        "LAMBDALAKE_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{broker.free_port()}",
        "LAMBDALAKE_KAFKA_LOCAL_CONTROLLER_PORT": str(broker.free_port()),
        "LAMBDALAKE_SPARK_SHUFFLE_PARTITIONS": "2",
        "LAMBDALAKE_SPARK_DRIVER_MEMORY": "2g",
    })
    return load_settings(env)


@pytest.fixture(scope="session", autouse=True)
def spark_local_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Spark's scratch folders (each driver's copy of the jars, its block files) in the run's
    temporary folder, for this process and the jobs it starts: a job a fault test kills cannot
    remove its own, and they piled up in /tmp at 13 MB a killed job."""
    folder = tmp_path_factory.mktemp("spark-local")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPARK_LOCAL_DIRS", str(folder))
        yield folder


@pytest.fixture(scope="session")
def spark(base_settings: Settings):
    """The one SparkSession of the test run (local[2], UI off, few shuffle partitions)."""
    from lambdalake.spark import create_spark_session

    session = create_spark_session(base_settings, "lambdalake-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def kafka_broker(base_settings: Settings) -> Iterator[Settings]:
    """A real single-node Kafka broker (KRaft) for the whole run, stopped at the end."""
    broker.start(base_settings)
    try:
        yield base_settings
    finally:
        broker.stop(base_settings)


@pytest.fixture
def settings(base_settings: Settings, tmp_path: Path) -> Settings:
    """Per-test lake, checkpoints and topic, so tests do not see each other's data."""
    return base_settings.replace(
        lake={"root": str(tmp_path / "lake")},
        checkpoint={"root": str(tmp_path / "checkpoints")},
        topics={"tolls_events": f"tolls.events.{uuid.uuid4().hex[:8]}",
                "clicks_events": f"clicks.events.{uuid.uuid4().hex[:8]}"},
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked `long(minutes)` first, longest first: `make test` runs `pytest -n 2
    --dist load`, which deals the first tests to the two workers in turn, so the longest starts
    at once on one worker and the next on the other, instead of last on one while the other
    idles."""

    def minutes(item: pytest.Item) -> float:
        marker = item.get_closest_marker("long")
        return 0 if marker is None else marker.kwargs["minutes"]

    items.sort(key=minutes, reverse=True)
