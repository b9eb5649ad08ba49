import datetime as dt
from decimal import Decimal

from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from speed.tolls import alerts

T = dt.datetime(2026, 11, 10, 8, 0)
NOV = dt.date(2026, 11, 1)
EVENTS = ("customer_id string, amount decimal(12,2), event_time timestamp, transaction_id string, "
          "ingested_at timestamp, kafka_partition int, kafka_offset long")
CUSTOMERS = "customer_id string, monthly_threshold decimal(12,2), updated_at timestamp"
ALERTED = "customer_id string, month date, threshold decimal(12,2)"
CUMULATIVE = "customer_id string, month date, spend decimal(18,2)"


def test_monthly_spend_adds_speed_rows_after_the_cutover(spark):
    batch = spark.createDataFrame([("C1", NOV, Decimal("10.00"))], CUMULATIVE)
    speed = spark.createDataFrame(
        [(3, "C1", T, Decimal("4.00")), (4, "C1", T, Decimal("2.50")),
         (4, "C2", dt.datetime(2026, 10, 31, 23, 50), Decimal("1.00"))],
        "landing_version long, customer_id string, window_start timestamp, spend decimal(18,2)")
    expected = spark.createDataFrame(
        [("C1", NOV, Decimal("12.50")), ("C2", dt.date(2026, 10, 1), Decimal("1.00"))],
        CUMULATIVE)
    assertDataFrameEqual(alerts.monthly_spend(batch, speed, cutover=3), expected)


def test_crossing_in_this_batch_is_the_first_event_reaching_the_threshold(spark):
    # before this batch C1 had 40.00; this batch adds 5 + 6 + 7 in landing order
    events = spark.createDataFrame([
        ("C1", Decimal("7.00"), T, "t3", T, 1, 0),
        ("C1", Decimal("5.00"), T, "t1", T, 0, 0),
        ("C1", Decimal("6.00"), T + dt.timedelta(minutes=1), "t2", T, 0, 1),
    ], EVENTS)
    cumulative = spark.createDataFrame([("C1", NOV, Decimal("58.00"))], CUMULATIVE)
    customers = spark.createDataFrame([("C1", Decimal("50.00"), T)], CUSTOMERS)
    none_alerted = spark.createDataFrame([], ALERTED)
    due = alerts.due_alerts(events, cumulative, customers, none_alerted,
                            spark.createDataFrame([], "customer_id string"))
    base = alerts.batch_base_spend(due, events)
    crossing = alerts.first_crossings(due, events, base).collect()
    assert [(r.transaction_id, r.spend, r.threshold) for r in crossing] == [
        ("t2", Decimal("51.00"), Decimal("50.00"))]
    assert alerts.crossed_before(due, base).count() == 0


def test_no_second_alert_for_the_same_threshold_but_one_for_a_new_threshold(spark):
    events = spark.createDataFrame([("C1", Decimal("5.00"), T, "t9", T, 0, 9)], EVENTS)
    cumulative = spark.createDataFrame([("C1", NOV, Decimal("80.00"))], CUMULATIVE)
    alerted = spark.createDataFrame([("C1", NOV, Decimal("50.00"))], ALERTED)
    no_change = spark.createDataFrame([], "customer_id string")
    same = spark.createDataFrame([("C1", Decimal("50.00"), T)], CUSTOMERS)
    assert alerts.due_alerts(events, cumulative, same, alerted, no_change).count() == 0
    raised = spark.createDataFrame([("C1", Decimal("78.00"), T)], CUSTOMERS)
    due = alerts.due_alerts(events, cumulative, raised, alerted, no_change)
    assert [(r.threshold, r.spend) for r in due.collect()] == [(Decimal("78.00"),
                                                                Decimal("80.00"))]


def test_lowered_threshold_alerts_customers_without_new_events(spark):
    events = spark.createDataFrame([("C9", Decimal("1.00"), T, "x", T, 0, 0)], EVENTS)
    cumulative = spark.createDataFrame([("C1", NOV, Decimal("30.00")),
                                        ("C9", NOV, Decimal("1.00"))], CUMULATIVE)
    customers = spark.createDataFrame([("C1", Decimal("20.00"), T)], CUSTOMERS)
    due = alerts.due_alerts(events, cumulative, customers, spark.createDataFrame([], ALERTED),
                            spark.createDataFrame([("C1",)], "customer_id string"))
    base = alerts.batch_base_spend(due, events)
    earlier = alerts.crossed_before(due, base)
    assert [(r.customer_id, r.threshold) for r in earlier.collect()] == [("C1", Decimal("20.00"))]
    history = spark.createDataFrame([
        ("C1", Decimal("15.00"), T, "h1", T, 0, 0),
        ("C1", Decimal("15.00"), T, "h2", T + dt.timedelta(seconds=1), 0, 5),
    ], EVENTS)
    no_base = spark.createDataFrame([], "customer_id string, month date, base decimal(18,2)")
    rows = alerts.alert_rows(alerts.first_crossings(earlier, history, no_base),
                             F.lit(T).cast("timestamp"), 7).collect()
    assert [(r.alert_id, r.transaction_id, r.spend, r.landing_version) for r in rows] == [
        ("C1|2026-11|20.00", "h2", Decimal("30.00"), 7)]
