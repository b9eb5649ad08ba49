"""Threshold alerts (pure DataFrame -> DataFrame functions).

A customer is alerted once per month per threshold: an alert (customer, month, threshold) is due
when, after a micro-batch, the customer's cumulative spend of that month (batch part + speed part,
over landed events) is at or above the threshold they have now, and no such alert exists. Its
crossing transaction is the first, in landing order (ingest time, Kafka partition, offset), at
which the cumulative spend reached the threshold.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

MONEY = "decimal(18,2)"
LANDING_ORDER = ("ingested_at", "kafka_partition", "kafka_offset")


def _month(column: str) -> Column:
    return F.trunc(column, "month")


def monthly_spend(batch_monthly: DataFrame, speed_10m: DataFrame, cutover: int) -> DataFrame:
    """Cumulative spend per (customer_id, month): the batch view plus speed rows after `cutover`."""
    speed = (speed_10m.where(F.col("landing_version") > cutover)
             .select("customer_id", _month("window_start").alias("month"), "spend"))
    return (batch_monthly.select("customer_id", "month", "spend").unionByName(speed)
            .groupBy("customer_id", "month").agg(F.sum("spend").cast(MONEY).alias("spend")))


def due_alerts(events: DataFrame, cumulative: DataFrame, customers: DataFrame,
               alerted: DataFrame, changed_customer_ids: DataFrame) -> DataFrame:
    """(customer_id, month, threshold, spend) of alerts due after this micro-batch.

    Candidates are the customer-months this micro-batch touched, and every month of customers
    whose threshold changed since the last micro-batch.
    """
    touched = events.select("customer_id", _month("event_time").alias("month"))
    changed = cumulative.join(changed_customer_ids, "customer_id", "left_semi").select(
        "customer_id", "month")
    thresholds = customers.where(F.col("monthly_threshold").isNotNull()).select(
        "customer_id", F.col("monthly_threshold").alias("threshold"))
    return (touched.unionByName(changed).distinct()
            .join(cumulative, ["customer_id", "month"])
            .join(thresholds, "customer_id")
            .where(F.col("spend") >= F.col("threshold"))
            .join(alerted.select("customer_id", "month", "threshold"),
                  ["customer_id", "month", "threshold"], "left_anti"))


def first_crossings(due: DataFrame, events: DataFrame, base_spend: DataFrame) -> DataFrame:
    """The crossing transaction of each due alert.

    `events` are the customer-months' events after `base_spend` (customer_id, month, base), in
    landing order; the crossing is the first event whose running spend reaches the threshold.
    Due alerts whose base already reaches the threshold get no row (see `crossed_before`).
    """
    order = Window.partitionBy("customer_id", "month", "threshold").orderBy(*LANDING_ORDER)
    running = (events.withColumn("month", _month("event_time"))
               .join(due.select("customer_id", "month", "threshold"), ["customer_id", "month"])
               .join(base_spend, ["customer_id", "month"], "left")
               .withColumn("spend", (F.coalesce("base", F.lit(0)) + F.sum("amount").over(
                   order.rowsBetween(Window.unboundedPreceding, Window.currentRow))).cast(MONEY))
               .where((F.col("spend") >= F.col("threshold"))
                      & (F.coalesce("base", F.lit(0)) < F.col("threshold"))))
    first = Window.partitionBy("customer_id", "month", "threshold").orderBy(*LANDING_ORDER)
    return (running.withColumn("_n", F.row_number().over(first)).where("_n = 1")
            .select("customer_id", "month", "threshold", "spend", "event_time", "transaction_id"))


def batch_base_spend(due: DataFrame, events: DataFrame) -> DataFrame:
    """Spend of each due customer-month before this micro-batch (cumulative minus the batch)."""
    batch_total = (events.groupBy("customer_id", _month("event_time").alias("month"))
                   .agg(F.sum("amount").alias("batch_total")))
    return (due.select("customer_id", "month", "spend").distinct()
            .join(batch_total, ["customer_id", "month"], "left")
            .select("customer_id", "month",
                    (F.col("spend") - F.coalesce("batch_total", F.lit(0))).alias("base")))


def crossed_before(due: DataFrame, base_spend: DataFrame) -> DataFrame:
    """Due alerts whose threshold was already reached before this micro-batch (it was lowered)."""
    return (due.join(base_spend, ["customer_id", "month"])
            .where(F.col("base") >= F.col("threshold")).select(*due.columns))


def alert_rows(crossings: DataFrame, alerted_at: Column, landing_version: int) -> DataFrame:
    """Crossings in the `tolls_alerts` table's columns."""
    return crossings.select(
        F.concat_ws("|", "customer_id", F.date_format("month", "yyyy-MM"),
                    F.col("threshold").cast("string")).alias("alert_id"),
        "customer_id", "month", F.col("threshold").cast("decimal(12,2)").alias("threshold"),
        F.col("spend").cast(MONEY).alias("spend"), "event_time", "transaction_id",
        alerted_at.alias("alerted_at"),
        F.lit(landing_version).cast("long").alias("landing_version"))
