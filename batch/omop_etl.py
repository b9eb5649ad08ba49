"""The clinical batch job: MIMIC-III raw CSVs in the landing zone -> OMOP CDM v5.4 Delta tables.

It reads the latest MIMIC-III landing (`lambdalake land mimic`) with the raw specs' schemas and the
latest vocabulary landing (`lambdalake land vocabulary`: concept maps, and Athena's CONCEPT and
CONCEPT_RELATIONSHIP where a user has them; without a vocabulary every concept is 0 and the source
value is kept). Then:

1. stage: one Spark SQL file per CDM table (`batch/omop/sql/<table>.sql`), in dependency order,
   each conformed to its CDM spec and written to `<lake>/omop_staging/<table>`;
2. check: the conformance rules derived from `schemas/omop_*` (`batch/omop/checks.py`, Great
   Expectations) run on each staged table, parents first; a failing row goes to
   `quarantine.omop_quarantine` with the rules it broke and is not published;
3. publish: each table is replaced in one Delta commit (`<lake>/omop/omop_<table>`), so a run that
   dies midway leaves every table at its last good version, and a JSON message (table_name,
   row_count, quarantined_count, delta_version, duration_seconds, run_id, published_at) goes to
   the Kafka topic `etl.table_loaded` and to the `etl.table_loaded` Delta table.

Ids come from the source ids (or a row number over them in a fixed order), so a re-run over the
same landing gives the same rows and ids.

Usage (local; with the default local Kafka address the broker is started for the run if needed):
    lambdalake batch run omop [--no-announce] [--sql-only]
Usage on a cluster:
    spark-submit --master yarn --packages io.delta:delta-spark_2.12:3.3.2 \
      --py-files dist/lambdalake-jobs.zip batch/omop_etl.py [--no-announce] [--sql-only]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Protocol

import pyarrow as pa
from deltalake import write_deltalake
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

import schemas
from batch.omop import checks, vocabulary
from batch.omop.land import latest_landing, raw_specs
from lambdalake import lake
from lambdalake.config import Settings, load_settings
from lambdalake.errors import LambdalakeError

# Staging (dependency) order: a table's SQL reads only raw inputs and the tables before it.
TABLES = ("concept", "concept_relationship", "care_site", "person", "death", "visit_occurrence",
          "visit_detail", "condition_occurrence", "procedure_occurrence", "drug_exposure",
          "measurement", "observation", "observation_period")
# Check order: parents before the rows that refer to them; the observation period before events.
CHECK_ORDER = ("concept", "concept_relationship", "care_site", "person", "observation_period",
               "death", "visit_occurrence", "visit_detail", "condition_occurrence",
               "procedure_occurrence", "drug_exposure", "measurement", "observation")
INTERMEDIATE = ("source_to_standard",)
PARAMETERS = {"raw": "mimic_raw", "maps": "mimic_maps", "vocab": "omop_vocab",
              "intermediate": "omop_intermediate", "staging": "omop_staging"}
ROW = "_staging_row"


def render_sql(name: str, parameters: dict[str, str] | None = None) -> str:
    """The SQL of a CDM table (or `intermediate/<name>`) with its schema prefixes filled in."""
    text = resources.files("batch.omop").joinpath("sql", f"{name}.sql").read_text()
    return text.format(**(parameters or PARAMETERS))


def register_inputs(spark: SparkSession, landing: Path, vocabulary_folder: Path | None) -> bool:
    """Temp views of the landed raw files (empty when an optional one is absent), of the
    vocabulary and of the intermediate SQL. Returns whether a standard CONCEPT was landed."""
    for spec in raw_specs():
        path = landing / spec.source_file
        view = f"{PARAMETERS['raw']}_{spec.source_file[:-len('.csv')].lower()}"
        schema = schemas.spark_schema(spec.name, all_nullable=True)
        if path.exists():
            df = (spark.read.option("header", True).option("mode", "FAILFAST")
                  .option("timestampFormat", "yyyy-MM-dd HH:mm:ss").option("multiLine", True)
                  .option("escape", '"').schema(schema).csv(str(path)))
        else:
            df = spark.createDataFrame([], schema)
        df.createOrReplaceTempView(view)
    has_concept = vocabulary.register_vocabulary(spark, vocabulary_folder, PARAMETERS["maps"],
                                                 PARAMETERS["vocab"])
    for name in INTERMEDIATE:
        spark.sql(render_sql(f"intermediate/{name}")).createOrReplaceTempView(
            f"{PARAMETERS['intermediate']}_{name}")
    return has_concept


def conform(df: DataFrame, table: str) -> DataFrame:
    """The result in the CDM table's column order and types."""
    spec = schemas.load(f"omop_{table}")
    return df.select(*[F.col(c.name).cast(schemas.spark_type(c.type)).alias(c.name)
                       for c in spec.columns])


