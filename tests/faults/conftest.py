"""Fixtures of the fault tests: a broker of the test's own, which the test may stop and start
without disturbing the other tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lambdalake import broker
from lambdalake.config import Settings


@pytest.fixture
def own_broker(settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    """Settings with a broker of this test's own (stopped and started by the test), an alerts
    topic of the test's own and a 1-second trigger."""
    mine = settings.replace(
        kafka={"bootstrap_servers": f"127.0.0.1:{broker.free_port()}",
               "local_controller_port": broker.free_port(), "outage_timeout_s": 120},
        state={"dir": str(tmp_path / "state")},
        topics={"tolls_alerts": f"{settings.topics.tolls_events}.alerts"},
        spark={"trigger_interval": "1 second"})
    broker.start(mine)
    try:
        yield mine
    finally:
        broker.stop(mine)
