"""The ids landed within the duplicate window, as 128-bit hashes in the driver's memory.

The streaming job judges a record a duplicate when its id was landed before (within
`validation.duplicate_window_days` of ingest time). Reading those ids from the landing zone every
micro-batch would read it at a new Delta version each time (Spark rebuilds a snapshot's file list
for every new version: about a second a micro-batch), and scanning a cached copy of them costs a
scan of the whole window every micro-batch (about 2.5 s for 10M ids on two cores). Instead each
id is kept as two 64-bit hashes (`xxhash64` with two seeds, computed by Spark), in sorted numpy
arrays per ingest date: 16 bytes an id, and a look-up is a binary search per id of the
micro-batch, whatever the window holds. Equal hashes are taken for equal ids: two different
ids share both with a probability of about 2^-128 a pair (for 10^10 ids in a window, about 10^-19
that any two do), far below the rate of undetected hardware errors.

Loaded afresh on every start, from the landing zone at the version before the first micro-batch,
so a micro-batch that Spark runs again after a crash sees exactly what was landed before it.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

DATE = "ingest_date"
HASH_COLUMNS = ("id_hash_1", "id_hash_2")


def id_hashes(id_column: str) -> list[Column]:
    """The two 64-bit hashes of an id, as columns `id_hash_1`, `id_hash_2`."""
    column = F.col(id_column)
    return [F.xxhash64(column).alias(HASH_COLUMNS[0]),
            F.xxhash64(F.lit("lambdalake"), column).alias(HASH_COLUMNS[1])]


def repeated_pairs(h1: np.ndarray, h2: np.ndarray) -> np.ndarray:
    """The (h1, h2) pairs that occur more than once among the given ones, each once, as an
    (n, 2) array. Sorts by the first hash alone (about 15 ms for 500,000 ids, where a unique of
    the pairs takes 250-330 ms) and compares both hashes only where a first hash repeats,
    which is rare."""
    order = np.argsort(h1)
    in_order = h1[order]
    same = np.flatnonzero(in_order[1:] == in_order[:-1])
    if not len(same):
        return np.empty((0, 2), dtype=np.int64)
    suspects = order[np.union1d(same, same + 1)]
    pairs, seen = np.unique(np.stack([h1[suspects], h2[suspects]], axis=1), axis=0,
                            return_counts=True)
    return pairs[seen > 1]


def collect_arrow(df: DataFrame) -> pa.Table:
    """Collect a frame to the driver as one Arrow table (no per-row Python objects)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    batches = df._collect_as_arrow()  # pyspark's own Arrow collection (used by toPandas)
    if not batches:
        return to_arrow_schema(df.schema).empty_table()
    return pa.Table.from_batches(batches)


class _SortedPairs:
    """A set of (h1, h2) hash pairs as a few runs sorted by h1: each added piece is a run, and
    runs of similar size are merged (as in a log-structured merge), so a look-up searches about
    log2(n) runs and each pair is re-sorted about log2(n) times in all."""

    def __init__(self) -> None:
        self.runs: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, h1: np.ndarray, h2: np.ndarray) -> None:
        order = np.argsort(h1, kind="stable")
        self.runs.append((h1[order], h2[order]))
        while len(self.runs) > 1 and len(self.runs[-2][0]) <= 2 * len(self.runs[-1][0]):
            (a1, a2), (b1, b2) = self.runs.pop(-2), self.runs.pop()
            h1_all, h2_all = np.concatenate([a1, b1]), np.concatenate([a2, b2])
            order = np.argsort(h1_all, kind="stable")  # two sorted runs: a linear merge
            self.runs.append((h1_all[order], h2_all[order]))

    def __len__(self) -> int:
        return sum(len(run[0]) for run in self.runs)

    def contains(self, h1: np.ndarray, h2: np.ndarray) -> np.ndarray:
        """Which of the pairs are in the set, the pairs sorted by `h1` (sorted keys are looked
        up several times faster than random ones: 30 ms against 120 ms for 500,000 in 500,000).

        Where a first hash is found, the second is compared with the run's pair at that place
        for all of them at once; only a first hash the run holds more than once (two ids
        sharing a 64-bit hash: rare) is searched further, one by one. (One by one for every
        found id, a micro-batch of 500,000 duplicates took 2.9 s here.)"""
        found = np.zeros(len(h1), dtype=bool)
        for s1, s2 in self.runs:
            if not len(s1):
                continue
            left = np.searchsorted(s1, h1, "left")
            at = np.minimum(left, len(s1) - 1)
            same_first = s1[at] == h1
            found |= same_first & (s2[at] == h2)
            after = np.minimum(at + 1, len(s1) - 1)
            more = same_first & ~found & (after > at) & (s1[after] == h1)
            for i in np.flatnonzero(more):  # the same first hash again further on
                right = np.searchsorted(s1, h1[i], "right")
                found[i] = bool(np.any(s2[left[i]:right] == h2[i]))
        return found


