"""Schemas as data: one JSON spec per table in this folder.

Spark `StructType`s, DuckDB DDL and expectation suites are derived from the specs here; nothing
infers the schema of a Kafka payload.

A spec with `union_of` stores several small tables in one Delta table, so that a streaming
micro-batch writes all of them in one commit: its columns are its own (a `view_name` saying which
member a row belongs to) followed by the union of the members' columns, all nullable. A member
keeps its own spec and is read as the union's rows of its `view_name` (`stored_in`).

A spec with `columns_of` has the columns of the spec it names: every domain's quarantine, gaps
and progress tables are alike, and defined once.

A batch view that the serving layer merges with the speed layer says where its speed part comes
from (`speed_part`: the speed view, and an SQL expression for each column that is not the speed
view's own, e.g. the month of a 10-minute window); the merged view's SQL is made from it.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Spark is imported where its types are made: the serving layer needs no Spark
    from pyspark.sql import types as T

MEASURE_TYPES = ("int", "long", "double", "decimal")  # of columns that can be measures
_DECIMAL = re.compile(r"decimal\((\d+),(\d+)\)")


@dataclass(frozen=True)
class ColumnSpec:
    """One column: name, logical type, whether it is required (not null), description.

    Specs imported from a standard also keep the standard's own type (`source_type`, e.g. the
    CDM's `varchar(50)`) and the column a foreign key refers to (`references`, `table.column`).
    A string column may cap its length in characters (`max_length`). The rules of an event's
    fields, which the streaming job checks (`speed.validate`), are data too: a numeric field's
    bounds (`min`, `max`, as text so decimals stay exact), a field's allowed values
    (`allowed`), and `references` (the value must be in that column of a reference table).
    """

    name: str
    type: str
    required: bool
    description: str
    source_type: str | None = None
    references: str | None = None
    max_length: int | None = None
    minimum: str | None = None
    maximum: str | None = None
    allowed: tuple[str, ...] | None = None


@dataclass(frozen=True)
class SpeedPart:
    """Where a merged batch view's speed part comes from: a speed view, and the SQL expression
    (over its row `speed`) of each column that is not one of the speed view's own.

    Each query of the merged view evaluates these over every speed row: a UTC date or month is
    taken from `make_timestamp(epoch_us(t))` (plain arithmetic), not `timezone('UTC', t)`,
    whose ICU conversion took 10 of the top-10 monthly query's 24 ms over 60,000 speed rows."""

    source: str
    columns: tuple[tuple[str, str], ...] = ()

    def expression(self, column: str) -> str:
        """The SQL of `column` in the speed part."""
        return dict(self.columns).get(column, f"speed.{column}")


@dataclass(frozen=True)
class TableSpec:
    """One table: its columns, primary key and layer. An event spec (layer `kafka`) names the
    field a record's Kafka key must equal (`record_key`)."""

    name: str
    layer: str
    description: str
    columns: tuple[ColumnSpec, ...]
    primary_key: tuple[str, ...]
    partition_by: tuple[str, ...] = ()
    source_file: str | None = None
    optional: bool = False
    union_of: tuple[str, ...] = ()
    record_key: str | None = None
    speed_part: SpeedPart | None = None

    @property
    def column_names(self) -> list[str]:
        """Column names in order."""
        return [c.name for c in self.columns]

    @property
    def measures(self) -> list[ColumnSpec]:
        """The columns added up when rows of the same key are merged (a batch view's with its
        speed part, a speed view's partial rows): the numeric ones outside the primary key."""
        return [c for c in self.columns
                if c.name not in self.primary_key and c.type.startswith(MEASURE_TYPES)]


def available() -> list[str]:
    """Names of every table spec."""
    return sorted(
        p.name[: -len(".json")]
        for p in resources.files(__name__).iterdir()
        if p.name.endswith(".json")
    )


@cache
def load(name: str) -> TableSpec:
    """Load the spec of table `name` (`schemas/<name>.json`)."""
    raw = json.loads(resources.files(__name__).joinpath(f"{name}.json").read_text())
    columns: tuple[ColumnSpec, ...] = tuple(
        ColumnSpec(c["name"], c["type"], c["required"], c["description"], c.get("source_type"),
                   c.get("references"), c.get("max_length"), _text(c.get("min")),
                   _text(c.get("max")), tuple(c["allowed"]) if "allowed" in c else None)
        for c in raw.get("columns", ()))
    if "columns_of" in raw:  # the same table for another domain: the columns are defined once
        columns = load(raw["columns_of"]).columns
    members = tuple(raw.get("union_of", ()))
    primary_key = tuple(raw.get("primary_key", ()))
    if members:
        columns, primary_key = _union_columns(name, columns, members)
    return TableSpec(
        name=raw["name"],
        layer=raw["layer"],
        description=raw["description"],
        columns=columns,
        primary_key=primary_key,
        partition_by=tuple(raw.get("partition_by", ())),
        source_file=raw.get("source_file"),
        optional=raw.get("optional", False),
        union_of=members,
        record_key=raw.get("record_key"),
        speed_part=(SpeedPart(raw["speed_part"]["from"],
                              tuple(raw["speed_part"].get("columns", {}).items()))
                    if "speed_part" in raw else None),
    )


