"""Reports computed directly from events with DuckDB: the ground truth the merged views must equal.

This is deliberately independent of the Spark transformations: plain SQL over the accepted events
(as the generator made them), used by the demo's `check:` line and by the tests.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
import pyarrow as pa

import schemas

TOLLS_REPORT_SQL = {
    "tolls_customer_monthly_spend": """
        select customer_id, cast(date_trunc('month', event_time) as date) as month,
               count(*) as transaction_count, cast(sum(amount) as decimal(18,2)) as spend
        from events group by all""",
    "tolls_customer_spend_10m": """
        select customer_id, time_bucket(interval 10 minutes, event_time) as window_start,
               time_bucket(interval 10 minutes, event_time) + interval 10 minutes as window_end,
               count(*) as transaction_count, cast(sum(amount) as decimal(18,2)) as spend
        from events group by all""",
    "tolls_daily_class_traffic": """
        select cast(event_time as date) as day, vehicle_class, count(*) as vehicle_count,
               cast(sum(amount) as decimal(18,2)) as revenue
        from events group by all""",
    "tolls_plaza_revenue_30m": """
        select plaza_id, time_bucket(interval 30 minutes, event_time) as bucket_start,
               count(*) as vehicle_count, cast(sum(amount) as decimal(18,2)) as revenue
        from events group by all""",
}


CLICKS_REPORT_SQL = {
    "clicks_article_views": """
        select article_id, date_trunc('minute', event_time) as view_minute, session_id,
               count(*) as view_count
        from events group by all""",
    "clicks_daily_popularity": """
        select article_id, cast(event_time as date) as view_date, session_id,
               count(*) as view_count
        from events group by all""",
    "clicks_article_minute": """
        select article_id, date_trunc('minute', event_time) as view_minute,
               count(*) as view_count, count(distinct session_id) as session_count
        from events group by all""",
    "clicks_article_daily": """
        select *, row_number() over (partition by view_date order by view_count desc,
                                     session_count desc, article_id) as popularity_rank
        from (select article_id, cast(event_time as date) as view_date,
                     count(*) as view_count, count(distinct session_id) as session_count
              from events group by all)""",
}
# the reports of each domain, by the spec of its events
REPORT_SQL = {"tolls_event": TOLLS_REPORT_SQL, "clicks_event": CLICKS_REPORT_SQL}


def events_table(events: Iterable[dict], spec: str = "tolls_event") -> pa.Table:
    """Arrow table of events (dicts with the event fields) in the schema of event spec `spec`."""
    return pa.Table.from_pylist(list(events), schema=schemas.arrow_schema(spec))


def expected_reports(events: Iterable[dict], spec: str = "tolls_event"
                     ) -> dict[str, set[tuple]]:
    """Every merged report of the domain whose events are `spec`'s, as a set of rows, computed
    by DuckDB over `events`."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("events", events_table(events, spec))
        return {name: set(con.execute(sql).fetchall())
                for name, sql in REPORT_SQL[spec].items()}
    finally:
        con.close()


def differences(expected: dict[str, set[tuple]], actual: dict[str, set[tuple]]) -> list[str]:
    """Human-readable differences between expected and actual report rows (empty if equal)."""
    out = []
    for name, rows in expected.items():
        got = actual.get(name, set())
        missing, extra = rows - got, got - rows
        if missing or extra:
            out.append(f"{name}: {len(missing)} expected rows missing, {len(extra)} unexpected "
                       f"(e.g. missing {sorted(missing)[:2]}, unexpected {sorted(extra)[:2]})")
    return out
