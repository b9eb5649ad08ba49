import datetime as dt
import json
from decimal import Decimal

import pytest
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from lambdalake.config import ValidationSettings
from lambdalake.generators import stream, tolls
from speed.tolls.validate import toll_rules
from speed.validate import (
    accepted_events,
    quarantined_records,
    validate_records,
    with_rejection_reason,
)

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)
KAFKA_SCHEMA = T.StructType([
    T.StructField("key", T.BinaryType()), T.StructField("value", T.BinaryType()),
    T.StructField("topic", T.StringType()), T.StructField("partition", T.IntegerType()),
    T.StructField("offset", T.LongType()), T.StructField("timestamp", T.TimestampType()),
    T.StructField("ingested_at", T.TimestampType()), T.StructField("ingest_batch_id", T.LongType()),
])
GOOD = {"transaction_id": "t-1", "customer_id": "C00001", "plate": "ABC123", "plaza_id": "P01",
        "lane": 3, "vehicle_class": 2, "amount": 4.25, "currency": "USD",
        "event_time": "2026-11-23T11:58:00.250+00:00"}


def key_of(value: bytes | None) -> bytes | None:
    """The key a well-behaved producer gives `value`: its transaction_id, when it has one."""
    try:
        transaction_id = json.loads(value).get("transaction_id")
    except (TypeError, ValueError, AttributeError):
        return None
    return transaction_id.encode() if isinstance(transaction_id, str) else None


def kafka_rows(spark, *values: bytes | None, keys: list[bytes | None] | None = None):
    """Kafka rows of `values`, keyed by `keys` (default: each value's transaction_id)."""
    keys = [key_of(v) for v in values] if keys is None else keys
    rows = [(k, v, "tolls.events", 0, i, NOW.replace(tzinfo=None), NOW.replace(tzinfo=None), 7)
            for i, (k, v) in enumerate(zip(keys, values, strict=True))]
    return spark.createDataFrame(rows, KAFKA_SCHEMA)


def payload(**changes) -> bytes:
    body = {**GOOD, **changes}
    return json.dumps({k: v for k, v in body.items() if v is not ...},
                      ensure_ascii=False).encode()


DEFAULTS = ValidationSettings()


def reasons(spark, *values, settings=DEFAULTS, plaza_ids=None, keys=None):
    """Each record's rejection reason (None when accepted), checking that acceptance agrees."""
    df = (kafka_rows(spark, *values, keys=keys)
          .transform(validate_records(toll_rules(settings, plaza_ids)))
          .transform(with_rejection_reason(toll_rules(settings, plaza_ids))))
    rows = df.orderBy("offset").collect()
    assert [r.is_accepted for r in rows] == [r.rejection_reason is None for r in rows]
    return [r.rejection_reason for r in rows]


def test_good_events_are_typed_exactly(spark):
    df = kafka_rows(spark, payload(), payload(transaction_id="t-2", amount="12.50",
                                              event_time="2026-11-23T06:58:00-05:00"))
    landed = df.transform(validate_records(toll_rules(ValidationSettings()))).transform(
        accepted_events("tolls_landing"))
    got = landed.select("transaction_id", "lane", "vehicle_class", "amount", "event_time",
                        "kafka_offset", "ingest_batch_id")
    expected = spark.createDataFrame(
        [("t-1", 3, 2, Decimal("4.25"), dt.datetime(2026, 11, 23, 11, 58, 0, 250000), 0, 7),
         ("t-2", 3, 2, Decimal("12.50"), dt.datetime(2026, 11, 23, 11, 58), 1, 7)],
        "transaction_id string, lane int, vehicle_class int, amount decimal(12,2), "
        "event_time timestamp, kafka_offset long, ingest_batch_id long")
    assertDataFrameEqual(got, expected)


