import numpy as np
import pyarrow as pa
import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from speed.dedupe import (
    duplicate_records,
    duplicates_in_driver,
    mark_duplicates,
    without_duplicates,
)
from speed.landed_ids import collect_arrow, id_hashes

SCHEMA = "transaction_id string, partition int, offset long, is_accepted boolean"


def flag_duplicates(landed_ids):
    """`duplicate_records` then `mark_duplicates` in one plan (the streaming job collects the
    duplicates in between)."""
    return lambda records: records.transform(mark_duplicates(
        records.transform(duplicate_records(landed_ids))))


def outcome(df):
    return df.withColumn("outcome", F.when(F.col("is_accepted"), "landed")
                         .when(F.col("duplicate_reason").isNotNull(), "duplicate")
                         .otherwise("quarantined"))


def test_landed_and_in_batch_duplicates_are_flagged_once(spark):
    records = spark.createDataFrame([
        ("a", 0, 10, True),
        ("b", 1, 3, True),
        ("b", 0, 11, True),    # same id, lower (partition, offset): this one is kept
        ("c", 1, 4, True),     # landed before
        (None, 1, 5, False),   # rejected by validation
        ("d", 0, 12, False),
    ], SCHEMA)
    landed = spark.createDataFrame([("c",), ("z",)], "transaction_id string")
    got = records.transform(flag_duplicates(landed)).transform(outcome).select(
        "transaction_id", "partition", "offset", "outcome")
    expected = spark.createDataFrame([
        ("a", 0, 10, "landed"),
        ("b", 0, 11, "landed"),
        ("b", 1, 3, "duplicate"),
        ("c", 1, 4, "duplicate"),
        (None, 1, 5, "quarantined"),
        ("d", 0, 12, "quarantined"),
    ], "transaction_id string, partition int, offset long, outcome string")
    assertDataFrameEqual(got, expected)


def test_duplicate_reasons_say_why(spark):
    records = spark.createDataFrame([("c", 0, 1, True), ("e", 0, 2, True), ("e", 0, 3, True),
                                     ("c", 0, 4, False)], SCHEMA)
    landed = spark.createDataFrame([("c",)], "transaction_id string")
    flagged = {(r.transaction_id, r.offset): (r.is_accepted, r.duplicate_reason)
               for r in records.transform(flag_duplicates(landed)).collect()}
    assert flagged == {
        ("c", 1): (False, "duplicate: transaction_id c was already landed"),
        ("e", 2): (True, None),
        ("e", 3): (False, "duplicate: transaction_id e repeats an earlier record of this "
                          "micro-batch"),
        ("c", 4): (False, None),  # rejected by validation: not a duplicate, whatever its id
    }


def test_landed_rows_in_the_driver_lose_exactly_the_duplicates_listed():
    landed = pa.table({"transaction_id": ["a", "b", "b", "c", "e"],
                       "kafka_partition": pa.array([0, 1, 0, 1, 1], pa.int32()),
                       "kafka_offset": pa.array([10, 3, 11, 4, 10], pa.int64())})
    duplicates = [{"partition": 1, "offset": 3, "duplicate_reason": "repeats"},
                  {"partition": 1, "offset": 10, "duplicate_reason": "was already landed"},
                  {"partition": 0, "offset": 99, "duplicate_reason": "not among these rows"}]
    kept = without_duplicates(landed, duplicates)
    # offset 10 is in both partitions, a duplicate in partition 1 only
    assert kept.to_pylist() == [{"transaction_id": "a", "kafka_partition": 0, "kafka_offset": 10},
                                {"transaction_id": "b", "kafka_partition": 0, "kafka_offset": 11},
                                {"transaction_id": "c", "kafka_partition": 1, "kafka_offset": 4}]
    assert without_duplicates(landed, []).equals(landed)
    assert kept.schema == landed.schema


def in_driver(records, landed_ids: list[str], shuffle: bool = True):
    """`duplicates_in_driver` on what the streaming job holds for `records`: the accepted
    records' positions and id hashes, whether each id was landed, and the landed rows (in
    another order)."""
    accepted = collect_arrow(records.where("is_accepted").select(
        "partition", "offset", "transaction_id", *id_hashes("transaction_id")))
    was_landed = np.isin(accepted.column("transaction_id").to_numpy(zero_copy_only=False),
                         landed_ids)
    rows = pa.table({"transaction_id": accepted.column("transaction_id"),
                     "kafka_partition": accepted.column("partition"),
                     "kafka_offset": accepted.column("offset")})
    if shuffle:
        rows = rows.take(pa.array(np.random.default_rng(7).permutation(rows.num_rows)))
    return duplicates_in_driver(accepted, was_landed, rows, "transaction_id")


def test_the_driver_finds_what_duplicate_records_finds(spark):
    records = spark.createDataFrame([
        ("a", 0, 10, True), ("b", 1, 3, True), ("b", 0, 11, True), ("c", 1, 4, True),
        ("c", 0, 2, True),      # landed before, and twice in the batch
        ("e", 1, 9, True), ("e", 1, 7, True), ("e", 0, 30, True),  # three, first at (0, 30)
        (None, 1, 5, False), ("b", 0, 1, False),  # rejected: never duplicates nor firsts
        ("f", 0, 12, True),     # landed before, once in the batch
    ], SCHEMA)
    landed = ["c", "f", "z"]
    expected = {(r.partition, r.offset, r.duplicate_reason) for r in records.transform(
        duplicate_records(spark.createDataFrame([(i,) for i in landed], "transaction_id string"))
    ).collect()}
    got = in_driver(records, landed)
    assert len(got) == len(expected) == 6
    assert {(d["partition"], d["offset"], d["duplicate_reason"]) for d in got} == expected
    # a rejected record shares b's id: no duplicate
    assert in_driver(records.where("transaction_id = 'a' or offset in (1, 3)"), []) == []


def test_the_driver_refuses_landed_rows_of_other_records(spark):
    records = spark.createDataFrame([("a", 0, 10, True), ("a", 0, 11, True)], SCHEMA)
    accepted = collect_arrow(records.select("partition", "offset", *id_hashes("transaction_id")))
    other = pa.table({"transaction_id": ["a", "a"], "kafka_partition": pa.array([0, 0], pa.int32()),
                      "kafka_offset": pa.array([10, 12], pa.int64())})
    with pytest.raises(ValueError, match="not the micro-batch's accepted records"):
        duplicates_in_driver(accepted, np.zeros(2, dtype=bool), other, "transaction_id")


def test_the_driver_tells_ids_apart_by_both_hashes():
    accepted = pa.table({"partition": pa.array([0, 0, 0], pa.int32()),
                         "offset": pa.array([1, 2, 3], pa.int64()),
                         "id_hash_1": pa.array([5, 5, 5], pa.int64()),
                         "id_hash_2": pa.array([1, 2, 1], pa.int64())})
    rows = pa.table({"transaction_id": ["x", "y", "x"],
                     "kafka_partition": pa.array([0, 0, 0], pa.int32()),
                     "kafka_offset": pa.array([1, 2, 3], pa.int64())})
    # x and y share a first hash only: y is not a repeat of x
    assert duplicates_in_driver(accepted, np.zeros(3, dtype=bool), rows, "transaction_id") == [
        {"partition": 0, "offset": 3, "duplicate_reason":
         "duplicate: transaction_id x repeats an earlier record of this micro-batch"}]
