"""Parse and validate raw Kafka records of events against their spec (pure DataFrame -> DataFrame
functions, for every domain).

The input has Kafka's columns (`key`, `value`, `topic`, `partition`, `offset`, `timestamp`) and
the micro-batch's `ingested_at` and `ingest_batch_id`, added at the edge. `validate_records` adds
the typed event columns of the event's spec (`schemas/<domain>_event.json`) and `is_accepted`.
Nothing is dropped here; `accepted_events` and `quarantined_records` split the result, and a
quarantined record gets every reason it was rejected (`rejection_reason`).

What a good event is comes from its spec (`EventRules`): every field present, exactly once, and
no other, its name written plainly (not with escapes such as `\\u0061`); a required field not
null; strings as JSON strings, not blank and within `max_length`; integers as JSON integers and
decimals with at most the type's places, within `min`/`max`; `allowed` values; `references` to a
reference table's values; timestamps ISO-8601 with an offset, not too far in the future or the
past; the record's key equal to its `record_key` field. The domain adds what depends on settings
or reference data (a bound from a setting, the known values).

Validation is one lean pass: the JSON is parsed once with the spec's types (`from_json`), its
keys told from its text for the common record (a second parse listing them, `json_object_keys`,
only for the others); a handful of cheap comparisons decide. They accept exactly
the records for which `rejection_reason` finds nothing (a test holds the two together), so the
reasons, a second all-text parse and some thirty checks, are worked out for rejected records
only, when they are written to quarantine. That also keeps the plans of the landing and speed
writes small: Spark analyses, plans and compiles every micro-batch's queries anew.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

import schemas
from lambdalake.config import ValidationSettings

_ISO_WITH_OFFSET = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$"
_INTEGER_TYPES = {"int": T.IntegerType(), "long": T.LongType()}
_DECIMAL = re.compile(r"decimal\((\d+),(\d+)\)")
Known = frozenset[str] | None  # a reference column's values; None: no reference, all known


@dataclass(frozen=True)
class EventRules:
    """What a good event of spec `spec` is: the spec's own rules, the settings' bounds, the
    values of each referenced column (`known`: None or absent for a column whose reference
    table does not exist, so every value is known), and upper bounds that override the spec's
    (`maximum`, e.g. from a setting)."""

    spec: str
    settings: ValidationSettings
    known: Mapping[str, Known] = field(default_factory=dict)
    maximum: Mapping[str, str] = field(default_factory=dict)

    @property
    def columns(self) -> tuple[schemas.ColumnSpec, ...]:
        """The event's fields, in spec order."""
        return schemas.load(self.spec).columns

    @property
    def record_key(self) -> str | None:
        """The field the record's Kafka key must equal, or None when any key will do."""
        if not self.settings.key_is_transaction_id:
            return None
        return schemas.load(self.spec).record_key

    def __post_init__(self) -> None:
        """Refuse a spec these checks cannot hold to (one line)."""
        for c in self.columns:
            if c.type in _INTEGER_TYPES and not c.required:
                raise ValueError(f"{self.spec}: optional integer field {c.name}: the typed "
                                 "parse cannot tell a JSON null from a mistyped value")

    def bounds(self, column: schemas.ColumnSpec) -> tuple[Decimal | int | None,
                                                          Decimal | int | None]:
        """A numeric field's (min, max), either None when unbounded (ints for an integer
        field, so its comparisons stay integer ones)."""
        number = int if column.type in _INTEGER_TYPES else Decimal
        high = self.maximum.get(column.name, column.maximum)
        return (None if column.minimum is None else number(column.minimum),
                None if high is None else number(high))


def _scale(column: schemas.ColumnSpec) -> int | None:
    """Decimal places of a decimal field, None for other types."""
    match = _DECIMAL.fullmatch(column.type)
    return int(match[2]) if match else None


def _decimal_text(scale: int) -> str:
    return rf"^-?[0-9]+(\.[0-9]{{1,{scale}}})?$" if scale else r"^-?[0-9]+$"


def _typed_schema(rules: EventRules) -> T.StructType:
    """Schema of the one parse of every record: integer fields as integers (a quoted or
    fractional number parses as null), everything else as its text, checked by `_accepted`."""
    return T.StructType([T.StructField(c.name, _INTEGER_TYPES.get(c.type, T.StringType()))
                         for c in rules.columns])


