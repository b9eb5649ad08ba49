"""The domains lambdalake serves (tolls, clicks) and the names every part derives from them.

The streaming job (`speed.stream.StreamDomain`), the batch job (`batch.views_job.BatchDomain`),
the serving layer, `lambdalake status` and `lambdalake maintain` all take a domain's tables,
query and views from here, so each is named once. Nothing here imports Spark.
"""

from __future__ import annotations

from dataclasses import dataclass

from lambdalake.config import Settings


@dataclass(frozen=True)
class Domain:
    """A domain's names: its tables, streaming query, batch job and views."""

    name: str  # tolls, clicks: the prefix of its tables, query and topic setting
    batch_job: str  # the batch job's name (`lambdalake batch run <batch_job>`)
    batch_views: tuple[str, ...]  # the batch views its batch job publishes (merged when served)
    speed_views: tuple[str, ...]  # their speed parts: members of the speed rows table

    @property
    def query_name(self) -> str:
        """The streaming query's name (and its checkpoint folder)."""
        return f"{self.name}_stream"

    @property
    def landing(self) -> str:
        """The landing zone table."""
        return f"{self.name}_landing"

    @property
    def quarantine(self) -> str:
        """The quarantine table."""
        return f"{self.name}_quarantine"

    @property
    def speed_rows(self) -> str:
        """The union table of the speed views' partial rows and the progress rows."""
        return f"{self.name}_speed_rows"

    @property
    def progress(self) -> str:
        """The progress rows' table (stored in `speed_rows`)."""
        return f"{self.name}_stream_progress"

    @property
    def gaps(self) -> str:
        """Where the gaps Kafka's retention left are recorded."""
        return f"{self.name}_kafka_gaps"

    @property
    def stream_tables(self) -> tuple[str, ...]:
        """The tables the streaming job writes (an extension's aside)."""
        return (self.landing, self.quarantine, self.speed_rows, self.gaps)

    def topic(self, settings: Settings) -> str:
        """Its events topic (setting `topics.<name>_events`)."""
        return getattr(settings.topics, f"{self.name}_events")


TOLLS = Domain(
    name="tolls", batch_job="tolls-reports",
    batch_views=("tolls_customer_monthly_spend", "tolls_customer_spend_10m",
                 "tolls_plaza_revenue_30m", "tolls_daily_class_traffic"),
    speed_views=("speed_tolls_customer_spend_10m", "speed_tolls_plaza_revenue_30m",
                 "speed_tolls_daily_class_traffic"),
)
CLICKS = Domain(
    name="clicks", batch_job="clicks-reports",
    batch_views=("clicks_article_views", "clicks_daily_popularity"),
    speed_views=("speed_clicks_article_views",),
)
DOMAINS = (TOLLS, CLICKS)


def same_names(what: str, given: tuple[str, ...], declared: tuple[str, ...]) -> None:
    """Raise ValueError unless `given` (a job's transformations) names exactly `declared`."""
    if tuple(given) != tuple(declared):
        raise ValueError(f"{what}: {', '.join(given)} differ from the domain's "
                         f"{', '.join(declared)} (lambdalake/domains.py)")
