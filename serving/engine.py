"""The serving layer: DuckDB over the Delta tables' current snapshots, plus the merged views.

Each Delta table is read through `deltalake` (Arrow), so only the files of the snapshot are read,
never files Delta has removed. Tables appear in a DuckDB schema named after their layer, without a
repeated layer prefix: `landing.tolls_landing`, `quarantine.tolls_quarantine`,
`speed.tolls_customer_spend_10m`, `batch.tolls_customer_monthly_spend`, `batch.runs`, ... Batch
views are read at the Delta version their latest run published (`batch.runs`), and
`batch.cutover` says which landing version each covers. The merged views (`serving/sql/*.sql`,
one file per view) are in the main schema under the report names, with
`tolls_customer_spend_this_month` and `tolls_report_freshness` over them.
"""

from __future__ import annotations

from importlib import resources

import duckdb
import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

import schemas
from lambdalake import lake
from lambdalake.config import Settings

MERGED_VIEWS = ("tolls_customer_monthly_spend", "tolls_customer_spend_10m",
                "tolls_plaza_revenue_30m", "tolls_daily_class_traffic")
# Views over the merged views (also one SQL file each), created after them.
DERIVED_VIEWS = ("tolls_customer_spend_this_month", "tolls_report_freshness", "tolls_alerts")
LAYERS = ("landing", "quarantine", "speed", "batch", "reference", "omop", "etl")


def relation_name(table: str) -> str:
    """Schema-qualified DuckDB name of a lake table (`speed_x` in layer speed -> `speed.x`)."""
    layer = schemas.load(table).layer
    short = table[len(layer) + 1:] if table.startswith(f"{layer}_") else table
    return f"{layer}.{short}"


def _open(path: str, version: int | None = None) -> DeltaTable | None:
    try:
        return DeltaTable(lake.delta_uri(path), version=version)
    except TableNotFoundError:
        return None


def render_view_sql(view: str) -> str:
    """The SQL of a merged view with its schema names filled in."""
    text = resources.files("serving").joinpath("sql", f"{view}.sql").read_text()
    return text.format(main="main", batch="batch", speed="speed", reference="reference")


class Serving:
    """A DuckDB connection with every lake table and merged view registered."""

    def __init__(self, settings: Settings) -> None:
        """Connect an in-memory DuckDB and register the lake (call `refresh` to re-read it)."""
        self.settings = settings
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")
        for layer in LAYERS:
            self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {layer}")
        self.refresh()

    def _register(self, table: str, version: int | None = None) -> None:
        name = relation_name(table)
        dt = _open(lake.table_path(self.settings, table), version)
        if dt is None:
            data = pa.table({f.name: pa.array([], f.type) for f in schemas.arrow_schema(table)})
        else:
            data = dt.to_pyarrow_dataset()
        arrow_name = "__arrow_" + name.replace(".", "_")
        self.con.register(arrow_name, data)
        self.con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM {arrow_name}")

    def refresh(self) -> None:
        """Re-read every table's latest snapshot and re-create the views over them."""
        for table in schemas.available():
            if schemas.load(table).layer in LAYERS and table not in MERGED_VIEWS:
                self._register(table)
        published = self.con.execute(
            "SELECT view_name, arg_max(view_version, published_at), "
            "arg_max(landing_version, published_at) FROM batch.runs GROUP BY view_name"
        ).fetchall()
        versions = {view: (v, lv) for view, v, lv in published}
        for view in MERGED_VIEWS:
            self._register(view, versions[view][0] if view in versions else None)
        rows = ", ".join(f"('{view}', {versions.get(view, (None, -1))[1]})"
                         for view in MERGED_VIEWS)
        self.con.execute("CREATE OR REPLACE VIEW batch.cutover AS SELECT * FROM (VALUES "
                         f"{rows}) AS t(view_name, landing_version)")
        for view in (*MERGED_VIEWS, *DERIVED_VIEWS):
            self.con.execute(f"CREATE OR REPLACE VIEW main.{view} AS {render_view_sql(view)}")

    def query(self, sql: str) -> pa.Table:
        """Run SQL and return the result as an Arrow table."""
        return self.con.execute(sql).fetch_arrow_table()

    def close(self) -> None:
        """Close the DuckDB connection."""
        self.con.close()
