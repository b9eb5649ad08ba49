import pyarrow as pa
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
