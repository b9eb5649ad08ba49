import datetime as dt
from decimal import Decimal

from pyspark.testing import assertDataFrameEqual

from batch.tolls.views import (
    customer_monthly_spend,
    customer_spend_10m,
    daily_class_traffic,
    plaza_revenue_30m,
)

EVENTS_SCHEMA = ("customer_id string, plaza_id string, amount decimal(12,2), "
                 "event_time timestamp, landing_version long")


def events(spark):
    t = dt.datetime
    rows = [
        ("C1", "P1", Decimal("2.50"), t(2026, 10, 31, 23, 59, 59, 999000), 1),  # October
        ("C1", "P1", Decimal("4.00"), t(2026, 11, 1, 0, 0), 1),                 # November
        ("C1", "P2", Decimal("0.01"), t(2026, 11, 1, 0, 9, 59), 2),
        ("C2", "P1", Decimal("12.25"), t(2026, 11, 1, 0, 10), 2),
        ("C2", "P1", Decimal("9.50"), t(2026, 11, 1, 0, 29, 59), 2),
        ("C2", "P1", Decimal("6.75"), t(2026, 11, 1, 0, 30), 2),
    ]
    return spark.createDataFrame(rows, EVENTS_SCHEMA)


def test_customer_monthly_spend_splits_at_the_month_boundary(spark):
    expected = spark.createDataFrame(
        [("C1", dt.date(2026, 10, 1), 1, Decimal("2.50")),
         ("C1", dt.date(2026, 11, 1), 2, Decimal("4.01")),
         ("C2", dt.date(2026, 11, 1), 3, Decimal("28.50"))],
        "customer_id string, month date, transaction_count long, spend decimal(18,2)")
    assertDataFrameEqual(events(spark).transform(customer_monthly_spend()), expected)


def test_customer_spend_10m_windows_are_half_open(spark):
    t = dt.datetime
    expected = spark.createDataFrame(
        [("C1", t(2026, 10, 31, 23, 50), t(2026, 11, 1, 0, 0), 1, Decimal("2.50")),
         ("C1", t(2026, 11, 1, 0, 0), t(2026, 11, 1, 0, 10), 2, Decimal("4.01")),
         ("C2", t(2026, 11, 1, 0, 10), t(2026, 11, 1, 0, 20), 1, Decimal("12.25")),
         ("C2", t(2026, 11, 1, 0, 20), t(2026, 11, 1, 0, 30), 1, Decimal("9.50")),
         ("C2", t(2026, 11, 1, 0, 30), t(2026, 11, 1, 0, 40), 1, Decimal("6.75"))],
        "customer_id string, window_start timestamp, window_end timestamp, "
        "transaction_count long, spend decimal(18,2)")
    assertDataFrameEqual(events(spark).transform(customer_spend_10m()), expected)


def test_plaza_revenue_30m_grouped_by_landing_version(spark):
    t = dt.datetime
    expected = spark.createDataFrame(
        [(1, "P1", t(2026, 10, 31, 23, 30), 1, Decimal("2.50")),
         (1, "P1", t(2026, 11, 1, 0, 0), 1, Decimal("4.00")),
         (2, "P2", t(2026, 11, 1, 0, 0), 1, Decimal("0.01")),
         (2, "P1", t(2026, 11, 1, 0, 0), 2, Decimal("21.75")),
         (2, "P1", t(2026, 11, 1, 0, 30), 1, Decimal("6.75"))],
        "landing_version long, plaza_id string, bucket_start timestamp, vehicle_count long, "
        "revenue decimal(18,2)")
    got = events(spark).transform(plaza_revenue_30m(by=["landing_version"]))
    assertDataFrameEqual(got, expected)


def test_daily_class_traffic_by_utc_day(spark):
    t = dt.datetime
    rows = [(1, Decimal("2.50"), t(2026, 11, 1, 23, 59, 59)), (1, Decimal("2.75"), t(2026, 11, 2)),
            (1, Decimal("2.50"), t(2026, 11, 2, 8)), (5, Decimal("12.25"), t(2026, 11, 2, 9))]
    events_df = spark.createDataFrame(rows, "vehicle_class int, amount decimal(12,2), "
                                            "event_time timestamp")
    expected = spark.createDataFrame(
        [(dt.date(2026, 11, 1), 1, 1, Decimal("2.50")),
         (dt.date(2026, 11, 2), 1, 2, Decimal("5.25")),
         (dt.date(2026, 11, 2), 5, 1, Decimal("12.25"))],
        "day date, vehicle_class int, vehicle_count long, revenue decimal(18,2)")
    assertDataFrameEqual(events_df.transform(daily_class_traffic()), expected)


def test_money_sums_are_exact_at_the_largest_amounts(spark):
    # summed as whole cents: the largest decimal(12,2) amounts and a cent must add up exactly
    largest = Decimal("9999999999.99")
    rows = [("C1", "P1", amount, dt.datetime(2026, 11, 1, 0, 0), 1)
            for amount in (largest, largest, largest, Decimal("0.01"), Decimal("-0.02"))]
    spend = (spark.createDataFrame(rows, EVENTS_SCHEMA).transform(customer_monthly_spend())
             .first()["spend"])
    assert spend == largest * 3 - Decimal("0.01")
