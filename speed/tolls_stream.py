"""The tolls streaming job: Kafka -> landing zone + quarantine + speed views + alerts.

The job is `speed.stream`'s, for the tolls domain: toll events (`schemas/tolls_event.json`,
plazas from the plazas table, the amount bounded by `validation.max_amount`), the three speed
views of `batch/tolls/views.py` in `speed.tolls_speed_rows`, and threshold alerts raised from
the same partial rows (`speed.tolls.alerting`), stored in `tolls_alerts` and sent to the alerts
topic.

Usage (local, offline, with the JVM cache from `make setup`):
    lambdalake speed run [--until-idle]
Usage on a cluster:
    spark-submit --master yarn \\
      --packages io.delta:delta-spark_2.12:3.3.2,org.apache.spark:spark-sql-kafka-0-10_2.12:3.5.7 \\
      --conf spark.executor.extraJavaOptions=-XX:-DontCompileHugeMethods \\
      --py-files dist/lambdalake-jobs.zip speed/tolls_stream.py [--until-idle]
"""

from __future__ import annotations

import sys

from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery

from batch.tolls.views import customer_spend_10m, daily_class_traffic, plaza_revenue_30m
from lambdalake import domains
from lambdalake.config import Settings
from speed import stream
from speed.stream import StreamDomain, StreamProcessor, StreamTotals
from speed.tolls.alerting import ALERTS, TollsAlerts
from speed.tolls.validate import toll_rules

TOLLS = StreamDomain(
    names=domains.TOLLS, event_spec="tolls_event", log_prefix="speed",
    rules=lambda validation, known: toll_rules(validation, known.get("plaza_id")),
    speed_views={
        "speed_tolls_customer_spend_10m": customer_spend_10m,
        "speed_tolls_plaza_revenue_30m": plaza_revenue_30m,
        "speed_tolls_daily_class_traffic": daily_class_traffic,
    },
    extension=TollsAlerts,
    extra_topics=lambda settings: (settings.topics.tolls_alerts,),
)
QUERY_NAME = domains.TOLLS.query_name
TABLES = (*domains.TOLLS.stream_tables, ALERTS)
__all__ = ["QUERY_NAME", "TABLES", "TOLLS", "StreamTotals", "main", "run", "start_query"]


def run(spark: SparkSession, settings: Settings, until_idle: bool) -> StreamTotals:
    """Run the tolls streaming job (`speed.stream.run`)."""
    return stream.run(TOLLS, spark, settings, until_idle)


def start_query(spark: SparkSession, settings: Settings, until_idle: bool,
                totals: StreamTotals) -> tuple[StreamingQuery, StreamProcessor]:
    """Start the tolls streaming query (`speed.stream.start_query`)."""
    return stream.start_query(TOLLS, spark, settings, until_idle, totals)


def main(argv: list[str] | None = None) -> int:
    """Entry point for spark-submit and `lambdalake speed run`."""
    return stream.main(TOLLS, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