def _text(bound: object) -> str | None:
    """A bound as text (`5`, `"1000.00"`): exact for decimals, unlike a float."""
    return None if bound is None else str(bound)


def _union_columns(name: str, own: tuple[ColumnSpec, ...], members: tuple[str, ...]
                   ) -> tuple[tuple[ColumnSpec, ...], tuple[str, ...]]:
    """Columns of a union spec (its own, then each member's not seen yet, all nullable but its
    own required ones) and its key (its own columns, then each member's key)."""
    columns = {c.name: c for c in own}
    key = [c.name for c in own]
    for member in members:
        spec = load(member)
        for c in spec.columns:
            seen = columns.get(c.name)
            if seen is not None and seen.type != c.type:
                raise ValueError(f"{name}: column {c.name} is {seen.type} in one member and "
                                 f"{c.type} in {member}")
            columns.setdefault(c.name, dataclasses.replace(c, required=False))
        key += [k for k in spec.primary_key if k not in key]
    return tuple(columns.values()), tuple(key)


@cache
def stored_in(name: str) -> str | None:
    """The union table that stores table `name`, or None when it is a table of its own."""
    return next((union for union in available() if name in load(union).union_of), None)


def spark_type(logical: str) -> T.DataType:
    """Spark type of a logical type (string, int, long, decimal(p,s), timestamp, date, ...)."""
    from pyspark.sql import types as T

    simple = {"string": T.StringType(), "int": T.IntegerType(), "long": T.LongType(),
              "timestamp": T.TimestampType(), "date": T.DateType(), "binary": T.BinaryType(),
              "boolean": T.BooleanType(), "double": T.DoubleType()}
    if logical in simple:
        return simple[logical]
    match = _DECIMAL.fullmatch(logical)
    if match:
        return T.DecimalType(int(match[1]), int(match[2]))
    raise ValueError(f"unknown logical type {logical!r}")


def duckdb_type(logical: str) -> str:
    """DuckDB type of a logical type."""
    simple = {"string": "VARCHAR", "int": "INTEGER", "long": "BIGINT",
              "timestamp": "TIMESTAMP WITH TIME ZONE", "date": "DATE", "binary": "BLOB",
              "boolean": "BOOLEAN", "double": "DOUBLE"}
    if logical in simple:
        return simple[logical]
    if _DECIMAL.fullmatch(logical):
        return logical.upper()
    raise ValueError(f"unknown logical type {logical!r}")


def spark_schema(name: str, all_nullable: bool = False) -> T.StructType:
    """Spark StructType of a table spec. `all_nullable` makes required fields nullable too, for
    reading source files whose missing values checks report rather than the reader rejecting."""
    from pyspark.sql import types as T

    spec = load(name)
    return T.StructType([T.StructField(c.name, spark_type(c.type),
                                       nullable=all_nullable or not c.required)
                         for c in spec.columns])


def duckdb_ddl(name: str, relation: str | None = None) -> str:
    """`CREATE TABLE` statement of a table spec in DuckDB."""
    spec = load(name)
    cols = ",\n  ".join(
        f'"{c.name}" {duckdb_type(c.type)}{" NOT NULL" if c.required else ""}'
        for c in spec.columns
    )
    return f"CREATE TABLE {relation or spec.name} (\n  {cols}\n)"


def arrow_schema(name: str):  # noqa: ANN201 (pyarrow.Schema; pyarrow is imported lazily)
    """Arrow schema of a table spec (for writers and readers outside Spark)."""
    import pyarrow as pa

    def arrow_type(logical: str) -> pa.DataType:
        simple = {"string": pa.string(), "int": pa.int32(), "long": pa.int64(),
                  "timestamp": pa.timestamp("us", tz="UTC"), "date": pa.date32(),
                  "binary": pa.binary(), "boolean": pa.bool_(), "double": pa.float64()}
        if logical in simple:
            return simple[logical]
        match = _DECIMAL.fullmatch(logical)
        if match:
            return pa.decimal128(int(match[1]), int(match[2]))
        raise ValueError(f"unknown logical type {logical!r}")

    return pa.schema([pa.field(c.name, arrow_type(c.type), nullable=not c.required)
                      for c in load(name).columns])
