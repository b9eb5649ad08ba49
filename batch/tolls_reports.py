"""The tolls batch job: recompute the tolls batch views from the whole landing zone, atomically.

The job is `batch.views_job`'s, for the tolls domain: the four views of `batch/tolls/views.py`
over `tolls_landing`, published in `batch_runs` with their cut-over; the speed rows they cover
(`speed.tolls_speed_rows`) are pruned one run later.

Usage (local, offline, with the JVM cache from `make setup`):
    lambdalake batch run tolls-reports
Usage on a cluster:
    spark-submit --master yarn \
      --packages io.delta:delta-spark_2.12:3.3.2,org.apache.spark:spark-sql-kafka-0-10_2.12:3.5.7 \
      --py-files dist/lambdalake-jobs.zip batch/tolls_reports.py
"""

from __future__ import annotations

import sys

from pyspark.sql import SparkSession

from batch import views_job
from batch.tolls.views import (
    customer_monthly_spend,
    customer_spend_10m,
    daily_class_traffic,
    plaza_revenue_30m,
)
from batch.views_job import BatchDomain, BatchRun
from lambdalake import domains
from lambdalake.config import Settings

TOLLS_REPORTS = BatchDomain(
    names=domains.TOLLS,
    views={
        "tolls_customer_monthly_spend": customer_monthly_spend(),
        "tolls_customer_spend_10m": customer_spend_10m(),
        "tolls_plaza_revenue_30m": plaza_revenue_30m(),
        "tolls_daily_class_traffic": daily_class_traffic(),
    },
    # about as many groups as events (10M events: the 10-minute view 22 s -> 18.6 s,
    # BENCHMARKS.md)
    pre_shuffle={"tolls_customer_spend_10m": ("customer_id",)},
)
BATCH_VIEWS = TOLLS_REPORTS.views


def run(spark: SparkSession, settings: Settings) -> BatchRun:
    """Recompute and publish every tolls batch view (`batch.views_job.run`)."""
    return views_job.run(TOLLS_REPORTS, spark, settings)


def main(argv: list[str] | None = None) -> int:
    """Entry point for spark-submit and `lambdalake batch run tolls-reports`."""
    return views_job.main(TOLLS_REPORTS, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
