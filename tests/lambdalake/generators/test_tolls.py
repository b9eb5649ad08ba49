import datetime as dt
import json
from decimal import Decimal

from lambdalake.generators import stream, tolls

START = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)


def test_same_seed_same_records():
    options = tolls.TollsOptions(count=500, seed=7, start=START,
                                 faults=stream.Faults(late_fraction=0.1, duplicate_fraction=0.05,
                                                      malformed_fraction=0.05,
                                                      out_of_order_fraction=0.1))
    first = list(tolls.toll_records(options))
    assert first == list(tolls.toll_records(options))
    other = list(tolls.toll_records(tolls.TollsOptions(count=500, seed=8, start=START)))
    assert [r.value for r in first[:10]] != [r.value for r in other[:10]]


def test_fractions_shape_the_stream():
    options = tolls.TollsOptions(count=4000, seed=1, start=START, span=dt.timedelta(hours=1),
                                 faults=stream.Faults(late_fraction=0.1, duplicate_fraction=0.05,
                                                      malformed_fraction=0.05,
                                                      out_of_order_fraction=0.05))
    records = list(tolls.toll_records(options))
    kinds = [r.kind for r in records]
    assert kinds.count("event") + kinds.count("malformed") == 4000
    assert 150 < kinds.count("malformed") < 250
    assert 100 < kinds.count("duplicate") < 300
    events = [r.event for r in records if r.kind == "event"]
    late = [e for e in events if e["event_time"] < START]
    assert 250 < len(late) < 550
    assert all(e["event_time"] >= START - dt.timedelta(days=2) for e in events)
    times = [e["event_time"] for e in events]
    assert times != sorted(times)  # out of order
    assert len({e["transaction_id"] for e in events}) == len(events)


def test_wire_format_round_trips_exactly():
    event = next(tolls.toll_records(tolls.TollsOptions(count=1, seed=3, start=START))).event
    for as_string in (False, True):
        wire = json.loads(tolls.encode_event(event, amount_as_string=as_string))
        assert Decimal(str(wire["amount"])) == event["amount"]
        assert isinstance(wire["amount"], str) is as_string
        assert dt.datetime.fromisoformat(wire["event_time"]) == event["event_time"]
        assert set(wire) == set(event)


def test_customers_have_deterministic_thresholds():
    rows = tolls.customers(20, seed=5)
    assert rows == tolls.customers(20, seed=5)
    assert [r["customer_id"] for r in rows[:2]] == ["C00001", "C00002"]
    assert rows[9]["monthly_threshold"] is None
    assert all(isinstance(r["monthly_threshold"], Decimal) for r in rows[:9])
