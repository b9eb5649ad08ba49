"""Toll customers and their monthly spending thresholds (the Python API behind
`lambdalake customers set-threshold`).

The table is a Delta table in the lake (`reference/tolls_customers`), written here with
`deltalake` so a threshold change needs no Spark. The streaming job re-reads it every micro-batch,
so a change takes effect for alerts without a restart.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

import pyarrow as pa
from deltalake import write_deltalake

import schemas
from lambdalake import lake
from lambdalake.config import Settings
from lambdalake.errors import LambdalakeError

TABLE = "tolls_customers"


def parse_threshold(text: str | Decimal | None) -> Decimal | None:
    """A threshold: a non-negative amount with at most 2 decimals, or None/`none` for no alerts."""
    if text is None or (isinstance(text, str) and text.strip().lower() in ("none", "")):
        return None
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise LambdalakeError(f"a threshold is an amount such as 150.00, got {text!r}") from None
    if not value.is_finite() or value < 0 or value != value.quantize(Decimal("0.01")):
        raise LambdalakeError(f"a threshold is a non-negative amount with at most 2 decimals, "
                              f"got {text!r}")
    if value >= Decimal("1e10"):
        raise LambdalakeError(f"threshold {text} is too large")
    return value.quantize(Decimal("0.01"))


def _table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schemas.arrow_schema(TABLE))


def write_customers(settings: Settings, rows: list[dict]) -> str:
    """Overwrite the customers table with `rows` (customer_id, name, monthly_threshold)."""
    now = dt.datetime.now(dt.timezone.utc)
    path = lake.table_path(settings, TABLE)
    write_deltalake(lake.delta_uri(path), _table([{**r, "updated_at": now} for r in rows]),
                    mode="overwrite")
    return path


def set_threshold(settings: Settings, customer_id: str, threshold: str | Decimal | None) -> None:
    """Set (or with None, clear) a customer's monthly threshold; adds the customer if new."""
    if not customer_id or not customer_id.strip():
        raise LambdalakeError("a customer id is needed")
    row = {"customer_id": customer_id, "name": None,
           "monthly_threshold": parse_threshold(threshold),
           "updated_at": dt.datetime.now(dt.timezone.utc)}
    table = lake.open_table(settings, TABLE)
    if table is None:
        write_deltalake(lake.delta_uri(lake.table_path(settings, TABLE)), _table([row]),
                        mode="append")
        return
    (table.merge(_table([row]), "t.customer_id = s.customer_id", source_alias="s",
                 target_alias="t")
     .when_matched_update({"monthly_threshold": "s.monthly_threshold",
                           "updated_at": "s.updated_at"})
     .when_not_matched_insert_all()
     .execute())


def table_version(settings: Settings) -> int | None:
    """Delta version of the customers table (None when there is none): cheap, no Spark."""
    table = lake.open_table(settings, TABLE)
    return None if table is None else table.version()


def thresholds(settings: Settings) -> dict[str, Decimal | None]:
    """Every customer's current monthly threshold."""
    table = lake.open_table(settings, TABLE)
    if table is None:
        return {}
    rows = lake.arrow_table(table, ["customer_id", "monthly_threshold"]).to_pylist()
    return {r["customer_id"]: r["monthly_threshold"] for r in rows}
