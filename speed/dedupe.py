"""Duplicate events (producer retries): pure DataFrame -> DataFrame functions.

An accepted record is a duplicate when its id (the event's key column: a toll's
`transaction_id`, a page view's `event_id`) is already in the landing zone, or repeats an earlier
record (by Kafka partition, offset) of the same micro-batch. A duplicate is no longer accepted and
gets a `duplicate_reason` starting with `duplicate:`, so it is counted and kept in quarantine,
never landed, and so never counted twice in any view or alert.

Pure functions: DataFrame -> DataFrame, and on Arrow tables for a micro-batch the streaming job
already holds in its driver (`duplicates_in_driver`, `without_duplicates`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from speed.landed_ids import HASH_COLUMNS

DUPLICATE_PREFIX = "duplicate:"
# how a duplicate's reason ends: `duplicate: <id column> <id> <one of these>`
WAS_LANDED = "was already landed"
REPEATS = "repeats an earlier record of this micro-batch"


DUPLICATES_SCHEMA = "partition int, offset long, duplicate_reason string"


def duplicate_records(landed_ids: DataFrame, id_column: str = "transaction_id"
                      ) -> Callable[[DataFrame], DataFrame]:
    """Return a transformation listing the duplicates among validated records: one row per
    duplicate record, `partition, offset, duplicate_reason` (`DUPLICATES_SCHEMA`).

    `landed_ids` has an `id_column` column: the ids landed before this micro-batch. A record
    whose id was landed is a duplicate; of the records of one micro-batch sharing an id, all but
    the first (by Kafka partition, offset) are. Only narrow (id, position) rows are shuffled, and
    the result is small: it is meant to be collected and applied with `mark_duplicates`.
    """

    def transform(records: DataFrame) -> DataFrame:
        position = F.struct("partition", "offset")
        keys = records.where(F.col("is_accepted")).select(id_column, position.alias("position"))
        landed = (landed_ids.join(F.broadcast(keys.select(id_column)), id_column, "left_semi")
                  .select(id_column, F.lit(None).cast(keys.schema["position"].dataType)
                          .alias("position")))  # a null position: "landed before"
        groups = (keys.unionByName(landed).groupBy(id_column)
                  .agg(F.array_sort(F.collect_list("position")).alias("positions"),
                       F.max(F.col("position").isNull()).alias("was_landed")))
        positions, was_landed = F.col("positions"), F.col("was_landed")
        tid = F.col(id_column)
        reason = F.concat(F.lit(f"{DUPLICATE_PREFIX} {id_column} "), tid, F.lit(" "),
                          F.when(was_landed, F.lit(WAS_LANDED)).otherwise(F.lit(REPEATS)))
        duplicates = F.when(was_landed, positions).otherwise(
            F.slice(positions, 2, F.size(positions)))
        return (groups.where(was_landed | (F.size(positions) > 1))
                .select(F.explode(duplicates).alias("p"), reason.alias("duplicate_reason"))
                .select("p.partition", "p.offset", "duplicate_reason"))

    return transform


def duplicates_in_driver(accepted: pa.Table, was_landed: np.ndarray, landed: pa.Table,
                         id_column: str) -> list[dict]:
    """What `duplicate_records` finds, for a micro-batch the driver holds: rows in
    `DUPLICATES_SCHEMA`, as dicts. `accepted` has the accepted records' Kafka `partition`,
    `offset` and id hashes (`HASH_COLUMNS`), `was_landed` beside them whether the landed-id index
    holds each id, `landed` the same records in a landing table's columns (`kafka_partition`,
    `kafka_offset`, `id_column`), for the ids the reasons name. Records with equal id hashes are
    taken for records with equal ids, as the landed-id index takes them."""
    partition = accepted.column("partition").to_numpy()
    offset = accepted.column("offset").to_numpy()
    h1, h2 = (accepted.column(c).to_numpy() for c in HASH_COLUMNS)
    # by id, then Kafka position: all records of a landed id are duplicates, and of the others
    # all but the first of each id
    order = np.lexsort((offset, partition, h2, h1))
    s1, s2 = h1[order], h2[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (s1[1:] != s1[:-1]) | (s2[1:] != s2[:-1])
    found = np.sort(order[was_landed[order] | ~first])
    # the row of `landed` holding each accepted record, matched by Kafka position
    landed_partition = landed.column("kafka_partition").to_numpy()
    landed_offset = landed.column("kafka_offset").to_numpy()
    by_position = np.lexsort((offset, partition))
    landed_by_position = np.lexsort((landed_offset, landed_partition))
    if not (np.array_equal(partition[by_position], landed_partition[landed_by_position])
            and np.array_equal(offset[by_position], landed_offset[landed_by_position])):
        raise ValueError("the landed rows are not the micro-batch's accepted records")
    row = np.empty(len(order), dtype=np.int64)
    row[by_position] = landed_by_position
    ids = landed.column(id_column).take(pa.array(row[found])).to_pylist()
    return [{"partition": p, "offset": o, "duplicate_reason":
             f"{DUPLICATE_PREFIX} {id_column} {i} {WAS_LANDED if w else REPEATS}"}
            for p, o, i, w in zip(partition[found].tolist(), offset[found].tolist(), ids,
                                  was_landed[found].tolist(), strict=True)]


def mark_duplicates(duplicates: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """Return a transformation marking validated records listed in `duplicates`
    (`DUPLICATES_SCHEMA`, a few rows): no longer accepted, with their `duplicate_reason`."""

    def transform(records: DataFrame) -> DataFrame:
        return (records.join(F.broadcast(duplicates), ["partition", "offset"], "left")
                .withColumn("is_accepted",
                            F.col("is_accepted") & F.col("duplicate_reason").isNull())
                .select(*records.columns, "duplicate_reason"))

    return transform


def are_duplicates(partition: np.ndarray, offset: np.ndarray,
                   duplicates: Sequence[Mapping]) -> np.ndarray:
    """Which of the records at Kafka `partition`, `offset` (arrays of one length) are among
    `duplicates` (`DUPLICATES_SCHEMA` rows), as a boolean array."""
    offsets: dict[int, list[int]] = defaultdict(list)
    for row in duplicates:
        offsets[row["partition"]].append(row["offset"])
    found = np.zeros(len(partition), dtype=bool)
    for number, listed in offsets.items():
        found |= (partition == number) & np.isin(offset, np.array(listed, dtype=np.int64))
    return found


def without_duplicates(landed: pa.Table, duplicates: Sequence[Mapping]) -> pa.Table:
    """The rows of `landed` (accepted events in a landing table's columns, as Arrow) that are
    not among `duplicates` (`DUPLICATES_SCHEMA` rows: Kafka `partition`, `offset`): what
    `mark_duplicates` then `accepted_events` give, for rows already in the driver."""
    return landed.filter(pa.array(~are_duplicates(landed.column("kafka_partition").to_numpy(),
                                                  landed.column("kafka_offset").to_numpy(),
                                                  duplicates)))
