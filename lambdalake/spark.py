"""The one SparkSession factory of lambdalake (call it only inside a job's `main()` or a fixture).

Like delta-io's `configure_spark_with_delta_pip`, it adds the Delta Lake and Spark-Kafka artifacts:
locally from the JVM cache filled by `lambdalake setup` (so jobs start offline); under
`spark-submit` it leaves the classpath and master to the command line (`--packages`, `--master`).
"""

from __future__ import annotations

import os
import re
from importlib import resources

from pyspark.sql import SparkSession

from lambdalake import class_archive, jvm
from lambdalake.config import Settings
from lambdalake.errors import LambdalakeError

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
#
# Its second compiler (C2) compiles a method once it has run 5,000 times or looped 40,000 times
# (HotSpot's defaults); in a cold run it then compiles a great deal of Spark's, Kafka's and
# Jackson's machinery that runs warm enough to pass those counts but not hot enough to repay the
# compilation, on the same two cores as the tasks. Four times those counts keep C2 to the hot
# code: in a 1M-event run, C2's CPU time 6.0-6.5 s instead of 8.2-8.8 s, the tasks' unchanged,
# the run 17.8-18.6 s instead of 18.1-20.2 s over eight pairs alternated, small micro-batches and
# freshness unchanged (BENCHMARKS.md, 2026-12-04, session 38).
DRIVER_JIT = ("-XX:-DontCompileHugeMethods -XX:Tier4InvocationThreshold=20000 "
              "-XX:Tier4MinInvocationThreshold=2400 -XX:Tier4CompileThreshold=60000 "
              "-XX:Tier4BackEdgeThreshold=160000")

# The local driver's young generation: at most this many MiB (a quarter of the heap when that is
# less). Left to the parallel collector's own sizing it grew to 1.2 GB within the first
# micro-batch of 500,000 events (the process to 2.4 GB), and every page a process touches for the
# first time costs the kernel a page fault and a page to clear: on virtual machines that back
# memory only when it is first touched, as this project's are, that was 5-15 s of system CPU in a
# 1M-event run (`perf`: a fifth of both cores' time clearing pages). Capped, the run takes
# 32.5-34.7 s instead of 36.7-38.0 s (runs alternated). A smaller cap gains no more on it and
# costs the steady state (512 MB: freshness p99 2.27, 2.38 s against 2.01, 2.22 s at 5,000
# events/s, more young collections); a fixed young generation (`-Xmn`) left the old one too
# small, with a full collection every other small micro-batch (BENCHMARKS.md, 2026-12-03,
# session 33).
DRIVER_YOUNG_MAX_MIB = 768

_MEMORY = re.compile(r"(\d+)\s*([kmgtp]?)b?", re.IGNORECASE)
_MIB_PER_UNIT = {"k": 1 / 1024, "": 1, "m": 1, "g": 1024, "t": 1024**2, "p": 1024**3}


def memory_mib(value: str, name: str = "spark.driver_memory") -> int:
    """A Spark memory size (`4g`, `4096m`, `512`: MiB when no unit is given) in MiB; a
    `LambdalakeError` naming setting `name` when it is not one."""
    match = _MEMORY.fullmatch(value.strip())
    if match is None or int(match.group(1)) == 0:
        raise LambdalakeError(f"{name} = {value!r} is not a memory size: give it like 4g or "
                              "4096m")
    return int(int(match.group(1)) * _MIB_PER_UNIT[match.group(2).lower()])


def driver_young_option(driver_memory: str) -> str:
    """The local driver's `-XX:MaxNewSize`: `DRIVER_YOUNG_MAX_MIB`, or a quarter of
    `driver_memory` when that is less."""
    return f"-XX:MaxNewSize={min(DRIVER_YOUNG_MAX_MIB, memory_mib(driver_memory) // 4)}m"


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
        young = driver_young_option(settings.spark.driver_memory)
        conf.update({
            "spark.master": settings.spark.master,
            "spark.driver.memory": settings.spark.driver_memory,
            "spark.jars": ",".join(jvm.jars(settings, "spark")),
            "spark.driver.extraJavaOptions": (f"-Dlog4j2.configurationFile=file:{log4j} "
                                              f"{DRIVER_GC} {DRIVER_JIT} {young} "
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
    if not under_spark_submit():
        jvm.check_java()  # pyspark is about to launch the driver JVM
    builder = SparkSession.builder
    for key, value in spark_conf(settings, app_name).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
