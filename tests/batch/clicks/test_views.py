import datetime as dt

from pyspark.testing import assertDataFrameEqual

from batch.clicks.views import article_views, daily_popularity

VIEWS_SCHEMA = "article_id string, session_id string, event_time timestamp"


def views(spark):
    t = dt.datetime
    rows = [
        ("A1", "S1", t(2026, 12, 1, 23, 59, 0)),
        ("A1", "S1", t(2026, 12, 1, 23, 59, 59, 999000)),  # same minute, same session
        ("A1", "S2", t(2026, 12, 1, 23, 59, 30)),
        ("A1", "S1", t(2026, 12, 2, 0, 0)),                 # the next minute, and day
        ("A2", "S1", t(2026, 12, 2, 0, 0, 1)),
    ]
    return spark.createDataFrame(rows, VIEWS_SCHEMA)


def test_article_views_are_per_minute_and_session(spark):
    t = dt.datetime
    expected = spark.createDataFrame(
        [("A1", t(2026, 12, 1, 23, 59), "S1", 2), ("A1", t(2026, 12, 1, 23, 59), "S2", 1),
         ("A1", t(2026, 12, 2, 0, 0), "S1", 1), ("A2", t(2026, 12, 2, 0, 0), "S1", 1)],
        "article_id string, view_minute timestamp, session_id string, view_count long")
    assertDataFrameEqual(views(spark).transform(article_views()), expected)


def test_daily_popularity_is_per_day_and_session(spark):
    expected = spark.createDataFrame(
        [("A1", dt.date(2026, 12, 1), "S1", 2), ("A1", dt.date(2026, 12, 1), "S2", 1),
         ("A1", dt.date(2026, 12, 2), "S1", 1), ("A2", dt.date(2026, 12, 2), "S1", 1)],
        "article_id string, view_date date, session_id string, view_count long")
    assertDataFrameEqual(views(spark).transform(daily_popularity()), expected)
