import pyarrow as pa
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from speed.dedupe import duplicate_records, mark_duplicates, without_duplicates

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
