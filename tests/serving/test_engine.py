import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from serving.engine import _may_have_moved


def test_a_refresh_looks_at_a_table_only_when_it_exists_or_has_a_new_commit(tmp_path):
    path = str(tmp_path / "t")
    assert not _may_have_moved(path, None)  # nothing there: no open attempted

    write_deltalake(path, pa.table({"x": [1]}))
    assert _may_have_moved(path, None)  # created since: open it
    handle = DeltaTable(path)
    assert not _may_have_moved(path, handle)  # up to date: skip the log

    write_deltalake(path, pa.table({"x": [2]}), mode="append")
    assert _may_have_moved(path, handle)  # a commit after the open version
    handle.update_incremental()
    assert handle.version() == 1
    assert not _may_have_moved(path, handle)


def test_an_object_store_table_is_always_looked_at():
    assert _may_have_moved("s3://bucket/lake/landing/tolls_landing", None)


def _landing_rows(ids, day):
    """Rows of the landing table's Arrow schema: every column filled by its type."""
    import datetime as dt
    from decimal import Decimal

    import schemas

    schema = schemas.arrow_schema("tolls_landing")
    by_type = {pa.string(): "x", pa.int32(): 1, pa.int64(): 2, pa.date32(): day,
               pa.timestamp("us", tz="UTC"): dt.datetime(2026, 12, 1, 8, tzinfo=dt.timezone.utc)}
    rows = []
    for i in ids:
        row = {f.name: by_type.get(f.type, Decimal("1.25")) for f in schema}
        row.update(transaction_id=f"t{i}", kafka_offset=i, ingest_date=day)
        rows.append(row)
    return pa.Table.from_pylist(rows, schema)


def test_snapshot_sql_reads_only_the_snapshots_files_with_partition_values(tmp_path):
    import datetime as dt

    import duckdb

    from serving.engine import snapshot_sql

    path = str(tmp_path / "tolls_landing")
    write_deltalake(path, _landing_rows([1, 2], dt.date(2026, 12, 1)),
                    partition_by=["ingest_date"])
    write_deltalake(path, _landing_rows([3], dt.date(2026, 12, 2)), mode="append",
                    partition_by=["ingest_date"])
    handle = DeltaTable(path)
    handle.delete("transaction_id = 't1'")  # rewrites a file; the old one stays on disk
    handle = DeltaTable(path)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    served = con.execute(snapshot_sql("tolls_landing", handle)).fetch_arrow_table()
    delta = handle.to_pyarrow_table()
    assert [(f.name, f.type) for f in served.schema] == [
        (f.name, delta.schema.field(f.name).type) for f in served.schema]
    assert sorted(served.to_pylist(), key=str) == sorted(handle.to_pyarrow_table().to_pylist(),
                                                         key=str)
    assert sorted(served.column("ingest_date").to_pylist()) == [dt.date(2026, 12, 1),
                                                                 dt.date(2026, 12, 2)]
    empty = con.execute(snapshot_sql("tolls_landing", None)).fetch_arrow_table()
    assert empty.num_rows == 0 and empty.column_names == served.column_names


def test_snapshot_sql_reads_files_written_before_a_column_was_added_as_null(tmp_path):
    import duckdb

    import schemas
    from serving.engine import snapshot_sql

    name = "tolls_speed_rows"
    schema = schemas.arrow_schema(name)
    old = pa.schema([f for f in schema if f.name != "processing_seconds"])
    path = str(tmp_path / name)
    row = {"view_name": "tolls_stream_progress", "ingest_batch_id": 1}
    write_deltalake(path, pa.Table.from_pylist([row], old))
    con = duckdb.connect()
    # only files without the column (the table altered, no new rows yet), then both kinds
    expected = [(1, None)]
    for batch, seconds in ((None, None), (2, 0.75)):
        if batch is not None:
            write_deltalake(path, pa.Table.from_pylist(
                [row | {"ingest_batch_id": batch, "processing_seconds": seconds}], schema),
                mode="append", schema_mode="merge")
            expected.append((batch, seconds))
        served = con.execute(f"select ingest_batch_id, processing_seconds from "
                             f"({snapshot_sql(name, DeltaTable(path))}) order by 1").fetchall()
        assert served == expected


CLIENT = """
import sys
import duckdb
try:
    con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "ro")
    print(con.execute("select count(*) from reference.tolls_customers").fetchone()[0],
          con.execute("select count(*) from reference.tolls_customer_changes").fetchone()[0])
except duckdb.Error as exc:
    print(f"refused: {exc}")
"""


