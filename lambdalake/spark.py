"""The one SparkSession factory of lambdalake (call it only inside a job's `main()` or a fixture).

Like delta-io's `configure_spark_with_delta_pip`, it adds the Delta Lake and Spark-Kafka artifacts:
locally from the JVM cache filled by `lambdalake setup` (so jobs start offline); under
`spark-submit` it leaves the classpath and master to the command line (`--packages`, `--master`).
"""

from __future__ import annotations

import os
from importlib import resources

from pyspark.sql import SparkSession

from lambdalake import class_archive, jvm
from lambdalake.config import Settings

_DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}

_BASE_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.streaming.forceDeleteTempCheckpointLocation": "true",
    "spark.databricks.delta.schema.autoMerge.enabled": "false",
    # dates before 1582 (MIMIC-III shifts the birth dates of patients over 89 into the 1800s and
    # earlier) are written and read as proleptic Gregorian, as DuckDB and delta-rs read them
    "spark.sql.parquet.datetimeRebaseModeInWrite": "CORRECTED",
    "spark.sql.parquet.datetimeRebaseModeInRead": "CORRECTED",
    "spark.sql.parquet.int96RebaseModeInWrite": "CORRECTED",
    "spark.sql.parquet.int96RebaseModeInRead": "CORRECTED",
    # Compiled generated code is cached by its source text; a streaming micro-batch plans about
    # a hundred queries' worth of code, more than the default 100 entries, so every micro-batch
    # compiled it all again (0.7 s a micro-batch on two cores; 1,185 -> 312 compilations over
    # 13 micro-batches with this).
    "spark.sql.codegen.cache.maxEntries": "2000",
}


# The local driver's garbage collector. Spark's work on two cores is throughput work (a
# micro-batch's cache, Arrow collects, codegen), and the parallel collector, against the JVM's
# default G1, made a warm 500,000-event micro-batch 14-22% faster, the freshness p99 at 5,000
# events/s 4.7-5.6 s instead of 7.6-12.2 s, and a 10M-event batch run 31.7 s instead of 35.0 s
# (runs alternated; BENCHMARKS.md, 2026-12-02, session 25). Its pauses in that freshness run:
# at most 0.45 s, the driver's live heap about 220 MB.
DRIVER_GC = "-XX:+UseParallelGC"

# HotSpot does not compile a method of more than 8,000 bytes of bytecode by default, and runs
# it interpreted. The method Spark generates for a domain's validation is about that size: the
# clicks domain's crossed it (its validation ran at half speed: 3.6-3.7 s against 1.9-2.1 s with
# this, for 300,000 cached records) and the tolls domain's sat 134 bytes under it, so any check
# added to a spec could halve the job's speed. With this such a method is compiled like any other
# (BENCHMARKS.md, 2026-12-03, session 32). On a cluster, give it to the executors too (README).
DRIVER_JIT = "-XX:-DontCompileHugeMethods"


def under_spark_submit() -> bool:
    """True when this Python process was launched by spark-submit (the JVM is already up)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def spark_conf(settings: Settings, app_name: str) -> dict[str, str]:
    """The Spark configuration the factory applies (pure: no session is created)."""
    conf = {"spark.app.name": app_name, **_DELTA_CONF, **_BASE_CONF,
            "spark.sql.shuffle.partitions": str(settings.spark.shuffle_partitions)}
    if not under_spark_submit():
        if settings.spark.master.startswith("local"):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        log4j = resources.files("lambdalake.resources").joinpath("spark-log4j2.properties")
        conf.update({
            "spark.master": settings.spark.master,
            "spark.driver.memory": settings.spark.driver_memory,
            "spark.jars": ",".join(jvm.jars(settings, "spark")),
            "spark.driver.extraJavaOptions": (f"-Dlog4j2.configurationFile=file:{log4j} "
                                              f"{DRIVER_GC} {DRIVER_JIT} "
                                              f"{class_archive.java_options(settings)}").strip(),
            "spark.ui.enabled": "false",
            # Delta rebuilds a table's snapshot with this many tasks after each commit; the
            # default (50) dominates small local micro-batches (a write: ~2.2s -> ~0.7s).
            "spark.databricks.delta.snapshotPartitions": "2",
        })
    conf.update(settings.spark.conf)
    return conf


def create_spark_session(settings: Settings, app_name: str) -> SparkSession:
    """Create (or get) the SparkSession with Delta, Kafka and lambdalake's settings."""
    builder = SparkSession.builder
    for key, value in spark_conf(settings, app_name).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
