"""Duplicate toll events (producer retries): pure DataFrame -> DataFrame functions.

An accepted record is a duplicate when its `transaction_id` is already in the landing zone, or
repeats an earlier record (by Kafka partition, offset) of the same micro-batch. A duplicate gets a
`rejection_reason` starting with `duplicate:`, so it is counted and kept in quarantine, never
landed, and so never counted twice in any view or alert.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

DUPLICATE_PREFIX = "duplicate:"


def flag_duplicates(landed_ids: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """Return a transformation marking duplicates among validated records.

    `landed_ids` has a `transaction_id` column: the ids landed before this micro-batch. Only
    narrow (id, partition, offset) rows are shuffled; the few duplicates found are broadcast back.
    """

    def transform(records: DataFrame) -> DataFrame:
        accepted = F.col("rejection_reason").isNull()
        keys = records.where(accepted).select("transaction_id", "partition", "offset")
        position = F.struct("partition", "offset")
        repeated = (keys.groupBy("transaction_id")
                    .agg(F.count(F.lit(1)).alias("_n"), F.min(position).alias("_first"))
                    .where(F.col("_n") > 1).drop("_n"))
        landed_before = (landed_ids.select("transaction_id")
                         .join(F.broadcast(keys.select("transaction_id")), "transaction_id",
                               "left_semi")
                         .distinct().withColumn("_landed_before", F.lit(True)))
        flags = repeated.join(landed_before, "transaction_id", "full")
        tid = F.col("transaction_id")
        reason = F.coalesce(
            F.col("rejection_reason"),
            F.when(F.col("_landed_before"),
                   F.concat(F.lit(f"{DUPLICATE_PREFIX} transaction_id "), tid,
                            F.lit(" was already landed"))),
            F.when(F.col("_first").isNotNull() & (position != F.col("_first")),
                   F.concat(F.lit(f"{DUPLICATE_PREFIX} transaction_id "), tid,
                            F.lit(" repeats an earlier record of this micro-batch"))),
        )
        return (records.join(F.broadcast(flags), "transaction_id", "left")
                .withColumn("rejection_reason", reason)
                .select(*records.columns))

    return transform


def outcome(df: DataFrame) -> DataFrame:
    """Add `outcome`: landed, duplicate or quarantined (from `rejection_reason`)."""
    reason = F.col("rejection_reason")
    return df.withColumn("outcome", F.when(reason.isNull(), "landed")
                         .when(reason.startswith(DUPLICATE_PREFIX), "duplicate")
                         .otherwise("quarantined"))
