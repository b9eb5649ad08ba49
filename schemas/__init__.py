"""Schemas as data: one JSON spec per table in this folder.

Spark `StructType`s, DuckDB DDL and expectation suites are derived from the specs here; nothing
infers the schema of a Kafka payload.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from pyspark.sql import types as T

_DECIMAL = re.compile(r"decimal\((\d+),(\d+)\)")


@dataclass(frozen=True)
class ColumnSpec:
    """One column: name, logical type, whether it is required (not null), description.

    Specs imported from a standard also keep the standard's own type (`source_type`, e.g. the
    CDM's `varchar(50)`) and the column a foreign key refers to (`references`, `table.column`).
    """

    name: str
    type: str
    required: bool
    description: str
    source_type: str | None = None
    references: str | None = None


@dataclass(frozen=True)
class TableSpec:
    """One table: its columns, primary key and layer."""

    name: str
    layer: str
    description: str
    columns: tuple[ColumnSpec, ...]
    primary_key: tuple[str, ...]
    partition_by: tuple[str, ...] = ()
    source_file: str | None = None
    optional: bool = False

    @property
    def column_names(self) -> list[str]:
        """Column names in order."""
        return [c.name for c in self.columns]


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
    return TableSpec(
        name=raw["name"],
        layer=raw["layer"],
        description=raw["description"],
        columns=tuple(ColumnSpec(c["name"], c["type"], c["required"], c["description"],
                                 c.get("source_type"), c.get("references"))
                      for c in raw["columns"]),
        primary_key=tuple(raw.get("primary_key", ())),
        partition_by=tuple(raw.get("partition_by", ())),
        source_file=raw.get("source_file"),
        optional=raw.get("optional", False),
    )


def spark_type(logical: str) -> T.DataType:
    """Spark type of a logical type (string, int, long, decimal(p,s), timestamp, date, ...)."""
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
