"""Rows of several small tables stored in one union table (pure DataFrame -> DataFrame functions).

A union spec (`schemas/*.json` with `union_of`) lets a micro-batch write the partial rows of every
speed view and its progress row in one Delta commit. `as_union_rows` shapes a member's rows into
the union's columns; `member_rows` reads them back out.
"""

from __future__ import annotations

from collections.abc import Callable

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
               .cast(schemas.spark_type(c.type)).alias(c.name)
               for c in schemas.load(union).columns]  # built once: py4j calls are not free

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
