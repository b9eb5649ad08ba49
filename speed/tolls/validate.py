"""Parse and validate raw Kafka records of toll events (pure DataFrame -> DataFrame functions).

The input has Kafka's columns (`key`, `value`, `topic`, `partition`, `offset`, `timestamp`) and
the micro-batch's `ingested_at` and `ingest_batch_id`, added at the edge. `validate_toll_records`
adds the typed event columns of `schemas/tolls_event.json` and `is_accepted`. Nothing is dropped
here; `accepted_events` and `quarantined_records` split the result, and a quarantined record gets
every reason it was rejected (`rejection_reason`).

Validation is one lean pass: the JSON is parsed once with the spec's types (`from_json`) and its
keys listed once (`json_object_keys`); a handful of cheap comparisons decide. They accept exactly
the records for which `rejection_reason` finds nothing (a test holds the two together), so the
reasons, a second all-text parse and some thirty checks, are worked out for rejected records
only, when they are written to quarantine. That also keeps the plans of the landing and speed
writes small: Spark analyses, plans and compiles every micro-batch's queries anew.
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
Plazas = frozenset[str] | None  # the known plaza ids; None: no plaza reference, every plaza known


def _typed_schema() -> T.StructType:
    """Schema of the one parse of every record: integer fields as integers (a quoted or
    fractional number parses as null), everything else as its text, checked by `_accepted`."""
    return T.StructType([T.StructField(c.name, T.IntegerType() if c.name in _INTEGER_FIELDS
                                       else T.StringType())
                         for c in schemas.load(EVENT_SPEC).columns])


def _wire_schema() -> T.StructType:
    """Schema to read the JSON with: every field as its text (a JSON string's content, or the
    literal text of a number), so a mistyped field is reported rather than read as null."""
    return T.StructType([T.StructField(c.name, T.StringType())
                         for c in schemas.load(EVENT_SPEC).columns])


def _utf8_text() -> Column:
    return F.decode(F.col("value"), "UTF-8")


def _is_json_integer(raw: Column, name: str) -> Column:
    """Whether field `name` is a JSON integer: integer text, and not a quoted string."""
    quoted = F.col("_text").rlike(f'"{name}"\\s*:\\s*"')
    return raw[name].rlike(r"^-?[0-9]{1,18}$") & ~quoted


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


def _is_known_plaza(plaza_id: Column, plaza_ids: Plazas) -> Column:
    """Whether `plaza_id` is in `plaza_ids` (always, when there is no plaza reference)."""
    if plaza_ids is None:
        return F.lit(True)
    return plaza_id.isin(*sorted(plaza_ids)) if plaza_ids else F.lit(False)


def _key_matches(transaction_id: Column) -> Column:
    """Whether the record's key is the UTF-8 bytes of `transaction_id`."""
    return F.col("key") == F.encode(transaction_id, "UTF-8")


