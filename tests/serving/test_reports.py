import datetime as dt

import duckdb
import pytest

from serving import reports


class DuckdbServing:
    """The two methods of `Serving` the reports use, over a plain DuckDB connection."""

    def __init__(self, con):
        self.con = con

    def refresh(self):
        pass

    def query(self, sql):
        return self.con.execute(sql).fetch_arrow_table()


@pytest.fixture
def con():
    connection = duckdb.connect()
    connection.execute("create schema quarantine; create schema omop")
    yield connection
    connection.close()


def test_quarantine_reasons_count_each_record_by_the_kind_of_its_first_reason(con):
    con.execute("create table quarantine.tolls_quarantine (reason varchar)")
    con.executemany("insert into quarantine.tolls_quarantine values (?)", [
        ["unknown plaza_id: P99"], ["unknown plaza_id: P98; amount is negative: -1"],
        ["duplicate: transaction_id T1 was already landed"],
        ["duplicate: transaction_id T2 repeats an earlier record of this micro-batch"],
        ["duplicate: transaction_id T3 was already landed"],
        ["record key is null (it must be the transaction_id)"]])
    result = reports.quarantine_reasons(DuckdbServing(con))
    assert result.to_dict("records") == [
        {"reason": "duplicate", "records": 3}, {"reason": "unknown plaza_id", "records": 2},
        {"reason": "record key is null (it must be the transaction_id)", "records": 1}]


def test_persons_are_grouped_by_decade_of_age_at_their_first_visit(con):
    con.execute("create table omop.person (person_id int, gender_source_value varchar, "
                "year_of_birth int)")
    con.execute("create table omop.visit_occurrence (person_id int, visit_start_date date)")
    con.executemany("insert into omop.person values (?, ?, ?)",
                    [[1, "F", 2100], [2, "M", 2091], [3, "F", 1800], [4, "F", 2099]])
    con.executemany("insert into omop.visit_occurrence values (?, ?)", [
        [1, dt.date(2105, 1, 1)], [1, dt.date(2160, 1, 1)],  # 5 at the first visit
        [2, dt.date(2150, 1, 1)],  # 59
        [3, dt.date(2100, 1, 1)],  # 300 (MIMIC's shifted age over 89)
        [4, dt.date(2100, 6, 1)]])  # 1
    result = reports.persons_by_gender_and_age(DuckdbServing(con))
    assert result.to_dict("records") == [
        {"gender": "F", "age_group": "00-09", "persons": 2},
        {"gender": "M", "age_group": "50-59", "persons": 1},
        {"gender": "F", "age_group": "90+", "persons": 1}]


def test_quarantine_reasons_of_another_domain_and_an_unknown_one(con):
    con.execute("create table quarantine.clicks_quarantine (reason varchar)")
    con.execute("insert into quarantine.clicks_quarantine values ('article_id is missing')")
    result = reports.quarantine_reasons(DuckdbServing(con), domain="clicks")
    assert result.to_dict("records") == [{"reason": "article_id is missing", "records": 1}]
    with pytest.raises(ValueError, match="unknown domain 'orders': one of tolls, clicks"):
        reports.quarantine_reasons(DuckdbServing(con), domain="orders")


def test_article_minutes_keep_the_top_articles_of_the_last_hours_of_views(con):
    con.execute("create table clicks_article_minute (article_id varchar, view_minute timestamp, "
                "view_count bigint, session_count bigint)")
    latest = dt.datetime(2026, 12, 3, 12, 0)
    con.executemany("insert into clicks_article_minute values (?, ?, ?, ?)", [
        ["A1", latest, 5, 2], ["A1", latest - dt.timedelta(minutes=30), 1, 1],
        ["A2", latest - dt.timedelta(minutes=59), 4, 4],
        ["A3", latest - dt.timedelta(minutes=1), 3, 1],
        ["A9", latest - dt.timedelta(hours=1), 100, 9]])  # before the last hour
    result = reports.article_minutes(DuckdbServing(con), top=2, hours=1)
    assert [(r["article_id"], r["view_minute"], r["view_count"])
            for r in result.to_dict("records")] == [
        ("A2", latest - dt.timedelta(minutes=59), 4), ("A1", latest - dt.timedelta(minutes=30), 1),
        ("A1", latest, 5)]


def test_daily_popularity_keeps_the_top_ranks_of_the_last_days(con):
    con.execute("create table clicks_article_daily (article_id varchar, view_date date, "
                "view_count bigint, session_count bigint, popularity_rank bigint)")
    day = dt.date(2026, 12, 3)
    con.executemany("insert into clicks_article_daily values (?, ?, ?, ?, ?)", [
        ["A1", day, 9, 3, 1], ["A2", day, 5, 2, 2], ["A3", day, 1, 1, 3],
        ["A2", day - dt.timedelta(days=1), 7, 2, 1],
        ["A1", day - dt.timedelta(days=2), 8, 8, 1]])  # outside the last two days
    result = reports.daily_popularity(DuckdbServing(con), limit=2, days=2)
    assert [(r["view_date"], r["popularity_rank"], r["article_id"])
            for r in result.to_dict("records")] == [
        (day - dt.timedelta(days=1), 1, "A2"), (day, 1, "A1"), (day, 2, "A2")]
