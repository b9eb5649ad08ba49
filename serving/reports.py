"""The analysts' reports: named queries on the serving layer, each returning a pandas DataFrame.

The notebooks (`notebooks/*.ipynb`) call these and plot the result with `serving.figures`; they
hold no SQL of their own, so a query is written, tested and reused once (the demo prints some of
the same reports). Tolls and clicks reports read the merged views (batch + speed) and the raw
layers; clinical ones read the OMOP CDM tables (`omop.*`). Money comes as floats, for plotting.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from lambdalake.domains import DOMAINS, Domain
from serving.engine import Serving

# The kind of a record's first quarantine reason: `unknown plaza_id: P99; ...` ->
# `unknown plaza_id`, `duplicate: transaction_id T1 was already landed` -> `duplicate`.
_REASON_KIND = "split_part(split_part(reason, '; ', 1), ': ', 1)"

# ICD-9 427.31 as MIMIC-III writes it
ATRIAL_FIBRILLATION = "42731"

COHORT_SQL = f"""
with atrial_fibrillation as (
    select distinct person_id
    from omop.condition_occurrence
    where condition_source_value = '{ATRIAL_FIBRILLATION}'
)
select
    person.gender_source_value as gender,
    count(*) as persons,
    round(avg(year(period.observation_period_start_date) - person.year_of_birth), 1)
        as mean_age_at_first_visit,
    count(death.person_id) as died
from atrial_fibrillation
join omop.person as person using (person_id)
join omop.observation_period as period using (person_id)
left join omop.death as death using (person_id)
group by 1
order by 1
"""


def _frame(serving: Serving, sql: str) -> pd.DataFrame:
    """The query's rows after a refresh; DECIMAL columns (money) as floats, which plot (the
    exact values stay in the views)."""
    serving.refresh()
    table = serving.query(sql)
    floats = pa.schema([pa.field(f.name, pa.float64()) if pa.types.is_decimal(f.type) else f
                        for f in table.schema])
    return table.cast(floats).to_pandas()


def plaza_revenue(serving: Serving) -> pd.DataFrame:
    """Revenue per plaza per 30-minute bucket (merged view): plaza_id, bucket_start, revenue."""
    return _frame(serving, "select plaza_id, bucket_start, vehicle_count, revenue "
                           "from tolls_plaza_revenue_30m order by bucket_start, plaza_id")


def spend_against_threshold(serving: Serving) -> pd.DataFrame:
    """This month's spend of every customer with a threshold, and its share of the threshold."""
    return _frame(serving, "select customer_id, spend, monthly_threshold, is_over_threshold, "
                           "spend / monthly_threshold as share_of_threshold "
                           "from tolls_customer_spend_this_month "
                           "where monthly_threshold > 0 order by share_of_threshold desc")


def alerts_over_time(serving: Serving) -> pd.DataFrame:
    """Alerts per 10 minutes of the crossing transaction's event time, and when they were
    raised: bucket_start, alerts, first_alerted_at, last_alerted_at."""
    return _frame(serving, "select time_bucket(interval 10 minutes, event_time) as bucket_start, "
                           "count(*) as alerts, min(alerted_at) as first_alerted_at, "
                           "max(alerted_at) as last_alerted_at "
                           "from speed.tolls_alerts group by 1 order by 1")


def _domain(name: str) -> Domain:
    """The domain called `name` (tolls, clicks), or a ValueError that lists them."""
    for domain in DOMAINS:
        if domain.name == name:
            return domain
    raise ValueError(f"unknown domain {name!r}: one of "
                     f"{', '.join(d.name for d in DOMAINS)}")


def quarantine_reasons(serving: Serving, domain: str = "tolls") -> pd.DataFrame:
    """Quarantined records of a domain (tolls, clicks) per kind of their first reason
    (duplicates included): reason, records."""
    return _frame(serving, f"select {_REASON_KIND} as reason, count(*) as records "
                           f"from quarantine.{_domain(domain).quarantine} "
                           "group by 1 order by 2 desc, 1")


def micro_batches(serving: Serving, domain: str = "tolls") -> pd.DataFrame:
    """One row per micro-batch of a domain's streaming job (tolls, clicks): where its records
    went, when it began, how long it took (`processing_seconds`: until its speed rows were
    ready to commit; null for micro-batches of a job older than the column), the seconds since
    the one before began, and how long its events had waited in Kafka (p50 and max of
    ingested_at - Kafka timestamp)."""
    names = _domain(domain)
    return _frame(serving, f"""
        with progress as (
            select ingest_batch_id, processed_at, processing_seconds, read_count,
                   landed_count, quarantined_count, duplicate_count, landing_version
            from speed.{names.progress}
        ),
        waits as (
            select ingest_batch_id,
                   epoch(ingested_at) - epoch(kafka_timestamp) as wait_seconds
            from landing.{names.landing}
        ),
        delays as (
            select ingest_batch_id, quantile_cont(wait_seconds, 0.5) as kafka_wait_p50_seconds,
                   max(wait_seconds) as kafka_wait_max_seconds
            from waits
            group by 1
        ),
        final as (
            select progress.*,
                   epoch(processed_at) - epoch(lag(processed_at) over (
                       order by ingest_batch_id)) as seconds_since_previous,
                   delays.kafka_wait_p50_seconds, delays.kafka_wait_max_seconds
            from progress
            left join delays using (ingest_batch_id)
        )
        select * from final order by ingest_batch_id
    """)