def _wire_schema(rules: EventRules) -> T.StructType:
    """Schema to read the JSON with: every field as its text (a JSON string's content, or the
    literal text of a number), so a mistyped field is reported rather than read as null."""
    return T.StructType([T.StructField(c.name, T.StringType()) for c in rules.columns])


def _typed(column: schemas.ColumnSpec, event: Column) -> Column:
    """A field of the typed parse as the spec's type (decimals and timestamps from text)."""
    value = event[column.name]
    scale = _scale(column)
    if scale is not None:
        value = value.cast(f"decimal(38,{scale})")  # null when it has too many digits
    elif column.type == "timestamp":
        value = value.cast("timestamp")
    return value


def _utf8_text() -> Column:
    return F.decode(F.col("value"), "UTF-8")


def _key(pattern: str) -> str:
    """The pattern of a key whose text matches `pattern`, written as plain text (`"name":`), not
    with escapes (`"n\\u0061me":`). In a valid JSON object that text is only ever a key: a quote
    inside a string is escaped."""
    return f'"{pattern}"\\s*:'


def _plain_name(name: str) -> str:
    """The pattern of field `name`'s key written as plain text (see `_key`)."""
    return _key(re.escape(name))


def _plain_names(rules: EventRules) -> str:
    """The pattern of any of the spec's field names written as plain text (see `_key`), the name
    its group 1."""
    return _key("(" + "|".join(re.escape(c.name) for c in rules.columns) + ")")


def _escaped_names_reason(rules: EventRules) -> Column:
    """Why a record whose field names are written with escapes is rejected, or null. Such a
    record is rejected for that alone: the checks that tell a JSON string from a number find a
    field by its key's text, so they cannot judge its fields."""
    text, keys = F.col("_text"), F.col("_keys")
    escaped = F.array_compact(F.array(*[
        F.when(F.array_contains(keys, c.name) & ~text.rlike(_plain_name(c.name)), F.lit(c.name))
        for c in rules.columns]))
    return F.when(F.size(escaped) > 0, F.concat(
        F.lit("field name(s) written with escapes: "), F.array_join(escaped, ", ")))


def _is_quoted(name: str) -> Column:
    """Whether field `name`'s value in the record's text is a JSON string (its key, a colon and
    a quote; a field appears once in a record that is not rejected for a repeated key)."""
    return F.col("_text").rlike(_plain_name(name) + '\\s*"')


def _is_json_integer(raw: Column, name: str) -> Column:
    """Whether field `name` is a JSON integer: integer text, and not a quoted string."""
    return raw[name].rlike(r"^-?[0-9]{1,18}$") & ~_is_quoted(name)


# the text the parse gives a JSON number (NaN and the infinities quoted), true or false, object
# or array read into a text field; a JSON string's content may look the same
_NON_STRING_TEXT = r'^-?[0-9][0-9.E+-]*$|^"-?(NaN|Infinity)"$'


def _is_json_string(value: Column, name: str) -> Column:
    """Whether text field `name` (`value`: its text from a parse) was null or a JSON string, not
    a number, boolean, object or array read as its text. Only a value that could be one of those
    has the record's text searched, so the common case costs a comparison or two."""
    maybe_other = (((value < ":") & value.rlike(_NON_STRING_TEXT)) | value.isin("true", "false")
                   | value.startswith("{") | value.startswith("["))
    return value.isNull() | ~maybe_other | _is_quoted(name)


def _first(*checks: tuple[Column, str | Column]) -> Column:
    """The message of the first check that holds, else null."""
    return F.coalesce(*[F.when(cond, msg) for cond, msg in checks])


def _all(checks: list[Column]) -> Column:
    ok = F.lit(True)
    for check in checks:
        ok = ok & check
    return ok


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


def _is_known(value: Column, known: Known) -> Column:
    """Whether `value` is among `known` (always, when there is no reference)."""
    if known is None:
        return F.lit(True)
    return value.isin(*sorted(known)) if known else F.lit(False)


def _key_matches(record_id: Column) -> Column:
    """Whether the record's key is the UTF-8 bytes of `record_id`."""
    return F.col("key") == F.encode(record_id, "UTF-8")


def _time_window(rules: EventRules) -> tuple[Column, Column]:
    """The earliest and latest event time accepted, relative to the ingest time."""
    ingested, settings = F.col("ingested_at"), rules.settings
    return (ingested - F.expr(f"INTERVAL {settings.max_event_age_days} DAYS"),
            ingested + F.expr(f"INTERVAL {settings.max_future_minutes} MINUTES"))