def _client(path, mode):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", CLIENT, str(path), mode], capture_output=True,
                          text=True, check=True).stdout.strip()


def test_served_database_is_rewritten_when_a_table_moves_and_locked_against_writers(tmp_path):
    from decimal import Decimal

    from lambdalake.config import load_settings
    from lambdalake.customers import write_customers
    from serving.engine import ServedDatabase, Serving

    settings = load_settings({"LAMBDALAKE_LAKE_ROOT": str(tmp_path / "lake")})
    serving = Serving(settings, copy_to_duckdb=False)
    served = ServedDatabase(serving, tmp_path / "served.duckdb")
    try:
        assert served.update() is not None  # the first write, of an empty lake
        assert served.update() is None  # nothing moved: not written again
        assert _client(served.path, "ro") == "0 0"
        refused = _client(served.path, "rw")  # while served, a writer cannot open it
        assert refused.startswith("refused:") and "lock" in refused.lower()

        write_customers(settings, [{"customer_id": "C1", "name": "a",
                                    "monthly_threshold": Decimal("10.00")}])
        assert served.update() is not None and served.writes == 2
        assert _client(served.path, "ro") == "1 1"  # and its insert, in the audit view
        assert _client(served.path, "rw").startswith("refused:")
    finally:
        served.close()
        serving.close()


@pytest.mark.parametrize("store", ["local", "object store"])
def test_a_batch_views_copy_is_in_its_leading_keys_order_and_equal_to_the_published_rows(
        tmp_path, monkeypatch, store):
    import datetime as dt
    from decimal import Decimal

    import schemas
    from lambdalake import lake
    from lambdalake.config import load_settings
    from serving import engine
    from serving.engine import Serving

    if store == "object store":  # read as if DuckDB could not reach the files: Arrow datasets
        monkeypatch.setattr(engine, "local_path", lambda uri: None)
    settings = load_settings({"LAMBDALAKE_LAKE_ROOT": str(tmp_path / "lake")})
    view = "tolls_customer_spend_10m"
    start = dt.datetime(2026, 12, 1, 8, tzinfo=dt.timezone.utc)
    rows = [{"customer_id": f"C{c:03d}", "window_start": start + dt.timedelta(minutes=10 * w),
             "window_end": start + dt.timedelta(minutes=10 * w + 10),
             "transaction_count": c + w, "spend": Decimal(f"{c}.{w:02d}")}
            for c in (7, 3, 9, 1) for w in (2, 0, 1)]  # written out of key order
    path = lake.table_path(settings, view)
    write_deltalake(path, pa.Table.from_pylist(rows, schemas.arrow_schema(view)))
    write_deltalake(lake.table_path(settings, "batch_runs"), pa.Table.from_pylist(
        [{"run_id": "r1", "view_name": view, "view_version": 0, "landing_version": 0,
          "landed_event_count": 12, "started_at": start, "published_at": start}],
        schemas.arrow_schema("batch_runs")))

    serving = Serving(settings)
    try:
        copied = serving.con.execute(f"select customer_id from batch._copy_of_{view}").fetchall()
        assert copied == sorted((r["customer_id"],) for r in rows)
        served = serving.con.execute(f"select * from {view}").fetchall()
        assert sorted(served) == sorted(tuple(r.values()) for r in rows)
        assert serving.con.execute("select run_id from batch.runs").fetchall() == [("r1",)]
    finally:
        serving.close()
        engine._log_folder.cache_clear()  # it remembered this lake's folders as remote


def test_snapshot_files_are_the_files_on_disk_with_typed_partition_values(tmp_path):
    import datetime as dt

    from serving.engine import snapshot_files

    path = tmp_path / "t"
    write_deltalake(str(path), pa.table({"x": [1, 2, 3], "p": ["a b", "c:d", None],
                                         "d": [dt.date(2026, 12, 1)] * 3}),
                    partition_by=["p", "d"])
    files = snapshot_files(DeltaTable(str(path)))
    assert all((path / file).is_file() for file, _ in files)  # the log's paths are URL-encoded
    assert sorted(dict(keys)["p"] or "" for _, keys in files) == ["", "a b", "c:d"]
    assert {dict(keys)["d"] for _, keys in files} == {dt.date(2026, 12, 1)}
    assert snapshot_files(None) == []
