"""The clinical batch job: MIMIC-III raw CSVs in the landing zone -> OMOP CDM v5.4 Delta tables.

It reads the latest landing of `lambdalake land mimic` with the raw specs' schemas, runs one Spark
SQL file per CDM table (`batch/omop/sql/<table>.sql`, in dependency order) into a staging area,
conforms each result to its CDM spec (column order and types), and only when every table has
been staged publishes each one with a single Delta overwrite. Concept maps (CSV files such as
`admission_type_to_concept.csv`) come from `--concept-maps`; without them every mapped concept is
0 and the source value is kept, as OMOP conventions say.

Work in progress (issue 4): person, death and visit_occurrence so far.

Usage (local):
    lambdalake batch run omop [--concept-maps FOLDER] [--sql-only]
Usage on a cluster:
    spark-submit --master yarn --packages io.delta:delta-spark_2.12:3.3.2 \
      --py-files dist/lambdalake-jobs.zip batch/omop_etl.py [--concept-maps FOLDER] [--sql-only]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

import schemas
from batch.omop.land import raw_specs
from lambdalake import lake
from lambdalake.config import Settings, load_settings
from lambdalake.errors import LambdalakeError

TABLES = ("person", "death", "visit_occurrence")  # dependency order
PARAMETERS = {"raw": "mimic_raw", "maps": "mimic_maps", "staging": "omop_staging"}
MAPS = {
    "ethnicity_to_concept":
        "ethnicity string, race_concept_id int, ethnicity_concept_id int, priority int",
    "admission_type_to_concept": "admission_type string, visit_concept_id int",
    "admission_location_to_concept": "admission_location string, concept_id int",
    "discharge_location_to_concept": "discharge_location string, concept_id int, comment string",
}


def render_sql(table: str, parameters: dict[str, str] | None = None) -> str:
    """The SQL of a CDM table with its schema prefixes filled in."""
    text = resources.files("batch.omop").joinpath("sql", f"{table}.sql").read_text()
    return text.format(**(parameters or PARAMETERS))


def latest_landing(settings: Settings) -> Path:
    """Folder of the latest MIMIC-III landing."""
    try:
        manifest = DeltaTable(lake.delta_uri(lake.table_path(settings, "mimic_landings")))
    except TableNotFoundError:
        raise LambdalakeError("nothing is landed yet: run `lambdalake land mimic PATH` first"
                              ) from None
    landing_id = max(manifest.to_pyarrow_table(columns=["landing_id"]).column(0).to_pylist())
    return Path(lake.table_path(settings, "mimic_landings")).parent / "mimic" / landing_id


def register_inputs(spark: SparkSession, landing: Path, maps: Path | None) -> None:
    """Temp views of the landed raw files and of the concept maps (empty when absent)."""
    for spec in raw_specs():
        path = landing / spec.source_file
        view = f"{PARAMETERS['raw']}_{spec.source_file[:-len('.csv')].lower()}"
        schema = T.StructType([T.StructField(f.name, f.dataType, True)
                               for f in schemas.spark_schema(spec.name)])
        if path.exists():
            df = (spark.read.option("header", True).option("mode", "FAILFAST")
                  .option("timestampFormat", "yyyy-MM-dd HH:mm:ss").option("multiLine", True)
                  .option("escape", '"').schema(schema).csv(str(path)))
        else:
            df = spark.createDataFrame([], schema)
        df.createOrReplaceTempView(view)
    for name, ddl in MAPS.items():
        path = maps / f"{name}.csv" if maps else None
        df = (spark.read.option("header", True).schema(ddl).csv(str(path))
              if path is not None and path.exists() else spark.createDataFrame([], ddl))
        df.createOrReplaceTempView(f"{PARAMETERS['maps']}_{name}")


def conform(df: DataFrame, table: str) -> DataFrame:
    """The result in the CDM table's column order and types."""
    spec = schemas.load(f"omop_{table}")
    return df.select(*[F.col(c.name).cast(schemas.spark_type(c.type)).alias(c.name)
                       for c in spec.columns])


@dataclass(frozen=True)
class EtlRun:
    """Row counts and Delta versions of the published CDM tables."""

    row_counts: dict[str, int]
    versions: dict[str, int]
    seconds: float


def run(spark: SparkSession, settings: Settings, maps: Path | None = None) -> EtlRun:
    """Stage every CDM table, then publish them; return what was published."""
    started = time.monotonic()
    register_inputs(spark, latest_landing(settings), maps)
    staged = {}
    for table in TABLES:
        path = f"{settings.lake.root.rstrip('/')}/omop_staging/{table}"
        conform(spark.sql(render_sql(table)), table).write.format("delta").mode(
            "overwrite").option("overwriteSchema", True).save(path)
        staged[table] = spark.read.format("delta").load(path)
        staged[table].createOrReplaceTempView(f"{PARAMETERS['staging']}_{table}")
    counts, versions = {}, {}
    for table, df in staged.items():
        target = lake.table_path(settings, f"omop_{table}")
        tag = f"omop:{table}:{time.time_ns()}"
        lake.write_tagged(df, target, "overwrite", tag)
        versions[table] = lake.commit_version(spark, target, tag)
        counts[table] = spark.read.format("delta").load(target).count()
    return EtlRun(counts, versions, time.monotonic() - started)


def main(argv: list[str] | None = None) -> int:
    """Entry point for spark-submit and `lambdalake batch run omop`."""
    parser = argparse.ArgumentParser(prog="batch/omop_etl.py",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--concept-maps", type=Path, default=None,
                        help="folder of MIMIC-to-OMOP concept map CSV files")
    parser.add_argument("--sql-only", action="store_true",
                        help="print the rendered SQL of every CDM table and stop")
    args = parser.parse_args(argv)
    if args.sql_only:
        for table in TABLES:
            print(f"-- {table}\n{render_sql(table)}")
        return 0
    from lambdalake.spark import create_spark_session

    settings = load_settings()
    spark = create_spark_session(settings, "lambdalake-batch-omop")
    result = run(spark, settings, args.concept_maps)
    print("omop: published " + ", ".join(f"{t} {n} rows (v{result.versions[t]})"
                                         for t, n in result.row_counts.items())
          + f" in {result.seconds:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
