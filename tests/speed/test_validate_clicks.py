"""The spec-driven validation on the clicks domain's events (`schemas/clicks_event.json`):
optional fields, allowed values and its own record key, with no code of its own."""

import datetime as dt
import json

import pytest
from pyspark.sql import functions as F

from lambdalake.config import ValidationSettings
from lambdalake.generators import clicks, stream
from speed.validate import EventRules, validate_records, with_rejection_reason
from tests.speed.test_validate import NOW, kafka_rows

GOOD = {"event_id": "e-1", "session_id": "S000001", "user_id": None, "article_id": "A00001",
        "referrer": "t.co", "device": "mobile", "event_time": "2026-11-23T11:58:00.250Z"}
RULES = EventRules("clicks_event", ValidationSettings())


def view(**changes) -> bytes:
    body = {**GOOD, **changes}
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


def outcome(spark, *values: bytes, keys=None):
    """Each record's rejection reason (None when accepted), checking acceptance agrees."""
    keys = [json.loads(v).get("event_id", "").encode() for v in values] if keys is None else keys
    rows = (kafka_rows(spark, *values, keys=keys).transform(validate_records(RULES))
            .transform(with_rejection_reason(RULES)).orderBy("offset").collect())
    assert [r.is_accepted for r in rows] == [r.rejection_reason is None for r in rows]
    return [r.rejection_reason for r in rows]


def test_optional_fields_may_be_null_but_must_be_there(spark):
    got = outcome(spark, view(), view(user_id="U000001", referrer=None), view(user_id=...),
                  view(referrer=""), view(session_id=None), view(user_id=..., scroll_depth=1))
    assert got == [None, None, "missing field user_id", "field referrer is empty",
                   "field session_id is null",
                   "unexpected field(s): scroll_depth; missing field user_id"]


def test_an_optional_key_is_one_of_the_object_s_own(spark):
    # an optional field read as null is taken as there from its key's text only when that text
    # is the object's own: not after the object (which the parse ignores), not nested
    after = view(user_id=...) + b' "user_id": null}'
    got = outcome(spark, after, view(referrer=None, user_id=None), view(referrer="a}b"),
                  view(user_id=..., referrer=...) + b'"user_id": null, "referrer": null}',
                  keys=[b"e-1"] * 4)
    assert got == ["missing field user_id", None, None,
                   "missing field user_id; missing field referrer"]


@pytest.mark.parametrize(("value", "reason"), [
    (view(device="tv"), "unsupported device: tv"),
    (view(article_id="A" * 65), "field article_id is too long: 65 characters (limit 64)"),
    (view(event_time="yesterday"), "event_time is not ISO-8601 with an offset: yesterday"),
    (view(scroll_depth=0.5), "unexpected field(s): scroll_depth"),
])
def test_bad_page_views_get_a_clear_reason(spark, value, reason):
    assert outcome(spark, value) == [reason]


def test_text_fields_must_be_json_strings(spark):
    # the parse reads any JSON value into a text field as its text; only a string is one
    got = outcome(spark, view(referrer=5), view(referrer=-1.5), view(referrer=True),
                  view(referrer={"host": "t.co"}), view(referrer=["t.co"]), view(device=1),
                  view(referrer="5"), view(referrer="true"), view(referrer="[t.co]"),
                  view(referrer='"NaN"'), view(user_id="-1"),
                  b'{"event_id": "e-1", "session_id": "S1", "user_id": null, "article_id": "A1",'
                  b' "referrer": NaN, "device": "mobile", "event_time": "2026-11-23T11:58:00Z"}')
    must = "field referrer must be a JSON string"
    assert got == [must, must, must, must, must,
                   "field device must be a JSON string; unsupported device: 1",
                   None, None, None, None, None, "malformed JSON: not a valid JSON object"]


def test_the_record_key_must_be_the_event_id(spark):
    got = outcome(spark, view(), view(), keys=[b"e-1", b"other"])
    assert got == [None, "record key is not the event_id"]


def test_generated_page_views_are_accepted_and_malformed_ones_quarantined(spark):
    start = NOW - dt.timedelta(hours=1)
    options = clicks.ClicksOptions(count=300, seed=4, start=start, faults=stream.Faults(
        malformed_fraction=0.1, late_fraction=0.1, out_of_order_fraction=0.1))
    records = list(clicks.click_records(options))
    df = kafka_rows(spark, *[r.value for r in records], keys=[r.key for r in records])
    validated = (df.withColumn("ingested_at", F.lit(NOW).cast("timestamp"))
                 .transform(validate_records(RULES)).orderBy("offset"))
    assert [r.is_accepted for r in validated.collect()] == [r.kind == "event" for r in records]
    assert sum(r.kind != "event" for r in records) > 10