@pytest.mark.parametrize("value, reason", [
    (b"{\"transaction_id\": ", "malformed JSON: not a valid JSON object"),
    (b"[1, 2, 3]", "malformed JSON: not a valid JSON object"),
    (b"\xff\xfe" + payload(), "value is not valid UTF-8"),
    (b"", "empty message"),
    (None, "empty message"),
    (payload(plaza_id=...), "missing field plaza_id"),
    (payload(plate=None), "field plate is null"),
    (payload(customer_id=" "), "field customer_id is empty"),
    (payload(plate=1234567), "field plate must be a JSON string"),
    (payload(customer_id={"id": "C1"}), "field customer_id must be a JSON string"),
    (payload(lane="3"), "field lane must be a JSON integer"),
    (payload(vehicle_class=2.5), "field vehicle_class must be a JSON integer"),
    (payload(vehicle_class=9), "vehicle_class must be 1-5, got 9"),
    (payload(amount=-1.5), "amount is negative: -1.5"),
    (payload(amount="4.255"), "amount is not a decimal with at most 2 places: 4.255"),
    (payload(amount="twelve"), "amount is not a decimal with at most 2 places: twelve"),
    (payload(amount=25000), "amount is above the limit 1000.00: 25000"),
    (payload().replace(b"4.25", b"9" * 60), "amount is above the limit 1000.00: 9999"),
    (payload().replace(b"4.25", b"-" + b"9" * 60), "amount is negative: -9999"),
    (payload().replace(b"4.25", b"1e400"), "amount is not a decimal with at most 2 places"),
    (payload().replace(b"4.25", b"NaN"), "malformed JSON"),  # not JSON numbers
    (payload().replace(b'"lane": 3', b'"lane": -Infinity'), "malformed JSON"),
    (payload().replace(b'"lane": 3', b'"lane": ' + b"9" * 40), "lane must be a JSON integer"),
    (payload(plate="X" * 17), "field plate is too long: 17 characters (limit 16)"),
    (payload(transaction_id="T" * 200), "field transaction_id is too long: 200 characters"),
    (payload(currency="EUR"), "unsupported currency: EUR"),
    (payload(event_time="2026-11-23T11:58:00"), "event_time is not ISO-8601 with an offset"),
    (payload(event_time="2026-11-23T14:00:00Z"), "event_time is in the future"),
    (payload(event_time="2020-01-01T00:00:00Z"), "event_time is over 400 days old"),
    (payload(colour="red"), "unexpected field(s): colour"),
    (b'{"transaction_id": "a", "transaction_id": "b"}', "duplicate field name(s)"),
])
def test_bad_records_get_a_clear_reason(spark, value, reason):
    (got,) = reasons(spark, value)
    assert got is not None and reason in got


def test_every_reason_of_a_record_is_listed(spark):
    (got,) = reasons(spark, payload(plaza_id=..., vehicle_class=0, currency="EUR"))
    assert got == ("missing field plaza_id; vehicle_class must be 1-5, got 0; "
                   "unsupported currency: EUR")


def test_oversized_messages_are_rejected(spark):
    settings = ValidationSettings(max_message_bytes=100)
    (got,) = reasons(spark, payload(plate="X" * 200), settings=settings)
    assert got.startswith("oversized message:") and "(limit 100)" in got


def test_split_keeps_every_record(spark):
    df = kafka_rows(spark, payload(), b"nope", payload(transaction_id="t-3"), None)
    validated = df.transform(validate_records(toll_rules(ValidationSettings())))
    landed = validated.transform(accepted_events("tolls_landing"))
    quarantined = validated.transform(quarantined_records(toll_rules(ValidationSettings())))
    assert landed.count() + quarantined.count() == 4
    bad = {r.kafka_offset: (r.raw_value, r.reason) for r in quarantined.collect()}
    assert bad[1] == (bytearray(b"nope"), "malformed JSON: not a valid JSON object")
    assert bad[3] == (None, "empty message")


def test_a_real_replacement_character_is_accepted(spark):
    # decode() marks invalid UTF-8 with U+FFFD; a genuine U+FFFD in the text is valid UTF-8
    assert reasons(spark, payload(plate="AB\ufffd12")) == [None]


