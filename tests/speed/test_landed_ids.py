import datetime as dt

import numpy as np
import pytest

from speed.landed_ids import (
    HASH_COLUMNS,
    LandedIdIndex,
    collect_arrow,
    id_hashes,
    repeated_pairs,
)

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)


def hashes(spark, ids):
    table = collect_arrow(spark.createDataFrame([(i,) for i in ids], "transaction_id string")
                          .select(*id_hashes("transaction_id")))
    return [table.column(c).to_numpy() for c in HASH_COLUMNS]


@pytest.fixture
def index(spark):
    landing = spark.createDataFrame(
        [("t1", dt.date(2026, 11, 24)), ("t2", dt.date(2026, 11, 1)),
         ("t3", dt.date(2026, 10, 1))],  # t3: before the 30-day window
        "transaction_id string, ingest_date date")
    index = LandedIdIndex("transaction_id", window_days=30)
    assert index.load(landing, NOW) == 2
    return index


def test_the_index_finds_exactly_the_ids_landed_within_the_window(spark, index):
    found = index.contains(*hashes(spark, ["t1", "t2", "t3", "t4", "t1"]), NOW)
    assert found.tolist() == [True, True, False, False, True]


def test_added_ids_are_found_and_ids_leave_with_their_ingest_date(spark, index):
    index.add(*hashes(spark, ["t4", "t5"]), NOW.date())
    for day in range(40):  # many small pieces on one day are merged, never lost
        index.add(*hashes(spark, [f"x{day}"]), NOW.date())
    assert len(index) == 44
    assert index.contains(*hashes(spark, ["t4", "t5", "x0", "x39", "t6"]),
                          NOW).tolist() == [True, True, True, True, False]
    later = NOW + dt.timedelta(days=25)  # t2 (Nov 1) is now older than 30 days
    assert index.contains(*hashes(spark, ["t1", "t2", "x7"]), later).tolist() == [
        True, False, True]
    assert len(index) == 43


def test_an_index_not_loaded_refuses_look_ups(spark):
    with pytest.raises(RuntimeError, match="not loaded"):
        LandedIdIndex("transaction_id", 30).contains(*hashes(spark, ["t1"]), NOW)


def test_repeated_pairs_are_the_pairs_that_occur_more_than_once():
    h1 = np.array([5, 3, 5, 9, 5, 3, 7, 5], dtype=np.int64)
    h2 = np.array([1, 2, 1, 4, 8, 6, 0, 1], dtype=np.int64)
    # (5, 1) three times; (5, 8) and (3, 2)/(3, 6) share only their first hash
    assert repeated_pairs(h1, h2).tolist() == [[5, 1]]
    assert repeated_pairs(h1[[1, 3, 6]], h2[[1, 3, 6]]).shape == (0, 2)
    assert repeated_pairs(np.array([2, 2], dtype=np.int64),
                          np.array([-1, -1], dtype=np.int64)).tolist() == [[2, -1]]


def test_ids_sharing_a_first_hash_are_told_apart_by_the_second(index):
    index.add(np.array([5, 5, 3, 5, 9], dtype=np.int64),
              np.array([1, 8, 2, 6, 4], dtype=np.int64), NOW.date())
    index.add(np.array([5], dtype=np.int64), np.array([3], dtype=np.int64), NOW.date())
    h1 = np.array([5, 5, 5, 5, 5, 3, 3, 9, 1, 2**62], dtype=np.int64)
    h2 = np.array([8, 1, 6, 3, 7, 2, 6, 4, 1, 4], dtype=np.int64)
    assert index.contains(h1, h2, NOW).tolist() == [True, True, True, True, False,
                                                    True, False, True, False, False]
