"""Rows of several small tables stored in one union table (pure DataFrame -> DataFrame functions).

A union spec (`schemas/*.json` with `union_of`) lets a micro-batch write the partial rows of every
speed view and its progress row in one Delta commit. `as_union_rows` shapes a member's rows into
the union's columns; `member_rows` reads them back out. `partial_rows_less` works on such rows
already collected as Arrow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

import schemas


def as_union_rows(member: str) -> Callable[[DataFrame], DataFrame]:
    """Return a transformation giving rows of table `member` the columns of the union table that
    stores it: `view_name` = member, the member's columns, null in the other members' columns."""
    union = schemas.stored_in(member)
    if union is None:
        raise ValueError(f"{member} is not stored in a union table")
    own = set(schemas.load(member).column_names)
    columns = [F.lit(member).alias(c.name) if c.name == "view_name"
               else (F.col(c.name) if c.name in own else F.lit(None))
               .cast(schemas.spark_type(c.type).simpleString()).alias(c.name)
               for c in schemas.load(union).columns]
    # built once, and cast to the type's name: py4j calls are not free (a cast to a DataType
    # takes several, to its name one)

    def transform(df: DataFrame) -> DataFrame:
        return df.select(*columns)

    return transform


def member_rows(member: str) -> Callable[[DataFrame], DataFrame]:
    """Return a transformation keeping the union table's rows of `member`, in its columns."""

    columns = [F.col(c.name).cast(schemas.spark_type(c.type)) for c in schemas.load(member).columns]
    is_member = F.col("view_name") == member

    def transform(df: DataFrame) -> DataFrame:
        return df.where(is_member).select(*columns)

    return transform


def partial_rows_less(rows: pa.Table, removed: pa.Table, members: Iterable[str]) -> pa.Table:
    """The partial rows `rows` of speed views `members` (in their union table's columns, as
    Arrow) less `removed`, the same views' partial rows over some of the same events: by key,
    each member's measures (`TableSpec.measures`, which the serving layer adds up) minus those
    of `removed`, and a key left with no event (every measure 0) dropped. Partial rows being
    additive, this is the partial rows of the events less those, computed without them."""
    measures: set[str] = set()
    keys: set[str] = set()
    for member in members:
        spec = schemas.load(member)
        own = {c.name for c in spec.measures}
        measures |= own
        keys |= set(spec.column_names) - own
    if measures & keys:
        raise ValueError(f"columns that are a measure of one view and a key of another: "
                         f"{sorted(measures & keys)}")
    names = rows.schema.names
    summed = [n for n in names if n in measures]
    grouped = [n for n in names if n not in measures]
    negated = removed.select(names).cast(rows.schema)
    for name in summed:
        negated = negated.set_column(names.index(name), rows.schema.field(name),
                                     pc.negate(negated.column(name)))
    totals = (pa.concat_tables([rows, negated]).group_by(grouped, use_threads=False)
              .aggregate([(name, "sum") for name in summed])
              .rename_columns([*grouped, *summed]).select(names))
    left = None
    for name in summed:
        some = pc.fill_null(pc.not_equal(totals.column(name), 0), False)
        left = some if left is None else pc.or_(left, some)
    return (totals if left is None else totals.filter(left)).cast(rows.schema)
