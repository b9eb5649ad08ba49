import datetime as dt
from decimal import Decimal as D

import pyarrow as pa
from pyspark.testing import assertDataFrameEqual

import schemas
from speed.tolls.alerts import (
    AlertState,
    alert_id,
    first_crossings,
    month_events,
    month_spend,
    month_totals,
)

NOV, OCT = dt.date(2026, 11, 1), dt.date(2026, 10, 1)


def test_crossing_in_a_batch_is_due_once():
    state = AlertState(spend={("C1", NOV): D("40.00")}, thresholds={"C1": D("50.00")})
    thresholds = {"C1": D("50.00")}
    (due,) = state.due({("C1", NOV): D("18.00")}, thresholds)
    assert (due.threshold, due.spend_before, due.spend_after) == (D("50.00"), D("40.00"),
                                                                  D("58.00"))
    assert due.crossed_in_batch
    state.advance({("C1", NOV): D("18.00")}, thresholds, [("C1", NOV, D("50.00"))])
    assert state.due({("C1", NOV): D("1.00")}, thresholds) == []


def test_below_threshold_and_no_threshold_are_not_due():
    state = AlertState(spend={("C1", NOV): D("10.00")})
    assert state.due({("C1", NOV): D("5.00"), ("C2", NOV): D("500.00")},
                     {"C1": D("50.00"), "C2": None}) == []


def test_changed_threshold_makes_untouched_months_candidates():
    state = AlertState(spend={("C1", NOV): D("30.00"), ("C1", OCT): D("80.00")},
                       thresholds={"C1": None}, alerted=set())
    due = state.due({}, {"C1": D("20.00")})
    assert [(d.month, d.crossed_in_batch) for d in due] == [(OCT, False), (NOV, False)]
    state.advance({}, {"C1": D("20.00")}, [("C1", OCT, D("20.00")), ("C1", NOV, D("20.00"))])
    raised = state.due({}, {"C1": D("60.00")})  # a new threshold: one more alert (October)
    assert [(d.month, d.threshold) for d in raised] == [(OCT, D("60.00"))]


T0 = dt.datetime(2026, 11, 20, 8, 0)
EVENT_COLUMNS = ("transaction_id", "customer_id", "month", "amount", "event_time", "ingested_at",
                 "kafka_partition", "kafka_offset")


def test_crossing_is_the_first_event_in_landing_order_to_reach_the_threshold():
    later = T0 + dt.timedelta(seconds=5)
    events = [dict(zip(EVENT_COLUMNS, row, strict=True)) for row in [
        # landing order: ingest time, then partition, then offset (not event time)
        ("t3", "C1", NOV, D("7.00"), T0, later, 0, 9),
        ("t1", "C1", NOV, D("5.00"), T0 + dt.timedelta(hours=2), T0, 1, 4),
        ("t2", "C1", NOV, D("6.00"), T0 - dt.timedelta(days=1), T0, 1, 5),
        ("t6", "C1", NOV, D("1.00"), T0, T0, 1, 6),  # past the first threshold, not the second
        ("t4", "C2", NOV, D("9.00"), T0, T0, 0, 1),  # C2 is not due
        ("t5", "C1", OCT, D("80.00"), dt.datetime(2026, 10, 31, 23, 59), T0, 0, 2),
    ]]
    got = first_crossings(events, [("C1", NOV, D("50.00"), D("40.00")),
                                   ("C1", NOV, D("58.00"), D("40.00")),
                                   ("C1", OCT, D("500.00"), D("0.00"))])
    assert got == {
        ("C1", NOV, D("50.00")): {"spend": D("51.00"), "event_time": T0 - dt.timedelta(days=1),
                                  "transaction_id": "t2"},
        ("C1", NOV, D("58.00")): {"spend": D("59.00"), "event_time": T0, "transaction_id": "t3"},
    }


def test_alert_id():
    assert alert_id("C1", NOV, D("50.00")) == "C1|2026-11|50.00"


