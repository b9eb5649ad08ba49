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