def _range_reasons(name: str, value: Column, text: Column, low: Decimal | int | None,
                   high: Decimal | int | None, is_integer: bool) -> list[Column]:
    """Why a number is out of [low, high]: integers as `x must be 1-5, got 9`, decimals as
    `x is negative: -1` (or below its minimum) and `x is above the limit 1000.00: 25000`."""
    if is_integer:
        if low is None and high is None:
            return []
        wanted = (f"{low}-{high}" if low is not None and high is not None else
                  f"at least {low}" if low is not None else f"at most {high}")
        out = ((value < F.lit(low)) if low is not None else F.lit(False)) | (
            (value > F.lit(high)) if high is not None else F.lit(False))
        return [F.when(out, F.concat(F.lit(f"{name} must be {wanted}, got "), value))]
    # a decimal: `value` is null when the text has too many digits to read; its sign says
    minus, reasons = text.startswith("-"), []
    if low is not None:
        below = f"{name} is negative: " if low == 0 else f"{name} is below {low}: "
        reasons.append(F.when((value < F.lit(low)) | value.isNull() & minus,
                              F.concat(F.lit(below), text)))
    if high is not None:
        reasons.append(F.when((value > F.lit(high)) | value.isNull() & ~minus,
                              F.concat(F.lit(f"{name} is above the limit {high}: "), text)))
    return reasons


def _column_reasons(rules: EventRules, column: schemas.ColumnSpec, raw: Column) -> list[Column]:
    """Every reason a present field's value is not good (`raw`: the all-text parse); each is
    null when the value is null (a null required field is reported as such already)."""
    name, value = column.name, raw[column.name]
    reasons: list[Column] = []
    if column.name in rules.known:
        reasons.append(F.when(~_is_known(value, rules.known[name]),
                              F.concat(F.lit(f"unknown {name}: "), F.substring(value, 1, 40))))
    if column.type == "string":
        reasons.append(F.when(~_is_json_string(value, name),
                              F.lit(f"field {name} must be a JSON string")))
    low, high = rules.bounds(column)
    if column.type in _INTEGER_TYPES:
        is_integer = _is_json_integer(raw, name)
        reasons.append(F.when(~is_integer, F.lit(f"field {name} must be a JSON integer")))
        number = value.cast("long")
        reasons += [F.when(is_integer, r) for r in _range_reasons(name, number, value, low,
                                                                  high, True)]
    scale = _scale(column)
    if scale is not None:
        well_formed, text = value.rlike(_decimal_text(scale)), F.substring(value, 1, 40)
        reasons.append(F.when(~well_formed, F.concat(F.lit(
            f"{name} is not a decimal with at most {scale} places: "), text)))
        number = value.cast(f"decimal(38,{scale})")
        reasons += [F.when(well_formed, r)
                    for r in _range_reasons(name, number, text, low, high, False)]
    if column.allowed is not None:
        reasons.append(F.when(~value.isin(*column.allowed), F.concat(
            F.lit(f"unsupported {name}: "), F.substring(value, 1, 20))))
    if column.type == "timestamp":
        parsed = value.cast("timestamp")
        ok = value.rlike(_ISO_WITH_OFFSET) & parsed.isNotNull()
        earliest, latest = _time_window(rules)
        days = rules.settings.max_event_age_days
        reasons += [
            F.when(~ok, F.concat(F.lit(f"{name} is not ISO-8601 with an offset: "),
                                 F.substring(value, 1, 40))),
            F.when(ok & (parsed > latest), F.concat(F.lit(f"{name} is in the future: "), value)),
            F.when(ok & (parsed < earliest),
                   F.concat(F.lit(f"{name} is over {days} days old: "), value)),
        ]
    return reasons


