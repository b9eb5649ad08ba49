"""Toll plazas: the reference table the streaming job checks `plaza_id` against.

The table is a Delta table in the lake (`reference/tolls_plazas`), written here with `deltalake`
(no Spark). While it exists, a toll event at a plaza not in it is quarantined (`unknown
plaza_id`); without it, every plaza is accepted. The streaming job looks at its version every
micro-batch, so a plaza added (`lambdalake plazas add`) counts from the next micro-batch, with no
restart.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
from deltalake import write_deltalake

import schemas
from lambdalake import lake
from lambdalake.config import Settings
from lambdalake.errors import LambdalakeError

TABLE = "tolls_plazas"


def _table(rows: list[dict]) -> pa.Table:
    now = dt.datetime.now(dt.timezone.utc)
    return pa.Table.from_pylist([{**r, "updated_at": now} for r in rows],
                                schema=schemas.arrow_schema(TABLE))


def write_plazas(settings: Settings, rows: list[dict]) -> str:
    """Overwrite the plazas table with `rows` (plaza_id, name); return its path."""
    path = lake.table_path(settings, TABLE)
    write_deltalake(lake.delta_uri(path), _table(rows), mode="overwrite")
    return path


def add_plaza(settings: Settings, plaza_id: str, name: str | None = None) -> None:
    """Add a plaza (or rename one that exists)."""
    if not plaza_id or not plaza_id.strip():
        raise LambdalakeError("a plaza id is needed")
    row = _table([{"plaza_id": plaza_id.strip(), "name": name}])
    table = lake.open_table(settings, TABLE)
    if table is None:
        write_deltalake(lake.delta_uri(lake.table_path(settings, TABLE)), row, mode="append")
        return
    (table.merge(row, "t.plaza_id = s.plaza_id", source_alias="s", target_alias="t")
     .when_matched_update({"name": "s.name", "updated_at": "s.updated_at"})
     .when_not_matched_insert_all()
     .execute())


def plaza_rows(settings: Settings) -> list[dict] | None:
    """Every plaza (plaza_id, name), sorted, or None when there is no plazas table."""
    table = lake.open_table(settings, TABLE)
    if table is None:
        return None
    return sorted(lake.arrow_table(table, ["plaza_id", "name"]).to_pylist(),
                  key=lambda r: r["plaza_id"])