def test_month_spend_adds_the_speed_rows_after_the_cutover_up_to_the_version(spark):
    batch = spark.createDataFrame(
        [("C1", NOV, 3, D("30.00")), ("C2", OCT, 1, D("5.00"))],
        "customer_id string, month date, transaction_count long, spend decimal(18,2)")
    speed = spark.createDataFrame(
        [(4, "C1", dt.datetime(2026, 11, 2, 8, 0), D("7.00")),   # covered by the cut-over
         (5, "C1", dt.datetime(2026, 11, 30, 23, 50), D("2.50")),
         (6, "C2", dt.datetime(2026, 10, 31, 23, 50), D("1.25")),
         (6, "C3", dt.datetime(2026, 11, 1, 0, 0), D("4.00")),
         (7, "C1", dt.datetime(2026, 11, 3, 9, 0), D("100.00"))],  # after the version asked
        "landing_version long, customer_id string, window_start timestamp, spend decimal(18,2)")
    assertDataFrameEqual(
        month_spend(batch, speed, cutover=4, through=6),
        spark.createDataFrame([("C1", NOV, D("32.50")), ("C2", OCT, D("6.25")),
                               ("C3", NOV, D("4.00"))],
                              "customer_id string, month date, spend decimal(28,2)"),
        checkRowOrder=False)


def test_month_totals_sum_the_10_minute_spend_rows_by_the_month_of_their_window():
    def at(*args: int) -> dt.datetime:
        return dt.datetime(*args, tzinfo=dt.timezone.utc)

    rows = [{"view_name": "speed_tolls_customer_spend_10m", "customer_id": customer_id,
             "window_start": start, "spend": spend}
            for customer_id, start, spend in [
                ("C1", at(2026, 10, 31, 23, 50), D("2.50")),  # the last window of October
                ("C1", at(2026, 11, 1, 0, 0), D("1.25")),
                ("C1", at(2026, 11, 30, 23, 50), D("9999999999999999.99")),
                ("C2", at(2026, 11, 5, 8, 10), D("0.01"))]]
    rows += [{"view_name": "speed_tolls_plaza_revenue_30m", "plaza_id": "P1",  # not spend
              "bucket_start": at(2026, 11, 5, 8, 0), "revenue": D("40.00")},
             {"view_name": "tolls_stream_progress", "landed_count": 4}]
    got = month_totals(pa.Table.from_pylist(rows, schemas.arrow_schema("tolls_speed_rows")))
    assert got == {("C1", OCT): D("2.50"), ("C1", NOV): D("10000000000000001.24"),
                   ("C2", NOV): D("0.01")}



def test_month_events_are_those_customers_events_in_those_months():
    def at(day: int, hour: int = 0, minute: int = 0, month: int = 11) -> dt.datetime:
        return dt.datetime(2026, month, day, hour, minute, tzinfo=dt.timezone.utc)

    events = pa.table({
        "transaction_id": ["t1", "t2", "t3", "t4"],
        "customer_id": ["C1", "C1", "C2", "C1"],
        "event_time": pa.array([at(31, 23, 59, month=10), at(1), at(2), at(3)],
                               pa.timestamp("us", tz="UTC")),
        "amount": pa.array([D("30.00"), D("30.00"), D("30.00"), D("25.00")],
                           pa.decimal128(12, 2)),
        "ingested_at": pa.array([T0] * 4, pa.timestamp("us", tz="UTC")),
        "kafka_partition": pa.array([0] * 4, pa.int32()),
        "kafka_offset": pa.array([1, 2, 3, 4], pa.int64()),
    })
    found = month_events(events, ["C1"], [NOV])
    assert [(e["transaction_id"], e["month"]) for e in found] == [("t2", NOV), ("t4", NOV)]
    crossing = first_crossings(found, [("C1", NOV, D("50.00"), D("0.00"))])
    assert crossing[("C1", NOV, D("50.00"))]["transaction_id"] == "t4"