def test_acceptance_is_exactly_no_reason_found(spark):
    # the cheap checks decide; the reasons are worked out later, for rejected records only:
    # the two must agree on every record
    start = NOW - dt.timedelta(hours=1)
    generated = [r.value for r in tolls.toll_records(tolls.TollsOptions(count=300, seed=5,
            start=start, faults=stream.Faults(malformed_fraction=0.3, late_fraction=0.2)))]
    values = [payload(), payload(amount="12.50"), payload(plate="X\ufffd"), payload(lane=-1),
              payload(amount=0), payload(amount="1000.00"), payload(amount="1000.01"),
              payload(extra=None), b"{}", b"null", b'"text"', b"\xed\xa0\x80",
              payload(plate="\U0001F697"), *generated]
    got = reasons(spark, *values)  # asserts the agreement
    assert got[:4] == [None, None, None, "lane must be 0-10000, got -1"]
    assert sum(r is None for r in got) > 150


def test_keys_the_text_cannot_tell_are_listed(spark):
    # a common record's keys are told from its text (`":` once per field); these are records
    # where that count would mislead, so the keys must be listed (and acceptance still agree)
    extra = payload(extra=1)
    got = reasons(spark,
                  extra.replace(b'"lane"', b"'lane'"),  # a single-quoted key is not counted
                  extra.replace(b'"lane":', b'"lane" :'),  # nor one spaced from its colon
                  extra.replace(b'"lane":', b'"lane"\t:'),
                  extra.replace(b'"lane":', b'"lane"\r\n:'),
                  payload().replace(b'"lane"', b'"LANE"').replace(b"}", b', "lane": 3}'),
                  payload().replace(b"}", b', "lane": 3}'),  # a repeated key
                  payload(plate=":AB1"),  # counted twice: listed, and good
                  payload(plate="AB'1"),
                  payload().replace(b'"lane"', b'"LANE"'),  # the typed parse is case-sensitive
                  keys=[b"t-1"] * 9)
    assert got[0] == "field name(s) written with escapes: lane"  # not plain text, at least
    assert got[1:4] == ["unexpected field(s): extra"] * 3
    assert got[4] == "unexpected field(s): LANE"
    assert got[5] == "duplicate field name(s)"
    assert got[6:8] == [None, None]
    assert got[8] == "unexpected field(s): LANE; missing field lane"


def test_field_names_must_be_written_without_escapes(spark):
    # the checks that tell a JSON string from a number find a field by its name's text, so a
    # name written with escapes (valid JSON) is rejected for that alone, whatever its value
    escaped = {"lane": b'"l\\u0061ne"', "plate": b'"pl\\u0061te"'}
    got = reasons(spark,
                  payload().replace(b'"lane": 3', escaped["lane"] + b': "3"'),
                  payload().replace(b'"lane"', escaped["lane"]),
                  payload(plate="1234").replace(b'"plate"', escaped["plate"]),
                  payload().replace(b'"plate"', escaped["plate"]).replace(b'"lane"',
                                                                          escaped["lane"]),
                  # escapes in values, and a value that reads like a key, are fine
                  payload(plate="AB\\u0043"), payload().replace(b'"ABC123"', b'"AB\\u0043123"'),
                  payload(plate='x"lane": "3'), payload(plate="ABC123\n"))
    assert got[:4] == ["field name(s) written with escapes: lane"] * 2 + [
        "field name(s) written with escapes: plate",
        "field name(s) written with escapes: plate, lane"]
    assert got[4:] == [None] * 4


def test_the_record_key_must_be_the_transaction_id(spark):
    got = reasons(spark, payload(), payload(), payload(), keys=[b"t-1", None, b"t-2"])
    assert got == [None, "record key is null (it must be the transaction_id)",
                   "record key is not the transaction_id"]
    relaxed = ValidationSettings(key_is_transaction_id=False)
    assert reasons(spark, payload(), payload(), keys=[None, b"x"], settings=relaxed) == [None,
                                                                                         None]


def test_plazas_are_checked_against_the_reference_when_there_is_one(spark):
    values = (payload(), payload(plaza_id="P99"))
    assert reasons(spark, *values) == [None, None]  # no plaza reference: every plaza known
    assert reasons(spark, *values, plaza_ids=frozenset({"P01", "P02"})) == [
        None, "unknown plaza_id: P99"]
    assert reasons(spark, *values, plaza_ids=frozenset()) == [
        "unknown plaza_id: P01", "unknown plaza_id: P99"]
