"""Render query results (Arrow tables) as an aligned text table, CSV or a JSON array."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal
from typing import Any

import pyarrow as pa


def _text(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    return str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        as_float = float(value)  # a JSON number, when that is exact
        return as_float if Decimal(repr(as_float)) == value else str(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def as_table(result: pa.Table, max_rows: int | None = 50) -> str:
    """Aligned text table with a header and the row count."""
    rows = result.to_pylist()
    shown = rows if max_rows is None else rows[:max_rows]
    names = result.column_names
    cells = [[_text(r[n]) for n in names] for r in shown]
    widths = [max([len(n)] + [len(c[i]) for c in cells]) for i, n in enumerate(names)]
    numeric = [pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
               for t in result.schema.types]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric, strict=True)).rstrip()

    out = [line(names), line(["-" * w for w in widths])] + [line(c) for c in cells]
    more = f", {len(rows) - len(shown)} not shown" if len(shown) < len(rows) else ""
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''}{more})")
    return "\n".join(out)


def as_csv(result: pa.Table) -> str:
    """CSV with a header row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(result.column_names)
    for row in result.to_pylist():
        writer.writerow(["" if v is None else _text(v) for v in row.values()])
    return buffer.getvalue().rstrip("\n")


def as_json(result: pa.Table) -> str:
    """One JSON array of row objects."""
    return json.dumps([{k: _json_value(v) for k, v in row.items()}
                       for row in result.to_pylist()])


FORMATS = {"table": lambda r: as_table(r, max_rows=None), "csv": as_csv, "json": as_json}
