"""Records that Kafka's retention deleted before the streaming job read them (issue 9).

A gap is found by comparing where the job's checkpoint says a micro-batch starts in each
partition with the earliest offset Kafka still holds there. With `kafka.fail_on_data_loss`
(the default) the job stops with one line naming the topic, partitions and gap; with it off,
Spark reads on from the earliest offset and the job records each gap in
`quarantine.tolls_kafka_gaps`, which `lambdalake status` shows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Gap:
    """Offsets [from_offset, to_offset) of a partition that no micro-batch read."""

    topic: str
    partition: int
    from_offset: int
    to_offset: int

    @property
    def count(self) -> int:
        """Records in the gap."""
        return self.to_offset - self.from_offset


def parse_offsets(text: str) -> dict[str, dict[int, int]]:
    """The Kafka offsets in a file of a streaming checkpoint's `offsets/` folder: its third
    line (after the version and the batch's metadata), `{topic: {partition: next offset}}`."""
    lines = text.splitlines()
    if len(lines) < 3:
        raise ValueError("not a Kafka source's offsets file")
    return {topic: {int(p): int(o) for p, o in parts.items()}
            for topic, parts in json.loads(lines[2]).items()}


def find_gaps(topic: str, start: dict[int, int], earliest: dict[int, int],
              first_read: dict[int, int] | None = None) -> list[Gap]:
    """The gaps of `topic`: in each partition, from where reading was to start (`start`) up to
    the earliest offset Kafka still holds, or the first offset actually read when that comes
    first (`first_read`: what a micro-batch read)."""
    gaps = []
    for partition, begin in sorted(start.items()):
        kept = earliest.get(partition)
        if kept is None or kept <= begin:
            continue
        end = min(kept, (first_read or {}).get(partition, kept))
        if end > begin:
            gaps.append(Gap(topic, partition, begin, end))
    return gaps


def describe(gaps: list[Gap]) -> str:
    """`tolls.events partition 0: offsets 100-214 (115 records), ...`."""
    return ", ".join(f"{g.topic} partition {g.partition}: offsets {g.from_offset}-"
                     f"{g.to_offset - 1} ({g.count:,} records)" for g in gaps)
