"""Parse and validate raw Kafka records of toll events (pure DataFrame -> DataFrame functions).

The input has Kafka's columns (`key`, `value`, `topic`, `partition`, `offset`, `timestamp`) and an
`ingested_at` timestamp added at the edge. `validate_toll_records` adds the typed event columns of
`schemas/tolls_event.json` and `rejection_reason`: null for an accepted record, otherwise every
reason it was not accepted. Nothing is dropped here; `accepted_events` and `quarantined_records`
split the result.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

import schemas
from lambdalake.config import ValidationSettings

EVENT_SPEC = "tolls_event"
_INTEGER_FIELDS = ("lane", "vehicle_class")
_AMOUNT = r"^-?[0-9]+(\.[0-9]{1,2})?$"
_ISO_WITH_OFFSET = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$"
_CURRENCIES = ("USD",)


def _wire_schema() -> T.StructType:
    """Schema to read the JSON with: every field as its text (a JSON string's content, or the
    literal text of a number), so a mistyped field is reported rather than read as null."""
    return T.StructType([T.StructField(c.name, T.StringType())
                         for c in schemas.load(EVENT_SPEC).columns])


def _is_json_integer(name: str) -> Column:
    """Whether field `name` is a JSON integer: integer text, and not a quoted string."""
    quoted = F.col("_text").rlike(f'"{name}"\\s*:\\s*"')
    return F.col("_raw")[name].rlike(r"^-?[0-9]{1,18}$") & ~quoted


def _first(*checks: tuple[Column, str | Column]) -> Column:
    """The message of the first check that holds, else null."""
    return F.coalesce(*[F.when(cond, msg) for cond, msg in checks])


def _transport_reason(settings: ValidationSettings) -> Column:
    value = F.col("value")
    size = F.coalesce(F.length(value), F.lit(0))
    return _first(
        (value.isNull() | (size == 0), F.lit("empty message")),
        (size > settings.max_message_bytes,
         F.format_string("oversized message: %d bytes (limit %d)", size,
                         F.lit(settings.max_message_bytes))),
        (F.encode(F.col("_text"), "UTF-8") != value, F.lit("value is not valid UTF-8")),
        (F.col("_keys").isNull(), F.lit("malformed JSON: not a valid JSON object")),
    )


def _field_reasons(settings: ValidationSettings) -> Column:
    spec = schemas.load(EVENT_SPEC)
    keys = F.col("_keys")
    raw = F.col("_raw")
    lane, vehicle_class = raw["lane"].cast("long"), raw["vehicle_class"].cast("long")
    allowed = F.array(*[F.lit(n) for n in spec.column_names])
    extra = F.array_except(keys, allowed)
    checks: list[Column] = [
        F.when(F.size(extra) > 0,
               F.concat(F.lit("unexpected field(s): "), F.array_join(F.array_sort(extra), ", "))),
        F.when(F.size(keys) != F.size(F.array_distinct(keys)), F.lit("duplicate field name(s)")),
    ]
    for c in spec.columns:
        present = F.array_contains(keys, c.name)
        value = raw[c.name]
        checks.append(_first(
            (~present, F.lit(f"missing field {c.name}")),
            (value.isNull(), F.lit(f"field {c.name} is null")),
            (F.trim(value) == "", F.lit(f"field {c.name} is empty")),
        ))
    for name in _INTEGER_FIELDS:
        checks.append(F.when(raw[name].isNotNull() & ~_is_json_integer(name),
                             F.lit(f"field {name} must be a JSON integer")))
    max_amount = Decimal(settings.max_amount)
    amount = raw["amount"]
    amount_ok = amount.rlike(_AMOUNT)
    checks += [
        F.when(~amount_ok, F.concat(F.lit("amount is not a decimal with at most 2 places: "),
                                    F.substring(amount, 1, 40))),
        F.when(amount_ok & (amount.cast("decimal(38,2)") < 0),
               F.concat(F.lit("amount is negative: "), amount)),
        F.when(amount_ok & (amount.cast("decimal(38,2)") > F.lit(max_amount)),
               F.concat(F.lit(f"amount is above the limit {max_amount}: "), amount)),
        F.when(_is_json_integer("vehicle_class") & ~vehicle_class.between(1, 5),
               F.concat(F.lit("vehicle_class must be 1-5, got "), vehicle_class)),
        F.when(_is_json_integer("lane") & ~lane.between(0, 10_000),
               F.concat(F.lit("lane out of range: "), lane)),
        F.when(~raw["currency"].isin(*_CURRENCIES),
               F.concat(F.lit("unsupported currency: "), F.substring(raw["currency"], 1, 20))),
    ]
    event_time = raw["event_time"]
    parsed_time = event_time.cast("timestamp")
    time_ok = event_time.rlike(_ISO_WITH_OFFSET) & parsed_time.isNotNull()
    ingested = F.col("ingested_at")
    checks += [
        F.when(~time_ok, F.concat(F.lit("event_time is not ISO-8601 with an offset: "),
                                  F.substring(event_time, 1, 40))),
        F.when(time_ok & (parsed_time > ingested + F.expr(
            f"INTERVAL {settings.max_future_minutes} MINUTES")),
               F.concat(F.lit("event_time is in the future: "), event_time)),
        F.when(time_ok & (parsed_time < ingested - F.expr(
            f"INTERVAL {settings.max_event_age_days} DAYS")),
               F.concat(F.lit(f"event_time is over {settings.max_event_age_days} days old: "),
                        event_time)),
    ]
    reasons = F.array_compact(F.array(*checks))
    return F.when(F.size(reasons) > 0, F.array_join(reasons, "; "))


def validate_toll_records(settings: ValidationSettings) -> Callable[[DataFrame], DataFrame]:
    """Return a transformation adding typed event columns and `rejection_reason` to Kafka rows."""
    spec = schemas.load(EVENT_SPEC)

    def transform(df: DataFrame) -> DataFrame:
        staged = (
            df.withColumn("_text", F.decode(F.col("value"), "UTF-8"))
            .withColumn("_keys", F.json_object_keys("_text"))
            .withColumn("_raw", F.from_json("_text", _wire_schema()))
        )
        reason = F.coalesce(_transport_reason(settings), _field_reasons(settings))
        typed_cols = [F.col("_raw")[c.name].cast(schemas.spark_type(c.type)).alias(c.name)
                      for c in spec.columns]
        return staged.select(*df.columns, *typed_cols, reason.alias("rejection_reason"))

    return transform


def with_kafka_columns(df: DataFrame) -> DataFrame:
    """Rename Kafka's source columns to the lake's `kafka_*` names."""
    return (df.withColumnRenamed("topic", "kafka_topic")
            .withColumnRenamed("partition", "kafka_partition")
            .withColumnRenamed("offset", "kafka_offset")
            .withColumnRenamed("timestamp", "kafka_timestamp"))


def accepted_events(ingest_batch_id: int) -> Callable[[DataFrame], DataFrame]:
    """Return a transformation keeping accepted rows in the landing zone's columns."""

    def transform(df: DataFrame) -> DataFrame:
        return (df.where(F.col("rejection_reason").isNull())
                .transform(with_kafka_columns)
                .withColumn("ingest_date", F.to_date("ingested_at"))
                .withColumn("ingest_batch_id", F.lit(ingest_batch_id).cast("long"))
                .select(*schemas.load("tolls_landing").column_names))

    return transform


def quarantined_records(ingest_batch_id: int) -> Callable[[DataFrame], DataFrame]:
    """Return a transformation keeping rejected rows in the quarantine table's columns."""

    def transform(df: DataFrame) -> DataFrame:
        return (df.where(F.col("rejection_reason").isNotNull())
                .transform(with_kafka_columns)
                .select(F.col("key").alias("raw_key"), F.col("value").alias("raw_value"),
                        "kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp",
                        F.col("rejection_reason").alias("reason"),
                        F.col("ingested_at").alias("quarantined_at"),
                        F.lit(ingest_batch_id).cast("long").alias("ingest_batch_id")))

    return transform
