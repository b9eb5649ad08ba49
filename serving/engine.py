"""The serving layer: DuckDB over the Delta tables' current snapshots, plus the merged views.

Each Delta table's snapshot is found through `deltalake` (its log's add actions), and on a local
lake DuckDB reads those Parquet files itself, never files Delta has removed (on an object store,
which DuckDB cannot reach here, through delta-rs's Arrow dataset). Tables appear in a DuckDB
schema named after their layer, without a repeated layer prefix: `landing.tolls_landing`,
`quarantine.tolls_quarantine`, `speed.tolls_customer_spend_10m`,
`batch.tolls_customer_monthly_spend`, `batch.runs`, ... Batch
views are read at the Delta version their latest run published (`batch.runs`), and
`batch.cutover` says which landing version each covers. The merged views (one template,
`serving/sql/merged_view.sql`, filled in from each batch view's spec) are in the main schema
under the report names, with `tolls_customer_spend_this_month`, `tolls_report_freshness`,
`clicks_article_minute`, `clicks_article_daily` and `clicks_trending_10m` over them (one SQL
file each);
`reference.tolls_customer_changes` audits the customers table from its change data feed. A table
stored in a union table (a domain's speed views and streaming progress, all in
`speed.tolls_speed_rows` or `speed.clicks_speed_rows`) is a view of the union's rows of its
`view_name`.

`refresh()` is cheap when little changed: each table's handle stays open and is brought up to
date incrementally (on a local lake only when a commit file for its next version exists), and
only a table whose Delta version moved is registered again. By default the published batch views
and the speed rows are copied into DuckDB tables (`<layer>._copy_of_<table>`, behind the
`<layer>.<table>` views); see `Serving.__init__`.
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import unquote

import duckdb
import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

import schemas
from lambdalake import customers, lake
from lambdalake.config import Settings, local_path
from lambdalake.domains import DOMAINS
from lambdalake.errors import LambdalakeError

# Every domain's batch views, each served merged with its speed part.
MERGED_VIEWS = tuple(view for domain in DOMAINS for view in domain.batch_views)
# Views over the merged views (also one SQL file each), created after them.
DERIVED_VIEWS = ("tolls_customer_spend_this_month", "tolls_report_freshness", "tolls_alerts",
                 "clicks_article_minute", "clicks_article_daily", "clicks_trending_10m")
# Audit views from a table's change data feed (one SQL file each): view -> its schema.
AUDIT_VIEWS = {"tolls_customer_changes": "reference"}
# The change feed and commits of the customers table, which the audit view reads.
_FEED = {"reference._tolls_customers_feed": 0, "reference._tolls_customers_commits": 1}
# The batch job's runs: which version of each batch view is published, and its cut-over.
_RUNS = "batch_runs"
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
    except OSError as exc:  # unreachable storage, missing credentials: one line
        plain = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # delta-rs colours its causes
        reasons = " / ".join(line.strip().lstrip("↳").strip() for line in plain.splitlines()
                             if line.strip())
        raise LambdalakeError(f"cannot read the table at {path}: {reasons[:300]}") from None


def _local_folder(uri: str, what: str) -> Path:
    """The local folder of `uri`; one line unless it is on a local filesystem (a served
    database file's views name the lake's files by path)."""
    folder = local_path(uri)
    if folder is None:
        raise LambdalakeError("a served database file needs a local lake: its views read the "
                              f"lake's Parquet files by path ({what} is {uri})")
    return folder


def require_local_lake(settings: Settings) -> None:
    """Fail in one line unless the lake is on a local filesystem."""
    _local_folder(settings.lake.root, "lake.root")


def _arrow_source(relation: str) -> str:
    """Name under which the Arrow data behind `relation` is registered in DuckDB."""
    return "__arrow_" + relation.replace(".", "_")


def _may_have_moved(path: str, handle: DeltaTable | None) -> bool:
    """Whether a table may exist when `handle` is None, or have a version after `handle`'s.

    On a local lake one `stat` answers (is there a `_delta_log`; is there a commit file for the
    next version), so a refresh with nothing new costs microseconds per table, not a log listing
    or a failed open; elsewhere (object stores) the answer is always yes.
    """
    log = _log_folder(path)
    if log is None:
        return True
    if handle is None:
        return os.path.isdir(log)
    return os.path.exists(f"{log}/{handle.version() + 1:020d}.json")


@functools.cache
def _log_folder(path: str) -> str | None:
    """The `_delta_log` folder of a table on a local lake, or None (parsed once per path: a
    refresh asks for every table's)."""
    folder = local_path(path)
    return None if folder is None else str(folder / "_delta_log")


_SCHEMAS = {"main": "main", "batch": "batch", "speed": "speed", "reference": "reference"}
# A view file's other parameters: each domain's merged views, as a SQL list (`{tolls_views}`).
_PARAMETERS = {f"{domain.name}_views": ", ".join(f"'{view}'" for view in domain.batch_views)
               for domain in DOMAINS}


def render_view_sql(view: str) -> str:
    """The SQL of a view with its schema names filled in: a merged view from the one template
    (`sql/merged_view.sql`) and its batch view's spec, any other from its own file."""
    if view not in MERGED_VIEWS:
        text = resources.files("serving").joinpath("sql", f"{view}.sql").read_text()
        return text.format(**_SCHEMAS, **_PARAMETERS)
    spec = schemas.load(view)
    part = spec.speed_part
    if part is None:
        raise ValueError(f"{view}: a merged view's spec needs its speed_part")
    measures = spec.measures
    keys = [c.name for c in spec.columns if c not in measures]
    text = resources.files("serving").joinpath("sql", "merged_view.sql").read_text()
    return text.format(
        **_SCHEMAS, view=view, speed_view=part.source,
        speed_relation=relation_name(part.source).split(".", 1)[1],
        columns=", ".join(spec.column_names),
        speed_columns=",\n           ".join(
            f"{part.expression(c)} as {c}" for c in spec.column_names),
        keys=", ".join(keys),
        measures=",\n        ".join(
            f"cast(sum({c.name}) as {schemas.duckdb_type(c.type)}) as {c.name}"
            for c in measures))


def _sql_literal(value: object, duckdb_type: str) -> str:
    if value is None:
        return f"CAST(NULL AS {duckdb_type})"
    text = str(value).replace("'", "''")
    return f"CAST('{text}' AS {duckdb_type})"


# A data file of a snapshot: its path under the table's folder, and its partition values.
SnapshotFile = tuple[str, tuple[tuple[str, object], ...]]


def snapshot_files(handle: DeltaTable | None) -> list[SnapshotFile]:
    """The data files of `handle`'s snapshot (its add actions: never files Delta has removed),
    each with the partition values Delta keeps out of the file. Read from the log through
    delta-rs without building an Arrow dataset (whose import alone, with pandas, costs a
    one-shot `lambdalake query` 0.3 s)."""
    if handle is None:
        return []
    # (read as a stream: `pa.table` of it would import pandas)
    actions = pa.RecordBatchReader.from_stream(handle.get_add_actions(flatten=True)).read_all()
    keys = [c for c in actions.column_names if c.startswith("partition.")]
    columns = actions.select(["path", *keys]).to_pydict()
    return [(unquote(path),  # the log URL-encodes paths
             tuple((key.removeprefix("partition."), columns[key][i]) for key in keys))
            for i, path in enumerate(columns["path"])]


def snapshot_sql(table: str, handle: DeltaTable | None,
                 files: list[SnapshotFile] | None = None) -> str:
    """A SELECT of a Delta snapshot's rows (or of the given files of it) straight from its
    Parquet files, in the spec's columns and DuckDB types: only the snapshot's files are listed
    (never files Delta has removed), partition columns, which Delta keeps out of the files,
    become literals, and a column that files written before it existed lack reads as null. It
    needs no Delta reader, so any DuckDB client can run it (`Serving.export`)."""
    spec = schemas.load(table)
    types = {c.name: schemas.duckdb_type(c.type) for c in spec.columns}
    columns = ", ".join(f'CAST("{c}" AS {t}) AS "{c}"' for c, t in types.items())
    files = snapshot_files(handle) if files is None else files
    nulls = ", ".join(f'CAST(NULL AS {t}) AS "{c}"' for c, t in types.items())
    if not files:
        return f"SELECT {nulls} WHERE false"
    root = _local_folder(handle.table_uri, f"{table}'s location")
    groups: dict[tuple, list[str]] = {}
    for path, keys in files:
        groups.setdefault(tuple(sorted(k for k in keys if k[0] in types)), []).append(
            str(root / path))
    parts = []
    for keys, paths in groups.items():
        listed = ", ".join("'" + f.replace("'", "''") + "'" for f in paths)
        literals = "".join(f', {_sql_literal(v, types[k])} AS "{k}"' for k, v in keys)
        parts.append(f"SELECT *{literals} FROM read_parquet([{listed}], "
                     "hive_partitioning = false, union_by_name = true)")
    # the empty row set of every column comes first: files written before a column was added
    # to the table (`lake.add_missing_columns`) lack it, and read as null there
    parts.insert(0, f"SELECT {nulls} WHERE false")
    return f"SELECT {columns} FROM ({' UNION ALL BY NAME '.join(parts)})"


@dataclass(frozen=True)
class ExportReport:
    """What `Serving.export` wrote."""

    path: Path
    tables: int
    views: int
    seconds: float

    def summary(self) -> str:
        """`wrote PATH: 40 tables, 7 merged views in 0.2s`."""
        return (f"wrote {self.path}: {self.tables} tables, {self.views} merged views "
                f"in {self.seconds:.2f}s")


class Serving:
    """A DuckDB connection with every lake table and merged view registered."""

    def __init__(self, settings: Settings, copy_to_duckdb: bool = True) -> None:
        """Connect an in-memory DuckDB and register the lake (call `refresh` to re-read it).

        With `copy_to_duckdb` (the default, for a long-lived connection such as a notebook's)
        the tables the merged views read are copied into DuckDB, so merged queries scan
        DuckDB's own columns, not Parquet: each published batch view once per batch run (about
        1 s and a few hundred MB for a 9M-row view), the speed rows file by file as micro-batches
        add them. A one-shot query (`lambdalake query`) passes False and reads every table's
        Parquet files in place.
        """
        self.settings = settings
        self._local = local_path(settings.lake.root) is not None
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")
        for layer in LAYERS:
            self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {layer}")
        served = [t for t in schemas.available() if schemas.load(t).layer in LAYERS]
        self._members = [t for t in served if schemas.stored_in(t)]
        self._tables = [t for t in served if t not in self._members and t not in MERGED_VIEWS]
        # copied: the batch views and the union tables (the speed rows) the merged views read
        self._copied = ({*MERGED_VIEWS, *(schemas.stored_in(m) for m in self._members)}
                        if copy_to_duckdb else set())
        self._files: dict[str, set[str]] = {}  # copied table -> data files of its copy
        self._handles: dict[str, DeltaTable] = {}
        self._registered: dict[str, int | None] = {}  # table -> version registered (None: empty)
        self._cutover: list[tuple] | None = None
        self._runs_read_at: int | None = None  # batch.runs' version the cut-over was read at
        self._published: dict[str, DeltaTable] = {}  # batch view -> its published snapshot
        self._feed: tuple[pa.Table, pa.Table] = customers.changes(None)
        for relation, n in _FEED.items():
            source = _arrow_source(relation)
            self.con.register(source, self._feed[n])
            self.con.execute(f"CREATE OR REPLACE VIEW {relation} AS SELECT * FROM {source}")
        for table in (*self._tables, *MERGED_VIEWS):
            self._register(table, None)
        for statement in self._member_views():
            self.con.execute(statement)
        self.refresh()
        for statement in self._merged_views():
            self.con.execute(statement)

    def _member_views(self) -> list[str]:
        """The views of the tables stored in a union table (its rows of one `view_name`)."""
        statements = []
        for member in self._members:
            union = relation_name(schemas.stored_in(member))
            columns = ", ".join(f'"{c}"' for c in schemas.load(member).column_names)
            statements.append(f"CREATE OR REPLACE VIEW {relation_name(member)} AS SELECT "
                              f"{columns} FROM {union} WHERE view_name = '{member}'")
        return statements

    def _cutover_view(self) -> str:
        rows = ", ".join(f"('{view}', {version})" for view, version in self._cutover or [])
        return ("CREATE OR REPLACE VIEW batch.cutover AS SELECT * FROM (VALUES "
                f"{rows}) AS t(view_name, landing_version)")

    @staticmethod
    def _merged_views() -> list[str]:
        """The merged views, the views over them and the audit views."""
        return [*(f"CREATE OR REPLACE VIEW main.{view} AS {render_view_sql(view)}"
                  for view in (*MERGED_VIEWS, *DERIVED_VIEWS)),
                *(f"CREATE OR REPLACE VIEW {schema}.{view} AS {render_view_sql(view)}"
                  for view, schema in AUDIT_VIEWS.items())]

    def _refresh_feed(self) -> None:
        """Read the customers table's change feed again (after the table moved)."""
        self._feed = customers.changes(self._handles.get(customers.TABLE))
        for relation, n in _FEED.items():
            self.con.register(_arrow_source(relation), self._feed[n])

    def _latest(self, table: str) -> DeltaTable | None:
        """The table's latest snapshot: its open handle brought up to date, or a new one."""
        path = lake.table_path(self.settings, table)
        handle = self._handles.get(table)
        if not _may_have_moved(path, handle):
            return handle
        if handle is None:
            handle = _open(path)
            if handle is not None:
                self._handles[table] = handle
        else:
            handle.update_incremental()
        return handle

    def _register(self, table: str, handle: DeltaTable | None) -> None:
        """Point the table's relation at `handle`'s snapshot, unless it is there already."""
        version = None if handle is None else handle.version()
        if table in self._registered and self._registered[table] == version:
            return
        name = relation_name(table)
        if table in self._copied:
            copy = name.replace(".", "._copy_of_")
            self._copy_new_files(table, copy, handle)
            if table not in self._registered:
                self.con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM {copy}")
        else:
            self.con.execute(f"CREATE OR REPLACE VIEW {name} AS {self._source(table, handle)}")
        self._registered[table] = version

    def _source(self, table: str, handle: DeltaTable | None,
                files: list[SnapshotFile] | None = None) -> str:
        """A SELECT of the snapshot's rows, or of `files` of it: on a local lake DuckDB reads
        the Parquet files itself (`snapshot_sql`); on an object store, which this DuckDB cannot
        reach, delta-rs's Arrow dataset of the whole snapshot is registered and read."""
        if self._local or handle is None:
            return snapshot_sql(table, handle, files)
        source = _arrow_source(relation_name(table))
        self.con.register(source, handle.to_pyarrow_dataset())
        return f"SELECT * FROM {source}"

    def _copy_new_files(self, table: str, copy: str, handle: DeltaTable | None) -> None:
        """Bring DuckDB table `copy` to `handle`'s snapshot: when the snapshot only added files
        to those of the last copy (Delta data files never change), insert the new files' rows;
        otherwise (a first copy, rows deleted, files rewritten, a batch view overwritten by its
        next run, or any change on an object store) copy it all again."""
        files = snapshot_files(handle)
        paths = {path for path, _ in files}
        previous = self._files.get(table)
        if self._local and previous and previous <= paths:
            new = [f for f in files if f[0] not in previous]
            if new:
                self.con.execute(f"INSERT INTO {copy} BY NAME "
                                 f"{self._source(table, handle, new)}")
        else:
            # a batch view's copy is kept in the order of its leading key, so a query on it (one
            # customer, one plaza) skips the row groups whose min/max rule it out (sorting on
            # the whole key costs twice as much, for no faster query)
            order = (f" ORDER BY {schemas.load(table).primary_key[0]}"
                     if table in MERGED_VIEWS else "")
            self.con.execute(f"CREATE OR REPLACE TABLE {copy} AS "
                             f"{self._source(table, handle, files)}{order}")
        self._files[table] = paths

    def refresh(self) -> None:
        """Bring every table to its latest snapshot and each batch view to its published
        version; only what changed is registered again."""
        feed_read_at = self._registered.get(customers.TABLE)
        for table in self._tables:
            self._register(table, self._latest(table))
        if self._registered.get(customers.TABLE) != feed_read_at:
            self._refresh_feed()
        if self._cutover is not None and self._registered.get(_RUNS) == self._runs_read_at:
            return  # no batch run published since the last refresh
        self._runs_read_at = self._registered.get(_RUNS)
        published = self.con.execute(
            "SELECT view_name, arg_max(view_version, published_at), "
            "arg_max(landing_version, published_at) FROM batch.runs GROUP BY view_name"
        ).fetchall()
        versions = {view: (v, lv) for view, v, lv in published}
        for view in MERGED_VIEWS:
            if view in versions and self._registered.get(view) != versions[view][0]:
                handle = _open(lake.table_path(self.settings, view), versions[view][0])
                self._register(view, handle)
                if handle is not None:
                    self._published[view] = handle
        cutover = [(view, versions.get(view, (None, -1))[1]) for view in MERGED_VIEWS]
        if cutover != self._cutover:
            self._cutover = cutover
            self.con.execute(self._cutover_view())

    def state(self) -> tuple:
        """What the last `refresh` saw: each table's registered version and the cut-over (equal
        states serve the same rows)."""
        return tuple(sorted(self._registered.items())), tuple(self._cutover or ())

    def export(self, path: str | Path) -> ExportReport:
        """Write the serving layer, as of the last `refresh`, as a DuckDB database file of
        views that any DuckDB client opens read-only, with no lambdalake and no Delta reader:
        every lake table a view over its snapshot's Parquet files (`snapshot_sql`), the merged
        views as here. The file is written beside `path` and renamed over it, so readers that
        have the old file open keep it, and it is left read-only (mode 0444). Local lakes only:
        the views name the lake's files by their paths."""
        began = time.monotonic()
        require_local_lake(self.settings)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        partial.unlink(missing_ok=True)
        con = duckdb.connect(str(partial))
        try:
            for layer in LAYERS:
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {layer}")
            for table in self._tables:
                con.execute(f"CREATE VIEW {relation_name(table)} AS "
                            f"{snapshot_sql(table, self._handles.get(table))}")
            for view in MERGED_VIEWS:
                con.execute(f"CREATE VIEW {relation_name(view)} AS "
                            f"{snapshot_sql(view, self._published.get(view))}")
            for relation, n in _FEED.items():  # small: copied into the file
                con.register("__feed", self._feed[n])
                con.execute(f"CREATE TABLE {relation} AS SELECT * FROM __feed")
                con.unregister("__feed")
            for statement in (*self._member_views(), self._cutover_view(),
                              *self._merged_views()):
                con.execute(statement)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        partial.chmod(0o444)
        os.replace(partial, target)
        return ExportReport(target, len(self._tables) + len(MERGED_VIEWS),
                            len(MERGED_VIEWS) + len(DERIVED_VIEWS) + len(AUDIT_VIEWS),
                            time.monotonic() - began)

    def rows(self, views: Iterable[str]) -> dict[str, set[tuple]]:
        """Every row of each of `views` after a refresh, as a set of tuples (what the tests and
        the demo compare with the ground truth)."""
        self.refresh()
        return {view: set(self.con.execute(f"select * from {view}").fetchall())
                for view in views}

    def query(self, sql: str) -> pa.Table:
        """Run SQL and return the result as an Arrow table."""
        return self.con.execute(sql).fetch_arrow_table()

    def close(self) -> None:
        """Close the DuckDB connection."""
        self.con.close()


class ServedDatabase:
    """The database file `lambdalake serve` keeps current: `update` writes it again when the
    serving layer moved, and between writes this process holds the file open read-only, so
    DuckDB's lock refuses any read-write open ("Conflicting lock is held") while read-only
    clients open it freely."""

    def __init__(self, serving: Serving, path: str | Path) -> None:
        self.serving = serving
        self.path = Path(path)
        self.writes = 0
        self._state: tuple | None = None
        self._guard: duckdb.DuckDBPyConnection | None = None

    def update(self) -> ExportReport | None:
        """Refresh the serving layer; write the file if it moved since the last write (or was
        never written); return what was written, or None."""
        self.serving.refresh()
        if self._state is not None and self._state == self.serving.state():
            return None
        report = self.serving.export(self.path)
        self._state = self.serving.state()
        self.writes += 1
        if self._guard is not None:  # it holds the file this one replaced
            self._guard.close()
        self._guard = duckdb.connect(str(self.path), read_only=True)
        return report

    def close(self) -> None:
        """Let go of the file (it stays, read-only)."""
        if self._guard is not None:
            self._guard.close()
            self._guard = None
