"""A class-data-sharing archive of the Spark driver's classes, so local jobs start sooner.

A local job's JVM loads and verifies some 20,000 classes (Spark, Delta Lake, Scala) before and
during its first Delta operations. `lambdalake setup` records them once in a dynamic CDS archive
(Java's `-XX:ArchiveClassesAtExit`, after a small warm-up: the streaming job's start-up on a
temporary lake), and the SparkSession factory then starts the driver JVM with
`-XX:SharedArchiveFile`, which maps them ready-made. Measured on two cores: session start 5.0 ->
2.8 s, the first Delta operation 8.0 -> 6.1 s (BENCHMARKS.md, 2026-12-02).

The archive is only valid for the JVM and the classpath it was made with, so its name carries a
hash of both; a job whose JVM or jars changed finds no archive of that name and starts as before
(and the JVM itself ignores, silently, an archive that does not match). Under spark-submit the
driver's JVM options are the command line's: no archive is used.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lambdalake import jvm
from lambdalake.config import Settings

KEEP = 3  # archives kept in the cache (one per JVM and classpath; the newest)
# silence the JVM's CDS warnings: an archive that does not match is simply not used
QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"


def _java_identity() -> str:
    """The JVM pyspark launches: its real path and its module image's size and time, which
    change with any update of the JDK (no JVM is started)."""
    java = jvm.java_executable()
    if java is None:
        return "no java"
    real = Path(os.path.realpath(java))
    modules = real.parent.parent / "lib" / "modules"
    stat = modules.stat() if modules.exists() else real.stat()
    return f"{real} {stat.st_size} {stat.st_mtime_ns}"


def _usable(archive: Path) -> bool:
    """Whether a JVM starts with the archive (a damaged one makes it crash, not ignore it)."""
    with tempfile.TemporaryDirectory() as crash_reports:  # where a crash writes hs_err_*.log
        run = subprocess.run([jvm.java_executable() or "java", f"-XX:SharedArchiveFile={archive}",
                              *QUIET.split(), "-version"], capture_output=True, timeout=60,
                             cwd=crash_reports)
    return run.returncode == 0


def archive_path(settings: Settings) -> Path:
    """Where the archive for this JVM, pyspark and pinned jars is (it may not exist)."""
    import pyspark

    identity = "\n".join([_java_identity(), str(Path(pyspark.__file__).parent),
                          *jvm.jars(settings, "spark")])
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return Path(settings.jvm.cache_dir).expanduser() / f"spark-classes-{digest}.jsa"


def java_options(settings: Settings) -> str:
    """The driver JVM options that use the archive, or "" when there is none."""
    path = archive_path(settings)
    return f"-XX:SharedArchiveFile={path} {QUIET}" if path.exists() else ""


def build(settings: Settings, log: bool = True) -> Path | None:
    """Make the archive if it is missing (a warm-up in a child process, about a minute); return
    its path, or None (with one line saying why) when it could not be made: jobs then start as
    before."""
    target = archive_path(settings)
    if target.exists():
        return target
    if log:
        print(f"lambdalake: recording the Spark driver's classes in {target} (once, about a "
              "minute) ...", flush=True)
    began = time.monotonic()
    for stale in target.parent.glob("spark-classes-*.tmp"):  # of a setup killed an hour ago
        if time.time() - stale.stat().st_mtime > 3600:
            stale.unlink(missing_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    env = {**os.environ, "LAMBDALAKE_CLASS_ARCHIVE_DUMP": str(partial)}
    try:
        run = subprocess.run([sys.executable, "-m", "lambdalake.class_archive"], env=env,
                             capture_output=True, text=True, timeout=900)
        lines = [ln for ln in (run.stdout + run.stderr).splitlines() if ln.strip()]
        reason = ((lines[-1] if lines else f"exit {run.returncode}") if run.returncode else
                  "no archive was written" if not partial.exists() else
                  "a JVM did not start with it" if not _usable(partial) else None)
    except subprocess.TimeoutExpired:
        reason = "the warm-up took over 15 minutes"
    if reason is not None:
        partial.unlink(missing_ok=True)
        print(f"lambdalake: no class archive (jobs start without it): {reason}", flush=True)
        return None
    partial.replace(target)
    for old in sorted(target.parent.glob("spark-classes-*.jsa"),
                      key=lambda p: p.stat().st_mtime, reverse=True)[KEEP:]:
        old.unlink(missing_ok=True)
    if log:
        print(f"lambdalake: class archive ready ({target.stat().st_size / 1e6:.0f} MB) in "
              f"{time.monotonic() - began:.0f}s", flush=True)
    return target


def _warm_up(settings: Settings) -> None:
    """What the archive records: the classes of a streaming job's start-up (session, the
    tables' creation, the state load) on a new lake, then of a Spark Delta write of one landed
    event and of the state load that reads it (a restart on a lake with events), on a
    temporary lake."""
    import datetime as dt

    import schemas
    from lambdalake import lake
    from lambdalake.spark import create_spark_session
    from speed.stream import StreamProcessor, StreamTotals
    from speed.tolls_stream import TOLLS

    with tempfile.TemporaryDirectory(prefix="lambdalake-warm-up-") as root:
        settings = settings.replace(lake={"root": f"{root}/lake"},
                                    checkpoint={"root": f"{root}/checkpoints"})
        spark = create_spark_session(settings, "lambdalake-class-archive")

        def start() -> None:
            processor = StreamProcessor(TOLLS, spark, settings, f"{root}/checkpoints/x",
                                        StreamTotals())
            try:
                processor.ensure_tables()
                processor.prepare(dt.datetime.now(dt.timezone.utc))
            finally:
                processor.close()

        start()  # a new lake: tables by delta-rs, no event yet
        landing, schema = TOLLS.names.landing, schemas.spark_schema(TOLLS.names.landing)
        lake.write_tagged(spark.createDataFrame([_sample_row(schema)], schema),
                          lake.table_path(settings, landing), "append", "warm-up")
        start()  # a lake with an event: its state read by Spark
        gateway = spark.sparkContext._gateway
        spark.stop()
        # the JVM writes the archive as it exits: close its stdin (it exits) and wait for it
        gateway.proc.stdin.close()
        if gateway.proc.wait(timeout=600) != 0:
            raise RuntimeError(f"the JVM exited with {gateway.proc.returncode} while writing "
                               "the class archive")


def _sample_row(schema) -> dict:  # noqa: ANN001 (a Spark StructType)
    """A row of `schema` with a value of its type in every column."""
    import datetime as dt
    from decimal import Decimal

    now = dt.datetime.now(dt.timezone.utc)
    samples = {"string": "x", "long": 1, "int": 1, "double": 1.0, "boolean": False,
               "timestamp": now, "date": now.date()}
    return {f.name: Decimal(1) if f.dataType.typeName() == "decimal" else
            samples[f.dataType.typeName().replace("integer", "int")] for f in schema}


def main() -> int:
    """Child process of `build`: run the warm-up in a JVM that dumps its classes at exit."""
    from lambdalake.config import load_settings

    dump = os.environ["LAMBDALAKE_CLASS_ARCHIVE_DUMP"]
    settings = load_settings()
    from lambdalake.spark import spark_conf

    # the factory's own options (no archive: this one is being made)
    options = spark_conf(settings, "x").get("spark.driver.extraJavaOptions", "")
    settings = settings.replace(spark={"conf": {
        **settings.spark.conf,
        "spark.driver.extraJavaOptions": f"{options} -XX:ArchiveClassesAtExit={dump} {QUIET}"}})
    _warm_up(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
