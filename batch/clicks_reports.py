"""The clicks batch job: recompute the clickstream batch views from the whole landing zone.

The job is `batch.views_job`'s, for the clickstream domain: the article views (per article,
minute and session) and the daily popularity (per article, day and session) of
`batch/clicks/views.py` over `clicks_landing`, published in `batch_runs` with their cut-over;
the speed rows they cover (`speed.clicks_speed_rows`) are pruned one run later.

Usage (local, offline, with the JVM cache from `make setup`):
    lambdalake batch run clicks-reports
Usage on a cluster:
    spark-submit --master yarn \
      --packages io.delta:delta-spark_2.12:3.3.2,org.apache.spark:spark-sql-kafka-0-10_2.12:3.5.7 \
      --py-files dist/lambdalake-jobs.zip batch/clicks_reports.py
"""

from __future__ import annotations

import sys

from batch import views_job
from batch.clicks.views import article_views, daily_popularity
from batch.views_job import BatchDomain
from lambdalake import domains

CLICKS_REPORTS = BatchDomain(
    names=domains.CLICKS,
    views={"clicks_article_views": article_views(),
           "clicks_daily_popularity": daily_popularity()},
    pre_shuffle={"clicks_article_views": ("article_id",)},
)


def main(argv: list[str] | None = None) -> int:
    """Entry point for spark-submit and `lambdalake batch run clicks-reports`."""
    return views_job.main(CLICKS_REPORTS, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