def with_observation_period(observation_period: DataFrame,
                            table: str) -> Callable[[DataFrame], DataFrame]:
    """Transformation adding the person's observation period and the event's last date, which
    the observation-period rules compare against."""
    dates = checks.event_dates(schemas.load(f"omop_{table}"))

    def transform(df: DataFrame) -> DataFrame:
        if dates is None:
            return df
        first, last = dates
        periods = observation_period.select(
            "person_id", F.col("observation_period_start_date").alias(checks.OBSERVATION_START),
            F.col("observation_period_end_date").alias(checks.OBSERVATION_END))
        return (df.join(periods, "person_id", "left")
                .withColumn(checks.EVENT_END, F.coalesce(F.col(last or first), F.col(first))))

    return transform


class Announcer(Protocol):
    """Where completion messages go."""

    def announce(self, message: dict[str, object]) -> None:
        """Send one message."""


class KafkaAnnouncer:
    """Sends completion messages to the `etl.table_loaded` topic, keyed by table."""

    def __init__(self, settings: Settings) -> None:
        from lambdalake import topics

        topics.ensure_topics(settings, settings.topics.etl_table_loaded)
        self.topic = settings.topics.etl_table_loaded
        self.producer = topics.producer(settings)

    def announce(self, message: dict[str, object]) -> None:
        """Send one message and wait for the broker's acknowledgement."""
        self.producer.send(self.topic, key=str(message["table_name"]).encode(),
                           value=json.dumps(message, default=str).encode())
        self.producer.flush(timeout=30)

    def close(self) -> None:
        """Close the producer."""
        self.producer.close(timeout=10)


@dataclass
class EtlRun:
    """What a run published and quarantined."""

    run_id: str
    has_vocabulary: bool
    row_counts: dict[str, int] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, Counter[str]] = field(default_factory=dict)  # table -> rule -> rows
    quarantined_rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    docs_index: Path | None = None  # the Data Docs of this run's checks


def _stage(spark: SparkSession, settings: Settings, table: str) -> DataFrame:
    path = f"{settings.lake.root.rstrip('/')}/omop_staging/{table}"
    (conform(spark.sql(render_sql(table)), table)
     .withColumn(ROW, F.monotonically_increasing_id())
     .write.format("delta").mode("overwrite").option("overwriteSchema", True).save(path))
    staged = spark.read.format("delta").load(path)
    staged.createOrReplaceTempView(f"{PARAMETERS['staging']}_{table}")
    return staged


def _allowed_values(staged: DataFrame, table: str, clean: dict[str, DataFrame],
                    has_vocabulary: bool) -> dict[str, list[object]]:
    """For each foreign key to check: the values of the column that resolve to a parent row."""
    spec = schemas.load(f"omop_{table}")
    parents = (set(clean) | {table}) - (set() if has_vocabulary else {"concept"})
    allowed = {}
    for column, parent in checks.references(spec, parents).items():
        parent_df = staged if parent == table else clean[parent]
        key = schemas.load(f"omop_{parent}").primary_key[0]
        values = (staged.select(column).where(F.col(column).isNotNull()).distinct()
                  .join(parent_df.select(F.col(key).alias(column)).distinct(), column,
                        "left_semi"))
        allowed[column] = [r[0] for r in values.collect()]
    return allowed


