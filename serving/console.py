"""`lambdalake query` with no SQL: an interactive SQL prompt on the serving layer.

Statements end with `;` and may span lines; `.tables` lists the relations, `.help` the
commands, `.quit` (or Ctrl-D) leaves. On a terminal, lines are edited with readline and kept in
a history file; with piped input (`lambdalake query < report.sql`) the statements are run in
order with no prompt. Every statement first brings the serving layer up to date, so a prompt
left open sees new micro-batches and batch runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pyarrow as pa

PROMPT = "lambdalake> "
CONTINUATION = "       ...> "
TABLES_SQL = ("SELECT table_schema AS schema, table_name AS name, lower(table_type) AS kind "
              "FROM information_schema.tables WHERE table_schema NOT LIKE '\\_%' ESCAPE '\\' "
              "AND table_name NOT LIKE '\\_%' ESCAPE '\\' ORDER BY ALL")
HELP = """Statements end with ';' and may span lines. Commands:
  .tables   list the lake tables and merged views
  .help     this text
  .quit     leave (or Ctrl-D)"""


def _ends_statement(text: str) -> bool:
    """Whether `text` ends with a `;` outside quotes and comments."""
    quote: str | None = None
    last = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        elif not ch.isspace():
            last = ch
        i += 1
    return quote is None and last == ";"


def statements(lines: Iterable[str]) -> Iterator[str]:
    """The SQL statements and dot commands in `lines`: a dot command is one line; a statement
    runs up to a line ending with `;` (outside quotes). A statement left unfinished at the end
    is yielded as it is."""
    pending: list[str] = []
    for line in lines:
        if not pending and line.strip().startswith("."):
            yield line.strip()
            continue
        if not pending and not line.strip():
            continue
        pending.append(line.rstrip("\n"))
        text = "\n".join(pending)
        if _ends_statement(text):
            yield text.strip()
            pending = []
    if "\n".join(pending).strip():
        yield "\n".join(pending).strip()


def run_console(execute: Callable[[str], pa.Table], render: Callable[[pa.Table], str],
                commands: Iterable[str], write: Callable[[str], None]) -> int:
    """Run each statement or dot command of `commands` (see `statements`) with `execute` and
    write its rendered result, or its error in one line; return how many failed."""
    failed = 0
    for command in commands:
        if command in (".quit", ".exit"):
            break
        if command == ".help":
            write(HELP)
            continue
        sql = TABLES_SQL if command == ".tables" else command
        if sql.startswith("."):
            write(f"error: unknown command {command.split()[0]} (try .help)")
            failed += 1
            continue
        try:
            write(render(execute(sql)))
        except Exception as exc:  # noqa: BLE001 (any query error: one line, and go on)
            write(f"error: {(str(exc).strip().splitlines() or [type(exc).__name__])[0]}")
            failed += 1
    return failed


def prompt_statements(history: Path) -> Iterator[str]:
    """Statements and dot commands typed at a terminal, with readline editing and a history
    kept in `history`; Ctrl-C drops the statement being typed, Ctrl-D ends."""
    import readline

    history.parent.mkdir(parents=True, exist_ok=True)
    try:
        readline.read_history_file(history)
    except OSError:  # no history yet
        pass
    readline.set_history_length(1000)
    pending: list[str] = []
    try:
        while True:
            try:
                line = input(CONTINUATION if pending else PROMPT)
            except EOFError:
                print()
                return
            except KeyboardInterrupt:
                print()
                pending = []
                continue
            pending.append(line)
            text = "\n".join(pending)
            if not text.strip():
                pending = []
            elif text.strip().startswith(".") or _ends_statement(text):
                pending = []
                yield from statements(text.splitlines())
    finally:
        readline.write_history_file(history)
