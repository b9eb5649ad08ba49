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


def test_prompt_on_a_terminal_takes_multi_line_statements_and_keeps_a_history(tmp_path):
    import os
    import pty
    import select
    import sys
    import time

    env = {**os.environ, "LAMBDALAKE_LAKE_ROOT": str(tmp_path / "lake"),
           "LAMBDALAKE_STATE_DIR": str(tmp_path / "state"),
           "LAMBDALAKE_CONFIG": str(tmp_path / "empty.toml"), "TERM": "dumb"}
    (tmp_path / "empty.toml").write_text("")
    pid, fd = pty.fork()
    if pid == 0:  # the child: `lambdalake query` on a terminal
        os.execve(sys.executable, [sys.executable, "-m", "lambdalake.cli", "query"], env)

    def read_until(marker, timeout=60):
        out, end = b"", time.monotonic() + timeout
        while marker not in out and time.monotonic() < end:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    out += os.read(fd, 65536)
                except OSError:
                    break
        return out.decode(errors="replace")

    try:
        assert "lambdalake> " in read_until(b"lambdalake> ")
        os.write(fd, b"select 40 + 2\n")
        assert "...> " in read_until(b"...> ")  # the statement goes on
        os.write(fd, b"  as answer;\n")
        shown = read_until(b"lambdalake> ")
        assert "answer" in shown and "42" in shown and "(1 row)" in shown
        os.write(fd, b"\x04")  # Ctrl-D leaves
        read_until(b"\x00", timeout=10)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    history = (tmp_path / "state" / "query_history").read_text().splitlines()
    assert history[-2:] == ["select 40 + 2", "  as answer;"]
