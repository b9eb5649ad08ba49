"""The ids landed within the duplicate window, kept in Spark's memory for the duplicate check.

The streaming job judges a record a duplicate when its id was landed before (within
`validation.duplicate_window_days` of ingest time). Reading those ids from the landing zone every
micro-batch would read it at a new Delta version each time, and Spark rebuilds a Delta
snapshot's file list for every new version it reads (about a second per micro-batch on two
cores, growing with the landing zone's files). Instead the index is loaded from the landing
zone once, when the job starts, as a cached DataFrame; each micro-batch adds the ids it landed as
a small cached piece, and every `max_pieces` pieces are compacted into the base. The check is
then a scan of ids in executor memory (spilled to disk past it).

Loaded afresh on every start, at the landing version before the first micro-batch, so a
micro-batch that Spark runs again after a crash sees exactly what was landed before it.
"""

from __future__ import annotations

import datetime as dt
from functools import reduce

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

DATE = "ingest_date"


class LandedIdIndex:
    """Ids (column `id_column`) landed since `window_days` before now, by `ingest_date`."""

    def __init__(self, id_column: str, window_days: int, max_pieces: int = 8) -> None:
        """An empty index; `load` fills it."""
        self.id_column, self.window_days, self.max_pieces = id_column, window_days, max_pieces
        self.base: DataFrame | None = None
        self.pieces: list[DataFrame] = []

    @property
    def loaded(self) -> bool:
        """Whether `load` has run."""
        return self.base is not None

    def _since(self, now: dt.datetime) -> Column:
        return F.col(DATE) >= F.lit((now - dt.timedelta(days=self.window_days)).date())

    def _cache(self, df: DataFrame) -> DataFrame:
        parallelism = df.sparkSession.sparkContext.defaultParallelism
        cached = (df.select(self.id_column, DATE).coalesce(parallelism)
                  .persist(StorageLevel.MEMORY_AND_DISK))
        cached.count()  # materialized now: its source may be gone by the time it is read
        return cached

    def load(self, landing: DataFrame, now: dt.datetime) -> int:
        """Fill the index from the landing zone (read at the version before the next
        micro-batch); return how many ids it holds."""
        self.close()
        self.base = self._cache(landing.where(self._since(now)))
        return self.base.count()

    def ids(self, now: dt.datetime) -> DataFrame:
        """The landed ids within the window, as a one-column frame."""
        if self.base is None:
            raise RuntimeError("the landed-id index is not loaded")
        every = reduce(DataFrame.unionByName, self.pieces, self.base)
        parallelism = self.base.sparkSession.sparkContext.defaultParallelism
        return every.where(self._since(now)).select(self.id_column).coalesce(parallelism)

    def add(self, landed: DataFrame, now: dt.datetime) -> None:
        """Add the ids of a micro-batch's landed events (materialized at once, so call it while
        `landed`'s source is still cached); compact when there are `max_pieces` pieces."""
        self.pieces.append(self._cache(landed))
        if len(self.pieces) >= self.max_pieces:
            previous = [self.base, *self.pieces]
            self.base = self._cache(reduce(DataFrame.unionByName, self.pieces, self.base)
                                    .where(self._since(now)))
            self.pieces = []
            for df in previous:
                df.unpersist()

    def close(self) -> None:
        """Release the cached frames."""
        for df in [self.base, *self.pieces]:
            if df is not None:
                df.unpersist()
        self.base, self.pieces = None, []