def _quarantine(spark: SparkSession, settings: Settings, run_id: str, table: str,
                staged: DataFrame, failures: dict[object, list[str]]) -> DataFrame:
    """Write the failing rows to omop_quarantine; return the rows that passed."""
    bad = spark.createDataFrame([(row, "; ".join(rules)) for row, rules in failures.items()],
                                f"{ROW} long, rules string")
    columns = schemas.load(f"omop_{table}").column_names
    quarantined = staged.join(bad, ROW).select(
        F.lit(run_id).alias("run_id"), F.lit(table).alias("table_name"),
        F.col(ROW).alias("staging_row"), "rules",
        F.to_json(F.struct(*columns)).alias("record"),
        F.current_timestamp().alias("quarantined_at"))
    lake.ensure_table(spark, settings, "omop_quarantine")
    quarantined.write.format("delta").mode("append").save(
        lake.table_path(settings, "omop_quarantine"))
    return staged.join(bad.select(ROW), ROW, "left_anti")


def run(spark: SparkSession, settings: Settings, announcer: Announcer | None = None,
        progress: bool = False) -> EtlRun:
    """Stage, check and publish every CDM table; return what was published."""
    started = time.monotonic()
    landing = latest_landing(settings, "mimic")
    if landing is None:
        raise LambdalakeError("no MIMIC-III data is landed yet: run `lambdalake land mimic PATH` "
                              "first")
    run_id = "omop-" + dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    has_vocabulary = register_inputs(spark, landing, latest_landing(settings, "vocabulary"))
    result = EtlRun(run_id, has_vocabulary)
    spent: Counter[str] = Counter()  # seconds per table, across its phases

    def say(text: str) -> None:
        if progress:
            print(f"omop: {text}", flush=True)

    staged = {}
    for n, table in enumerate(TABLES, 1):
        t0 = time.monotonic()
        staged[table] = _stage(spark, settings, table)
        spent[table] += time.monotonic() - t0
        say(f"staged {n}/{len(TABLES)} {table} ({spent[table]:.1f}s)")
    validator = checks.Validator(lake.docs_folder(settings))
    clean: dict[str, DataFrame] = {}
    for table in CHECK_ORDER:
        t0 = time.monotonic()
        spec = schemas.load(f"omop_{table}")
        frame = staged[table]
        if "observation_period" in clean:
            frame = frame.transform(with_observation_period(clean["observation_period"], table))
        rules = checks.rules_for(spec, _allowed_values(staged[table], table, clean,
                                                       has_vocabulary),
                                 with_observation_period="observation_period" in clean)
        failures = validator.validate(table, frame, rules, ROW)
        result.quarantined[table] = Counter(r for rules in failures.values() for r in rules)
        result.quarantined_rows[table] = len(failures)
        clean[table] = (_quarantine(spark, settings, run_id, table, staged[table], failures)
                        if failures else staged[table])
        spent[table] += time.monotonic() - t0
        say(f"checked {table}: {len(rules)} rules, "
            + (f"{len(failures)} rows quarantined" if failures else "all rows pass"))
    t0 = time.monotonic()
    result.docs_index = validator.build_docs()
    if result.docs_index is not None:
        say(f"data docs: {result.docs_index} ({time.monotonic() - t0:.1f}s)")
    loads = []
    for table in TABLES:
        t0 = time.monotonic()
        target = lake.table_path(settings, f"omop_{table}")
        tag = f"{run_id}:{table}"
        published = clean[table].drop(ROW).cache()
        result.row_counts[table] = published.count()
        lake.write_tagged(published, target, "overwrite", tag)
        published.unpersist()
        result.versions[table] = lake.commit_version(spark, target, tag)
        spent[table] += time.monotonic() - t0
        message = {"table_name": table, "row_count": result.row_counts[table],
                   "quarantined_count": result.quarantined_rows[table],
                   "delta_version": result.versions[table],
                   "duration_seconds": round(spent[table], 3), "run_id": run_id,
                   "published_at": dt.datetime.now(dt.timezone.utc)}
        if announcer is not None:
            announcer.announce(message)
        loads.append(message)
        say(f"published {table}: {result.row_counts[table]} rows, v{result.versions[table]}")
    write_deltalake(lake.delta_uri(lake.table_path(settings, "etl_table_loaded")),
                    pa.Table.from_pylist(loads, schema=schemas.arrow_schema("etl_table_loaded")),
                    mode="append")
    result.seconds = time.monotonic() - started
    return result


