"""The clicks streaming job: Kafka -> landing zone + quarantine + the trending speed view.

The job is `speed.stream`'s, for the clickstream domain: page views (`schemas/clicks_event.json`,
validated by the spec alone), landed in `clicks_landing`, rejected ones in `clicks_quarantine`,
and the partial rows of the article views (per article, minute and session,
`batch/clicks/views.py`) with each micro-batch's progress row in `speed.clicks_speed_rows`.

Usage (local, offline, with the JVM cache from `make setup`):
    lambdalake speed run --domain clicks [--until-idle]
Usage on a cluster:
    spark-submit --master yarn \\
      --packages io.delta:delta-spark_2.12:3.3.2,org.apache.spark:spark-sql-kafka-0-10_2.12:3.5.7 \\
      --conf spark.executor.extraJavaOptions=-XX:-DontCompileHugeMethods \\
      --py-files dist/lambdalake-jobs.zip speed/clicks_stream.py [--until-idle]
"""

from __future__ import annotations

import sys

from batch.clicks.views import article_views
from lambdalake import domains
from speed import stream
from speed.stream import StreamDomain
from speed.validate import EventRules

CLICKS = StreamDomain(
    names=domains.CLICKS, event_spec="clicks_event", log_prefix="clicks",
    rules=lambda validation, known: EventRules("clicks_event", validation, known),
    speed_views={"speed_clicks_article_views": article_views},
)


def main(argv: list[str] | None = None) -> int:
    """Entry point for spark-submit and `lambdalake speed run --domain clicks`."""
    return stream.main(CLICKS, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
