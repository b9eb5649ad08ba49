"""Toll customers and their monthly spending thresholds (the Python API behind
`lambdalake customers set-threshold`).

The table is a Delta table in the lake (`reference/tolls_customers`), written here with
`deltalake` so a threshold change needs no Spark. The streaming job re-reads it every micro-batch,
so a change takes effect for alerts without a restart.

Change data capture: the table has Delta's change data feed on (`delta.enableChangeDataFeed`),
and every commit records who made it (`userName` in its commit info: `user@host`). `changes`
reads the feed and the commit log as two Arrow tables, from which the serving layer's audit view
`reference.tolls_customer_changes` pairs each change's old and new threshold
(`serving/sql/tolls_customer_changes.sql`); `change_stream` reads the same feed as a Spark
stream. Changes made before the feed was enabled (on a table of an older lambdalake, enabled at
its next write) are not in it.
"""

from __future__ import annotations

import datetime as dt
import getpass
import socket
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa
from deltalake import CommitProperties, write_deltalake

import schemas
from lambdalake import lake
from lambdalake.config import Settings
from lambdalake.errors import LambdalakeError

TABLE = "tolls_customers"
CHANGE_FEED = {"delta.enableChangeDataFeed": "true"}
# the change feed's rows: the table's columns and Delta's change columns
FEED_COLUMNS = ("customer_id", "monthly_threshold", "_change_type", "_commit_version")


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


def _author() -> CommitProperties:
    """The commit's author in its commit info (`userName`, as Delta's history shows it)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid
        user = "unknown"
    return CommitProperties(custom_metadata={"userName": f"{user}@{socket.gethostname()}"})


def _open_with_feed(settings: Settings) -> Any:
    """The customers table (delta-rs), its change data feed switched on if it was not (a table
    written by an older lambdalake); None when there is no table."""
    table = lake.open_table(settings, TABLE)
    if table is not None and table.metadata().configuration.get(
            "delta.enableChangeDataFeed") != "true":
        table.alter.set_table_properties(CHANGE_FEED, commit_properties=_author())
    return table


def write_customers(settings: Settings, rows: list[dict]) -> str:
    """Overwrite the customers table with `rows` (customer_id, name, monthly_threshold)."""
    now = dt.datetime.now(dt.timezone.utc)
    path = lake.table_path(settings, TABLE)
    _open_with_feed(settings)
    write_deltalake(lake.delta_uri(path), _table([{**r, "updated_at": now} for r in rows]),
                    mode="overwrite", configuration=CHANGE_FEED, commit_properties=_author())
    return path


def set_threshold(settings: Settings, customer_id: str, threshold: str | Decimal | None) -> None:
    """Set (or with None, clear) a customer's monthly threshold; adds the customer if new."""
    if not customer_id or not customer_id.strip():
        raise LambdalakeError("a customer id is needed")
    row = {"customer_id": customer_id, "name": None,
           "monthly_threshold": parse_threshold(threshold),
           "updated_at": dt.datetime.now(dt.timezone.utc)}
    table = _open_with_feed(settings)
    if table is None:
        write_deltalake(lake.delta_uri(lake.table_path(settings, TABLE)), _table([row]),
                        mode="append", configuration=CHANGE_FEED, commit_properties=_author())
        return
    (table.merge(_table([row]), "t.customer_id = s.customer_id", source_alias="s",
                 target_alias="t", commit_properties=_author())
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


def changes(table: Any) -> tuple[pa.Table, pa.Table]:
    """The customers table's change data feed (`FEED_COLUMNS`: one row per inserted, deleted,
    pre- or post-update row) and its commits (`customer_version`, `changed_by`, `changed_at`),
    from a delta-rs handle (None: both empty). A table whose feed is off, or whose feed files
    were vacuumed, gives what its log still has."""
    feed_schema = pa.schema([schemas.arrow_schema(TABLE).field("customer_id"),
                             schemas.arrow_schema(TABLE).field("monthly_threshold"),
                             pa.field("_change_type", pa.string()),
                             pa.field("_commit_version", pa.int64())])
    commits_schema = pa.schema([("customer_version", pa.int64()), ("changed_by", pa.string()),
                                ("changed_at", pa.timestamp("ms", tz="UTC"))])
    if table is None:  # (not `Schema.empty_table()`: it imports pandas, 0.3 s of a CLI command)
        return (pa.Table.from_batches([], schema=feed_schema),
                pa.Table.from_batches([], schema=commits_schema))
    from deltalake.exceptions import DeltaError

    history = table.history()
    # the feed is on from version 0, or (a table of an older lambdalake) from the commit that
    # switched it on
    enabled_at = [h["version"] for h in history if h.get("operation") == "SET TBLPROPERTIES"]
    feed = pa.Table.from_batches([], schema=feed_schema)
    for start in (0, *sorted(enabled_at, reverse=True)[:1]):
        try:
            feed = pa.table(table.load_cdf(starting_version=start, columns=list(FEED_COLUMNS))
                            .read_all()).cast(feed_schema)
            break
        except DeltaError:  # no feed at `start`
            continue
    commits = pa.Table.from_pylist(
        [{"customer_version": h["version"], "changed_by": h.get("userName"),
          "changed_at": dt.datetime.fromtimestamp(h["timestamp"] / 1000, dt.timezone.utc)}
         for h in history], schema=commits_schema)
    return feed, commits


def change_stream(spark: Any, settings: Settings, starting_version: int = 0) -> Any:
    """The customers table's change data feed as a Spark streaming DataFrame (the table's
    columns and `_change_type`, `_commit_version`, `_commit_timestamp`)."""
    return (spark.readStream.format("delta").option("readChangeFeed", "true")
            .option("startingVersion", starting_version)
            .load(lake.table_path(settings, TABLE)))
