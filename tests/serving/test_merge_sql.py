import datetime as dt
from decimal import Decimal

import duckdb
import pytest

import schemas
from serving.engine import MERGED_VIEWS, relation_name, render_view_sql

T0 = dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for layer in ("batch", "speed"):
        con.execute(f"CREATE SCHEMA {layer}")
    for table in ("tolls_customer_monthly_spend", "tolls_plaza_revenue_30m",
                  "speed_tolls_customer_spend_10m", "speed_tolls_plaza_revenue_30m"):
        con.execute(schemas.duckdb_ddl(table, relation_name(table)))
    yield con
    con.close()


def set_cutover(con, landing_version):
    con.execute("CREATE OR REPLACE VIEW batch.cutover AS SELECT * FROM (VALUES "
                f"('tolls_customer_monthly_spend', {landing_version}), "
                f"('tolls_plaza_revenue_30m', {landing_version})) t(view_name, landing_version)")


def merged(con, view):
    return sorted(con.execute(render_view_sql(view)).fetchall())


def test_speed_rows_at_or_before_the_cutover_do_not_count(con):
    end = T0 + dt.timedelta(minutes=10)
    con.execute("INSERT INTO batch.tolls_customer_monthly_spend VALUES "
                "('C1', DATE '2026-11-01', 2, 10.00)")
    con.executemany("INSERT INTO speed.tolls_customer_spend_10m VALUES (?, 'C1', ?, ?, ?, ?)", [
        (1, T0, end, 1, Decimal("4.00")),  # covered by the batch run (cut-over 2)
        (2, T0, end, 1, Decimal("6.00")),  # covered
        (3, T0, end, 1, Decimal("2.50")),  # after the cut-over
        (4, T0 + dt.timedelta(days=30), end + dt.timedelta(days=30), 2, Decimal("5.00")),
    ])
    set_cutover(con, 2)
    assert merged(con, "tolls_customer_monthly_spend") == [
        ("C1", dt.date(2026, 11, 1), 3, Decimal("12.50")),
        ("C1", dt.date(2026, 12, 1), 2, Decimal("5.00")),
    ]
    set_cutover(con, -1)  # no batch run yet: every speed row counts (and the batch part too)
    assert merged(con, "tolls_customer_monthly_spend")[0] == (
        "C1", dt.date(2026, 11, 1), 5, Decimal("22.50"))


def test_plaza_merge_adds_batch_and_speed_parts(con):
    con.execute("INSERT INTO batch.tolls_plaza_revenue_30m VALUES ('P1', ?, 3, 7.50)", [T0])
    con.executemany("INSERT INTO speed.tolls_plaza_revenue_30m VALUES (?, ?, ?, ?, ?)", [
        (5, "P1", T0, 1, Decimal("2.50")),
        (6, "P2", T0, 1, Decimal("4.00")),
        (5, "P1", T0 + dt.timedelta(minutes=30), 2, Decimal("8.00")),
    ])
    set_cutover(con, 5)
    assert merged(con, "tolls_plaza_revenue_30m") == [
        ("P1", T0, 3, Decimal("7.50")),
        ("P2", T0, 1, Decimal("4.00")),
    ]


def test_every_merged_view_has_its_batch_views_columns():
    con = duckdb.connect()
    for layer in ("batch", "speed"):
        con.execute(f"CREATE SCHEMA {layer}")
    for table in schemas.available():
        if schemas.load(table).layer in ("batch", "speed"):
            con.execute(schemas.duckdb_ddl(table, relation_name(table)))
    con.execute("CREATE VIEW batch.cutover AS SELECT 'x' AS view_name, -1 AS landing_version")
    for view in MERGED_VIEWS:
        columns = [d[0] for d in con.execute(render_view_sql(view)).description]
        assert columns == schemas.load(view).column_names


def test_report_freshness_lists_the_tolls_views_only(con):
    con.execute(schemas.duckdb_ddl("batch_runs", "batch.runs"))
    con.execute(schemas.duckdb_ddl("tolls_stream_progress", "speed.tolls_stream_progress"))
    con.execute("CREATE VIEW batch.cutover AS SELECT * FROM (VALUES "
                "('tolls_plaza_revenue_30m', 4), ('clicks_article_views', 7)"
                ") t(view_name, landing_version)")
    rows = con.execute(f"select report, batch_cutover_landing_version from "
                       f"({render_view_sql('tolls_report_freshness')})").fetchall()
    assert rows == [("tolls_plaza_revenue_30m", 4)]
