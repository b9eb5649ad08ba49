"""The clickstream views, as pure DataFrame -> DataFrame transformations over landed page views.

The batch job applies them to the whole landing zone; the streaming job applies `article_views`
to each micro-batch to get the speed view's partial rows. Both keep one row per session, not a
count of distinct sessions: distinct counts do not add up across parts, session rows do, so a
merged query counts distinct sessions over any window exactly. Time buckets are by event time,
in UTC.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def article_views(by: Sequence[str] = ()) -> Callable[[DataFrame], DataFrame]:
    """Page views per article per minute per session (`view_count`)."""

    def transform(events: DataFrame) -> DataFrame:
        return (events.groupBy(*by, "article_id",
                               F.date_trunc("minute", "event_time").alias("view_minute"),
                               "session_id")
                .agg(F.count(F.lit(1)).alias("view_count")))

    return transform


def daily_popularity(by: Sequence[str] = ()) -> Callable[[DataFrame], DataFrame]:
    """Page views per article per day (UTC) per session (`view_count`)."""

    def transform(events: DataFrame) -> DataFrame:
        return (events.groupBy(*by, "article_id", F.to_date("event_time").alias("view_date"),
                               "session_id")
                .agg(F.count(F.lit(1)).alias("view_count")))

    return transform