def _field_reasons(rules: EventRules, raw: Column) -> Column:
    """Every reason a well-formed JSON object is not a good event (`raw`: its all-text parse),
    `; `-separated, or null."""
    keys = F.col("_keys")
    allowed = F.array(*[F.lit(c.name) for c in rules.columns])
    extra = F.array_except(keys, allowed)
    checks: list[Column] = [
        F.when(F.size(extra) > 0,
               F.concat(F.lit("unexpected field(s): "), F.array_join(F.array_sort(extra), ", "))),
        F.when(F.size(keys) != F.size(F.array_distinct(keys)), F.lit("duplicate field name(s)")),
    ]
    for c in rules.columns:
        value = raw[c.name]
        checks.append(_first(
            (~F.array_contains(keys, c.name), F.lit(f"missing field {c.name}")),
            (value.isNull() if c.required else F.lit(False), F.lit(f"field {c.name} is null")),
            (F.trim(value) == "", F.lit(f"field {c.name} is empty")),
            (F.length(value) > c.max_length if c.max_length else F.lit(False),
             F.format_string(f"field {c.name} is too long: %d characters (limit {c.max_length})",
                             F.length(value))),
        ))
    key = rules.record_key
    if key is not None:
        record_id = raw[key]
        checks.append(_first(
            (F.col("key").isNull(), F.lit(f"record key is null (it must be the {key})")),
            (record_id.isNotNull() & ~_key_matches(record_id),
             F.lit(f"record key is not the {key}")),
        ))
    for c in rules.columns:
        checks += _column_reasons(rules, c, raw)
    reasons = F.array_compact(F.array(*checks))
    return F.when(F.size(reasons) > 0, F.array_join(reasons, "; "))


def _column_ok(rules: EventRules, column: schemas.ColumnSpec, event: Column) -> Column:
    """Whether a field of the typed parse is good (the cheap form of `_column_reasons`)."""
    name, value = column.name, event[column.name]
    typed = _typed(column, event)
    checks: list[Column] = []
    if column.type in _INTEGER_TYPES or _scale(column) is not None:
        low, high = rules.bounds(column)
        checks.append(typed.isNotNull())
        if low is not None:
            checks.append(typed >= F.lit(low))
        if high is not None:
            checks.append(typed <= F.lit(high))
    if _scale(column) is not None:
        checks.append(value.rlike(_decimal_text(_scale(column))))
    if column.type == "timestamp":
        checks += [value.rlike(_ISO_WITH_OFFSET), typed.between(*_time_window(rules))]
    if column.type not in _INTEGER_TYPES:
        checks.append(F.length(F.trim(value)) > 0)
    if column.type == "string":
        checks.append(_is_json_string(value, name))
    if column.max_length:
        checks.append(F.length(value) <= column.max_length)
    if column.allowed is not None:
        checks.append(value.isin(*column.allowed))
    if name in rules.known:
        checks.append(_is_known(value, rules.known[name]))
    ok = _all(checks)
    return ok if column.required else value.isNull() | ok


# JSON's whitespace, which may stand between a key and its colon
_JSON_WHITESPACE = (" ", "\t", "\n", "\r")


def _keys_told_by_text(rules: EventRules, event: Column) -> Column:
    """Whether the record's keys are exactly the spec's, each once, as the text alone tells
    (no second parse), for the common record: one whose text has no backslash, no single quote
    and no whitespace before a colon, and holds the two characters `":` exactly once per spec
    field, and whose typed parse (`event`) has every required field non-null.

    Such a text's strings are all double-quoted with no escape, so every key, at any depth,
    ends in `":` (Jackson allows only whitespace between a key and its colon), and `":`
    elsewhere (a string beginning with a colon) only adds to the count. A non-null field puts
    its name among the object's top-level keys. An optional field read as null must have its
    key found in the text (`"name":`), and the object then be the whole text with no other `}`
    than its last byte (nothing nested, nothing after it), so that key is one of the object's
    own. With every spec name a top-level key and `":` counted once per field there is no other
    key, no repeated one and no nested object. False for any other record, which the key
    listing then decides."""
    text = F.col("_text")
    marks = F.octet_length(text) - F.octet_length(F.replace(text, F.lit('":'), F.lit("")))
    plain = _all([~text.contains(c) for c in ("\\", "'")]
                 + [~text.contains(f"{space}:") for space in _JSON_WHITESPACE])
    told = plain & (marks == 2 * len(rules.columns))
    told &= _all([event[c.name].isNotNull() for c in rules.columns if c.required])
    optional = {c.name: event[c.name].isNotNull() for c in rules.columns if not c.required}
    if not optional:
        return told
    only_object = (F.octet_length(F.substring_index(text, "}", 1))
                   == F.octet_length(text) - 1)  # its first `}` is its last byte
    keys_found = _all([read | text.contains(f'"{name}":') for name, read in optional.items()])
    return told & (_all(list(optional.values())) | (keys_found & only_object))


