import duckdb
import pytest

from serving.console import TABLES_SQL, run_console, statements
from serving.output import as_csv


def test_statements_span_lines_and_end_at_a_semicolon_outside_quotes():
    lines = ["select 1;", "", "select 'semi;", "colon' as s,", "  2 -- a comment;", "  as n;",
             ".tables", "select 'unfinished'"]
    assert list(statements(lines)) == [
        "select 1;", "select 'semi;\ncolon' as s,\n  2 -- a comment;\n  as n;", ".tables",
        "select 'unfinished'"]


@pytest.fixture
def con():
    connection = duckdb.connect()
    connection.execute("create schema speed; create table speed.t (x int); "
                       "insert into speed.t values (1), (2)")
    yield connection
    connection.close()


def test_console_runs_each_statement_and_goes_on_after_an_error(con):
    out: list[str] = []
    failed = run_console(lambda sql: con.execute(sql).fetch_arrow_table(), as_csv,
                         statements(["select sum(x) as total", "from speed.t;",
                                     "select * from nowhere;", ".nope", "select 3 as n;",
                                     ".quit", "select 4;"]), out.append)
    assert failed == 2
    assert out[0] == "total\n3"
    assert out[1].startswith("error: Catalog Error") and "\n" not in out[1]
    assert out[2] == "error: unknown command .nope (try .help)"
    assert out[3] == "n\n3"
    assert len(out) == 4  # nothing after .quit


def test_tables_command_lists_relations_but_not_internal_ones(con):
    con.execute("create view speed._copy_of_t as select 1")
    rows = con.execute(TABLES_SQL).fetchall()
    assert ("speed", "t", "base table") in rows
    assert all(not name.startswith("_") for _, name, _ in rows)