def trending_articles(serving: Serving, limit: int = 10) -> pd.DataFrame:
    """The `limit` trending articles (merged view `clicks_trending_10m`: the current minute and
    the nine before it, by event time): trending_rank, article_id, view_count, session_count,
    window_start, window_end."""
    return _frame(serving, f"select * from clicks_trending_10m "
                           f"where trending_rank <= {int(limit)} order by trending_rank")


def article_minutes(serving: Serving, top: int = 6, hours: int = 2) -> pd.DataFrame:
    """Views and sessions per minute of the `top` articles by views over the last `hours` hours
    of views (up to the latest minute viewed; merged view `clicks_article_minute`):
    article_id, view_minute, view_count, session_count."""
    return _frame(serving, f"""
        with minutes as (
            select article_id, view_minute, view_count, session_count
            from clicks_article_minute
        ),
        recent as (
            select *
            from minutes
            where view_minute > (select max(view_minute) from minutes)
                                - interval {int(hours)} hours
        ),
        leaders as (
            select article_id
            from recent
            group by article_id
            order by sum(view_count) desc, article_id
            limit {int(top)}
        ),
        final as (
            select recent.*
            from recent
            join leaders using (article_id)
        )
        select * from final order by view_minute, article_id
    """)


def daily_popularity(serving: Serving, limit: int = 10, days: int = 7) -> pd.DataFrame:
    """The `limit` most viewed articles of each of the last `days` days with views (merged view
    `clicks_article_daily`, days in UTC): view_date, popularity_rank, article_id, view_count,
    session_count."""
    return _frame(serving, f"""
        with daily as (
            select view_date, popularity_rank, article_id, view_count, session_count
            from clicks_article_daily
        ),
        final as (
            select *
            from daily
            where popularity_rank <= {int(limit)}
              and view_date > (select max(view_date) from daily) - {int(days)}
        )
        select * from final order by view_date, popularity_rank
    """)


def report_freshness(serving: Serving) -> pd.DataFrame:
    """Per merged report: its batch cut-over, and how old its batch and speed parts are."""
    return _frame(serving, "select * from tolls_report_freshness order by report")


def persons_by_gender_and_age(serving: Serving) -> pd.DataFrame:
    """Persons per gender and age group (decades, 90+) at their first visit."""
    return _frame(serving, """
        with first_visit as (
            select person_id, min(visit_start_date) as visit_date
            from omop.visit_occurrence
            group by 1
        ),
        ages as (
            select person.gender_source_value as gender,
                   least(year(first_visit.visit_date) - person.year_of_birth, 90) as age
            from omop.person as person
            join first_visit using (person_id)
        ),
        final as (
            select gender,
                   case when age >= 90 then '90+'
                        else lpad(cast(age // 10 * 10 as varchar), 2, '0') || '-'
                             || lpad(cast(age // 10 * 10 + 9 as varchar), 2, '0')
                   end as age_group,
                   count(*) as persons
            from ages
            group by all
        )
        select * from final order by age_group, gender
    """)


def visits_per_month(serving: Serving) -> pd.DataFrame:
    """Visits started per month: month, visits (MIMIC-III dates are shifted into the future)."""
    return _frame(serving, "select date_trunc('month', visit_start_date) as month, "
                           "count(*) as visits from omop.visit_occurrence group by 1 order by 1")


def _top_concepts(table: str, concept: str, source: str, limit: int) -> str:
    return f"""
        with events as (
            select {concept} as concept_id, {source} as source_value
            from omop.{table}
        ),
        named as (
            select events.concept_id,
                   case when events.concept_id = 0 or concept.concept_name is null
                        then 'source: ' || coalesce(events.source_value, '(none)')
                        else concept.concept_name
                   end as label
            from events
            left join omop.concept as concept using (concept_id)
        )
        select label, concept_id, count(*) as events
        from named
        group by all
        order by events desc, label
        limit {limit}
    """


def top_conditions(serving: Serving, limit: int = 15) -> pd.DataFrame:
    """The most frequent conditions by concept (their source value where the concept is 0)."""
    return _frame(serving, _top_concepts("condition_occurrence", "condition_concept_id",
                                         "condition_source_value", limit))


def top_drugs(serving: Serving, limit: int = 15) -> pd.DataFrame:
    """The most frequent drugs by concept (their source value where the concept is 0)."""
    return _frame(serving, _top_concepts("drug_exposure", "drug_concept_id",
                                         "drug_source_value", limit))


def atrial_fibrillation_cohort(serving: Serving) -> pd.DataFrame:
    """The atrial fibrillation cohort (ICD-9 427.31) per gender: persons, mean age at their
    first visit, deaths."""
    return _frame(serving, COHORT_SQL)
