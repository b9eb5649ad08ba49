"""The batch job's pruning of speed rows looks at its own domain's runs only."""

import datetime as dt

from pyspark.sql import functions as F

import schemas
from batch.clicks_reports import CLICKS_REPORTS
from batch.tolls_reports import TOLLS_REPORTS
from batch.views_job import prune_speed_views
from lambdalake import lake


def publish(spark, settings, views, landing_version, minute):
    at = dt.datetime(2026, 12, 2, 8, minute, tzinfo=dt.timezone.utc)
    rows = [(f"run-{views[0]}-{minute}", view, 1, landing_version, 10, at, at) for view in views]
    spark.createDataFrame(rows, schemas.spark_schema("batch_runs")).write.format(
        "delta").mode("append").save(lake.ensure_table(spark, settings, "batch_runs"))


def test_a_domains_prune_ignores_the_other_domains_runs(spark, settings):
    path = lake.ensure_table(spark, settings, "clicks_speed_rows")
    rows = [{"view_name": "speed_clicks_article_views", "landing_version": v} for v in (3, 5, 8)]
    rows.append({"view_name": "clicks_stream_progress", "landing_version": 3})
    spark.createDataFrame(rows, schemas.spark_schema("clicks_speed_rows")).write.format(
        "delta").mode("append").save(path)
    clicks, tolls = list(CLICKS_REPORTS.views), list(TOLLS_REPORTS.views)
    publish(spark, settings, clicks, 4, 0)    # the clicks run before the latest: cut-over 4
    publish(spark, settings, tolls, 40, 1)    # tolls runs, later, with other cut-overs
    publish(spark, settings, clicks, 6, 2)    # the latest clicks run
    publish(spark, settings, tolls, 90, 3)

    assert prune_speed_views(CLICKS_REPORTS, spark, settings) == 4
    left = (spark.read.format("delta").load(path)
            .select("view_name", "landing_version").orderBy("landing_version", "view_name"))
    assert [tuple(r) for r in left.collect()] == [
        ("clicks_stream_progress", 3), ("speed_clicks_article_views", 5),
        ("speed_clicks_article_views", 8)]
    assert left.where(F.col("view_name") == "clicks_stream_progress").count() == 1