class LandedIdIndex:
    """Ids (column `id_column`) landed since `window_days` before now, by `ingest_date`."""

    def __init__(self, id_column: str, window_days: int) -> None:
        """An empty index; `load` fills it."""
        self.id_column, self.window_days = id_column, window_days
        self.by_date: dict[dt.date, _SortedPairs] | None = None

    @property
    def loaded(self) -> bool:
        """Whether `load` has run."""
        return self.by_date is not None

    def _first_date(self, now: dt.datetime) -> dt.date:
        return (now - dt.timedelta(days=self.window_days)).date()

    def load(self, landing: DataFrame | None, now: dt.datetime) -> int:
        """Fill the index from the landing zone (read at the version before the next
        micro-batch; None when it holds no event then); return how many ids it holds."""
        self.by_date = {}
        if landing is None:
            return 0
        rows = collect_arrow(landing.where(F.col(DATE) >= F.lit(self._first_date(now)))
                             .select(DATE, *id_hashes(self.id_column)))
        if rows.num_rows:
            dates = rows.column(DATE).to_numpy(zero_copy_only=False)
            h1 = rows.column(HASH_COLUMNS[0]).to_numpy()
            h2 = rows.column(HASH_COLUMNS[1]).to_numpy()
            for day in np.unique(dates):
                pick = dates == day
                self.add(h1[pick], h2[pick], _as_date(day))
        return len(self)

    def __len__(self) -> int:
        return sum(len(pairs) for pairs in (self.by_date or {}).values())

    def contains(self, h1: np.ndarray, h2: np.ndarray, now: dt.datetime) -> np.ndarray:
        """Which of the ids (given by their hashes) were landed within the window; ingest dates
        that have left the window are dropped from the index here."""
        if self.by_date is None:
            raise RuntimeError("the landed-id index is not loaded")
        first = self._first_date(now)
        for day in [day for day in self.by_date if day < first]:  # out of the window
            del self.by_date[day]
        order = np.argsort(h1)
        h1, h2 = h1[order], h2[order]
        in_order = np.zeros(len(h1), dtype=bool)
        for pairs in self.by_date.values():
            in_order |= pairs.contains(h1, h2)
        found = np.empty_like(in_order)
        found[order] = in_order
        return found

    def add(self, h1: np.ndarray, h2: np.ndarray, day: dt.date) -> None:
        """Add the hashes of ids landed on ingest date `day`."""
        if self.by_date is None:
            raise RuntimeError("the landed-id index is not loaded")
        if len(h1):
            self.by_date.setdefault(day, _SortedPairs()).add(h1, h2)

    def close(self) -> None:
        """Forget the ids."""
        self.by_date = None


def _as_date(value: object) -> dt.date:
    if isinstance(value, np.datetime64):
        return value.astype("datetime64[D]").astype(dt.date)
    return value  # already a datetime.date