def _field_reasons(settings: ValidationSettings, plaza_ids: Plazas, raw: Column) -> Column:
    """Every reason a well-formed JSON object is not a good event (`raw`: its all-text parse)."""
    spec = schemas.load(EVENT_SPEC)
    keys = F.col("_keys")
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
            (F.length(value) > c.max_length if c.max_length else F.lit(False),
             F.format_string(f"field {c.name} is too long: %d characters (limit {c.max_length})",
                             F.length(value))),
        ))
    if settings.key_is_transaction_id:
        transaction_id = raw["transaction_id"]
        checks.append(_first(
            (F.col("key").isNull(), F.lit("record key is null (it must be the transaction_id)")),
            (transaction_id.isNotNull() & ~_key_matches(transaction_id),
             F.lit("record key is not the transaction_id")),
        ))
    plaza_id = raw["plaza_id"]
    checks.append(F.when(plaza_id.isNotNull() & ~_is_known_plaza(plaza_id, plaza_ids),
                         F.concat(F.lit("unknown plaza_id: "), F.substring(plaza_id, 1, 40))))
    for name in _INTEGER_FIELDS:
        checks.append(F.when(raw[name].isNotNull() & ~_is_json_integer(raw, name),
                             F.lit(f"field {name} must be a JSON integer")))
    max_amount = Decimal(settings.max_amount)
    amount = raw["amount"]
    amount_ok = amount.rlike(_AMOUNT)
    amount_value = amount.cast("decimal(38,2)")  # null when it has more than 36 digits
    amount_text, minus = F.substring(amount, 1, 40), amount.startswith("-")
    checks += [
        F.when(~amount_ok, F.concat(F.lit("amount is not a decimal with at most 2 places: "),
                                    amount_text)),
        F.when(amount_ok & ((amount_value < 0) | amount_value.isNull() & minus),
               F.concat(F.lit("amount is negative: "), amount_text)),
        F.when(amount_ok & ((amount_value > F.lit(max_amount)) | amount_value.isNull() & ~minus),
               F.concat(F.lit(f"amount is above the limit {max_amount}: "), amount_text)),
        F.when(_is_json_integer(raw, "vehicle_class") & ~vehicle_class.between(1, 5),
               F.concat(F.lit("vehicle_class must be 1-5, got "), vehicle_class)),
        F.when(_is_json_integer(raw, "lane") & ~lane.between(0, 10_000),
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


def _amount(event: Column) -> Column:
    return event["amount"].cast("decimal(38,2)")


def _event_time(event: Column) -> Column:
    return event["event_time"].cast("timestamp")


def _accepted(settings: ValidationSettings, plaza_ids: Plazas) -> Column:
    """Whether a record is a good event: exactly when `with_rejection_reason` finds nothing.

    Cheap on purpose (no regex over the whole message): valid UTF-8, every field present, typed
    and in range, and exactly the spec's number of keys, so no extra or repeated field; the
    record key is the transaction_id (when required) and the plaza a known one (when there is a
    plaza reference).
    """
    spec = schemas.load(EVENT_SPEC)
    event, value = F.col("_event"), F.col("value")
    amount, event_time, ingested = _amount(event), _event_time(event), F.col("ingested_at")
    text_fields = [c.name for c in spec.columns if c.name not in _INTEGER_FIELDS]
    checks = [
        value.isNotNull(), F.length(value).between(1, settings.max_message_bytes),
        F.encode(F.col("_text"), "UTF-8") == value,  # decode() replaces invalid UTF-8
        F.size(F.col("_keys")) == len(spec.columns),
        *[F.length(F.trim(event[name])) > 0 for name in text_fields],
        *[F.length(event[c.name]) <= c.max_length for c in spec.columns if c.max_length],
        _is_known_plaza(event["plaza_id"], plaza_ids),
        event["vehicle_class"].between(1, 5), event["lane"].between(0, 10_000),
        event["amount"].rlike(_AMOUNT), amount.between(0, Decimal(settings.max_amount)),
        event["currency"].isin(*_CURRENCIES),
        event["event_time"].rlike(_ISO_WITH_OFFSET),
        event_time.between(ingested - F.expr(f"INTERVAL {settings.max_event_age_days} DAYS"),
                           ingested + F.expr(f"INTERVAL {settings.max_future_minutes} MINUTES")),
    ]
    if settings.key_is_transaction_id:
        checks.append(_key_matches(event["transaction_id"]))
    ok = checks[0]
    for check in checks[1:]:
        ok = ok & check
    return F.coalesce(ok, F.lit(False))


def with_rejection_reason(settings: ValidationSettings, plaza_ids: Plazas = None
                          ) -> Callable[[DataFrame], DataFrame]:
    """Return a transformation adding `rejection_reason`: every reason a record fails validation,
    `; `-separated, or null for a good record (from `value` and `ingested_at`).

    It parses each value again, all as text: meant for the few records `is_accepted` rejected.
    """
    text = _utf8_text()
    helpers = [text.alias("_text"), F.json_object_keys(text).alias("_keys")]
    # the one-element transform binds the all-text parse to a variable: it runs once per record,
    # not once per check
    raw = F.array(F.from_json("_text", _wire_schema()))
    reason = F.coalesce(_transport_reason(settings), F.transform(
        raw, lambda parsed: _field_reasons(settings, plaza_ids, parsed))[0])

    def transform(df: DataFrame) -> DataFrame:
        return (df.select("*", *helpers)
                .select(*df.columns, reason.alias("rejection_reason")))

    return transform


def validate_toll_records(settings: ValidationSettings, plaza_ids: Plazas = None
                          ) -> Callable[[DataFrame], DataFrame]:
    """Return a transformation adding the typed event columns and `is_accepted` to Kafka rows
    (`plaza_ids`: the known plazas, None to accept every plaza).

    The columns are built once here, not per call: a micro-batch applies the transformation
    again, and building expressions through py4j is not free.
    """
    spec = schemas.load(EVENT_SPEC)
    text = _utf8_text()
    parsed = [text.alias("_text"), F.from_json(text, _typed_schema()).alias("_event"),
              F.json_object_keys(text).alias("_keys")]
    event = F.col("_event")
    typed = [(_amount(event) if c.name == "amount" else _event_time(event)
              if c.name == "event_time" else event[c.name])
             .cast(schemas.spark_type(c.type)).alias(c.name) for c in spec.columns]
    accepted = _accepted(settings, plaza_ids).alias("is_accepted")

    def transform(df: DataFrame) -> DataFrame:
        return df.select("*", *parsed).select(*df.columns, *typed, accepted)

    return transform


def with_kafka_columns(df: DataFrame) -> DataFrame:
    """Rename Kafka's source columns to the lake's `kafka_*` names."""
    return (df.withColumnRenamed("topic", "kafka_topic")
            .withColumnRenamed("partition", "kafka_partition")
            .withColumnRenamed("offset", "kafka_offset")
            .withColumnRenamed("timestamp", "kafka_timestamp"))


def accepted_events(df: DataFrame) -> DataFrame:
    """Accepted rows, in the landing zone's columns."""
    return (df.where(F.col("is_accepted"))
            .transform(with_kafka_columns)
            .withColumn("ingest_date", F.to_date("ingested_at"))
            .select(*schemas.load("tolls_landing").column_names))


def quarantined_records(settings: ValidationSettings, plaza_ids: Plazas = None
                        ) -> Callable[[DataFrame], DataFrame]:
    """Return a transformation keeping rejected rows in the quarantine table's columns, each
    with its reason: a duplicate's (`duplicate_reason`, when the rows have that column), else
    every reason validation found."""
    reasons = with_rejection_reason(settings, plaza_ids)

    def transform(df: DataFrame) -> DataFrame:
        rejected = df.where(~F.col("is_accepted")).transform(reasons)
        duplicate = (F.col("duplicate_reason") if "duplicate_reason" in df.columns
                     else F.lit(None).cast("string"))
        reason = F.coalesce(duplicate, F.col("rejection_reason"),
                            F.lit("rejected by validation (no reason found)"))
        return (rejected.transform(with_kafka_columns)
                .select(F.col("key").alias("raw_key"), F.col("value").alias("raw_value"),
                        "kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp",
                        reason.alias("reason"), F.col("ingested_at").alias("quarantined_at"),
                        "ingest_batch_id"))

    return transform
