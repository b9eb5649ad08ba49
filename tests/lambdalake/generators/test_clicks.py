import datetime as dt
import json
from collections import Counter

import schemas
from lambdalake.generators import clicks, stream

START = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
SPEC = schemas.load("clicks_event")


def _options(count, **faults):
    return clicks.ClicksOptions(count=count, seed=4, start=START, span=dt.timedelta(hours=4),
                                articles=100, faults=stream.Faults(**faults))


def test_events_are_the_specs_wire_format_keyed_by_their_id():
    records = list(clicks.click_records(_options(300)))
    assert records == list(clicks.click_records(_options(300)))  # deterministic
    assert {r.kind for r in records} == {"event"}
    for record in records:
        wire = json.loads(record.value)
        assert list(wire) == SPEC.column_names
        assert record.key == wire["event_id"].encode()
        assert dt.datetime.fromisoformat(wire["event_time"]) == record.event["event_time"]
        for column in SPEC.columns:
            assert wire[column.name] is not None or not column.required, column.name
            if column.max_length and wire[column.name] is not None:
                assert len(wire[column.name]) <= column.max_length
    assert len({r.event["event_id"] for r in records}) == 300
    assert {r.event["device"] for r in records} == set(clicks.DEVICES)
    signed_in = [r for r in records if r.event["user_id"] is not None]
    assert 0.2 < len(signed_in) / 300 < 0.5


def test_malformed_views_each_break_a_rule_of_the_spec():
    records = [r for r in clicks.click_records(_options(2000, malformed_fraction=0.2))
               if r.kind == "malformed"]
    assert 300 < len(records) < 500
    for record in records:
        try:
            wire = json.loads(record.value.decode())
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue  # truncated, or not UTF-8
        broken = (set(wire) != set(SPEC.column_names)
                  or len(wire["session_id"]) > 64)
        if not broken:
            try:
                dt.datetime.fromisoformat(wire["event_time"])
            except ValueError:
                broken = True
        assert broken, wire


def test_a_few_articles_get_most_views_and_the_favourites_drift():
    events = [r.event for r in clicks.click_records(_options(8000))]
    quarter = dt.timedelta(hours=1)
    first = Counter(e["article_id"] for e in events if e["event_time"] < START + quarter)
    last = Counter(e["article_id"] for e in events if e["event_time"] >= START + 3 * quarter)
    assert sum(n for _, n in first.most_common(10)) > 0.5 * sum(first.values())
    assert first.most_common(1)[0][0] != last.most_common(1)[0][0]