def _accepted(rules: EventRules) -> Column:
    """Whether a record is a good event: exactly when `with_rejection_reason` finds nothing.

    Cheap on purpose (no regex over the whole message): valid UTF-8, every field typed and
    good, the keys exactly the spec's, each once (told by the text for the common record,
    `_keys_told_by_text`, else by listing them: a second JSON parse, which is most of the cost
    of validation when every record pays it); the record key is the record's id (when
    required).
    """
    event, value = F.col("_event"), F.col("value")
    names = sorted(c.name for c in rules.columns)
    keys_listed = (F.array_sort(F.json_object_keys(F.col("_text")))
                   == F.array(*[F.lit(name) for name in names]))
    checks = [
        value.isNotNull(), F.length(value).between(1, rules.settings.max_message_bytes),
        F.encode(F.col("_text"), "UTF-8") == value,  # decode() replaces invalid UTF-8
        # evaluated lazily: the listing only for the records the text cannot tell
        F.when(_keys_told_by_text(rules, event), F.lit(True)).otherwise(keys_listed),
        # field names written plainly, so the JSON-string checks can find them (an escaped
        # name needs a backslash, and most records have none): one scan for every plain name.
        # Kept small on purpose: with a check per name the whole validation took twice as
        # long, though no record had a backslash, because Spark's generated code then grew
        # past the 8,000 bytes of a method HotSpot compiles (BENCHMARKS.md, session 28)
        ~F.col("_text").contains("\\") | (F.size(F.array_distinct(F.regexp_extract_all(
            F.col("_text"), F.lit(_plain_names(rules)), 1))) == len(rules.columns)),
        *[_column_ok(rules, c, event) for c in rules.columns],
    ]
    if rules.record_key is not None:
        checks.append(_key_matches(event[rules.record_key]))
    return F.coalesce(_all(checks), F.lit(False))


def with_rejection_reason(rules: EventRules) -> Callable[[DataFrame], DataFrame]:
    """Return a transformation adding `rejection_reason`: every reason a record fails validation,
    `; `-separated, or null for a good record (from `value` and `ingested_at`).

    It parses each value again, all as text: meant for the few records `is_accepted` rejected.
    """
    text = _utf8_text()
    helpers = [text.alias("_text"), F.json_object_keys(text).alias("_keys")]
    # the one-element transform binds the all-text parse to a variable: it runs once per record,
    # not once per check
    raw = F.array(F.from_json("_text", _wire_schema(rules)))
    reason = F.coalesce(_transport_reason(rules.settings), _escaped_names_reason(rules),
                        F.transform(raw, lambda parsed: _field_reasons(rules, parsed))[0])

    def transform(df: DataFrame) -> DataFrame:
        return (df.select("*", *helpers)
                .select(*df.columns, reason.alias("rejection_reason")))

    return transform


def validate_records(rules: EventRules) -> Callable[[DataFrame], DataFrame]:
    """Return a transformation adding the typed event columns and `is_accepted` to Kafka rows.

    The columns are built once here, not per call: a micro-batch applies the transformation
    again, and building expressions through py4j is not free.
    """
    text = _utf8_text()
    parsed = [text.alias("_text"), F.from_json(text, _typed_schema(rules)).alias("_event")]
    event = F.col("_event")
    typed = [_typed(c, event).cast(schemas.spark_type(c.type).simpleString()).alias(c.name)
             for c in rules.columns]
    accepted = _accepted(rules).alias("is_accepted")

    def transform(df: DataFrame) -> DataFrame:
        return df.select("*", *parsed).select(*df.columns, *typed, accepted)

    return transform


def with_kafka_columns(df: DataFrame) -> DataFrame:
    """Rename Kafka's source columns to the lake's `kafka_*` names."""
    return (df.withColumnRenamed("topic", "kafka_topic")
            .withColumnRenamed("partition", "kafka_partition")
            .withColumnRenamed("offset", "kafka_offset")
            .withColumnRenamed("timestamp", "kafka_timestamp"))


def accepted_events(landing: str) -> Callable[[DataFrame], DataFrame]:
    """Return a transformation keeping accepted rows, in the columns of landing table
    `landing`."""
    columns = schemas.load(landing).column_names

    def transform(df: DataFrame) -> DataFrame:
        return (df.where(F.col("is_accepted"))
                .transform(with_kafka_columns)
                .withColumn("ingest_date", F.to_date("ingested_at"))
                .select(*columns))

    return transform


def quarantined_records(rules: EventRules) -> Callable[[DataFrame], DataFrame]:
    """Return a transformation keeping rejected rows in the quarantine tables' columns, each
    with its reason: a duplicate's (`duplicate_reason`, when the rows have that column), else
    every reason validation found."""
    reasons = with_rejection_reason(rules)

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