def _local_broker(settings: Settings) -> bool:
    """Start the local broker for this run when Kafka is the (default) local one and is down;
    return whether it was started here."""
    from lambdalake import broker

    try:
        state = broker.status(settings)
    except LambdalakeError:
        return False  # a cluster address: the announcer reports it if it is unreachable
    if state.running:
        return False
    broker.start(settings)
    print(f"kafka: started the local broker for this run ({broker.status(settings).detail}); "
          "it is stopped at the end, its topics stay in the state folder")
    return True


def report(result: EtlRun) -> list[str]:
    """Lines summarising a run: rows per table, quarantined rows per rule."""
    lines = [f"omop: run {result.run_id} published {len(result.row_counts)} CDM tables in "
             f"{result.seconds:.1f}s" + ("" if result.has_vocabulary else
                                        " (no standard vocabulary landed: concept tables are "
                                        "empty and concept references are not checked)")]
    for table, rows in result.row_counts.items():
        lines.append(f"  {table:<22} {rows:>8} rows  v{result.versions[table]}"
                     + (f"  ({result.quarantined_rows[table]} quarantined)"
                        if result.quarantined_rows.get(table) else ""))
    for table, rules in result.quarantined.items():
        for rule, rows in sorted(rules.items()):
            lines.append(f"  quarantined: {table} {rows} rows broke {rule}")
    lines.append(f"omop: Data Docs of the checks: {result.docs_index}" if result.docs_index
                 else "omop: no Data Docs (the lake is not on a local filesystem)")
    return lines



def main(argv: list[str] | None = None) -> int:
    """Entry point for spark-submit and `lambdalake batch run omop`."""
    parser = argparse.ArgumentParser(prog="batch/omop_etl.py",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--no-announce", action="store_true",
                        help="do not send the etl.table_loaded Kafka messages (they are still "
                             "recorded in the etl.table_loaded Delta table)")
    parser.add_argument("--sql-only", action="store_true",
                        help="print the rendered SQL of every CDM table and stop")
    args = parser.parse_args(argv)
    if args.sql_only:
        for name in [f"intermediate/{n}" for n in INTERMEDIATE] + list(TABLES):
            print(f"-- {name}\n{render_sql(name)}")
        return 0
    from lambdalake import broker
    from lambdalake.spark import create_spark_session

    settings = load_settings()
    started_broker = False if args.no_announce else _local_broker(settings)
    announcer = None
    try:
        announcer = None if args.no_announce else KafkaAnnouncer(settings)
        spark = create_spark_session(settings, "lambdalake-batch-omop")
        result = run(spark, settings, announcer, progress=True)
    finally:
        if announcer is not None:
            announcer.close()
        if started_broker:
            broker.stop(settings)
    print("\n".join(report(result)))
    if not args.no_announce:
        print(f"omop: {len(result.row_counts)} messages sent to Kafka topic "
              f"{settings.topics.etl_table_loaded}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
