from pyspark.testing import assertDataFrameEqual

from speed.tolls.dedupe import flag_duplicates, outcome

SCHEMA = "transaction_id string, partition int, offset long, rejection_reason string"


def test_landed_and_in_batch_duplicates_are_flagged_once(spark):
    records = spark.createDataFrame([
        ("a", 0, 10, None),
        ("b", 1, 3, None),
        ("b", 0, 11, None),    # same id, lower (partition, offset): this one is kept
        ("c", 1, 4, None),     # landed before
        (None, 1, 5, "malformed JSON: not a valid JSON object"),
        ("d", 0, 12, "missing field plaza_id"),
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
    records = spark.createDataFrame([("c", 0, 1, None), ("e", 0, 2, None), ("e", 0, 3, None)],
                                    SCHEMA)
    landed = spark.createDataFrame([("c",)], "transaction_id string")
    reasons = {(r.transaction_id, r.offset): r.rejection_reason
               for r in records.transform(flag_duplicates(landed)).collect()}
    assert reasons == {
        ("c", 1): "duplicate: transaction_id c was already landed",
        ("e", 2): None,
        ("e", 3): "duplicate: transaction_id e repeats an earlier record of this micro-batch",
    }
