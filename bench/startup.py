"""Cold start of a local job's Spark driver, with and without the class archive.

Usage: .venv/bin/python -m bench.startup [--runs 3]

Each run is a new process (a cold JVM) doing what the streaming job does before its first
micro-batch, on a temporary lake: create the SparkSession, the job's processor, its five tables
and its state (the landed ids and the alert state). Runs alternate between the driver started
with the class archive that `lambdalake setup` makes (`lambdalake/class_archive.py`) and without
it; prints each phase's seconds and the medians.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from lambdalake import class_archive
from lambdalake.config import load_settings
from lambdalake.spark import spark_conf

PHASES = ("session", "processor", "tables", "state", "total")


def child() -> None:
    """One cold start, timed by phase; prints its figures as JSON."""
    from lambdalake.spark import create_spark_session
    from speed.stream import StreamProcessor, StreamTotals
    from speed.tolls_stream import TOLLS

    figures: dict[str, float] = {}
    began = last = time.monotonic()

    def lap(phase: str) -> None:
        nonlocal last
        now = time.monotonic()
        figures[phase], last = now - last, now

    with tempfile.TemporaryDirectory(prefix="lambdalake-bench-startup-") as root:
        settings = load_settings().replace(lake={"root": f"{root}/lake"},
                                           checkpoint={"root": f"{root}/checkpoints"})
        spark = create_spark_session(settings, "lambdalake-bench-startup")
        lap("session")
        processor = StreamProcessor(TOLLS, spark, settings, f"{root}/checkpoints/x",
                                    StreamTotals())
        lap("processor")
        processor.ensure_tables()
        lap("tables")
        processor.prepare(dt.datetime.now(dt.timezone.utc))
        lap("state")
        figures["total"] = time.monotonic() - began
        processor.close()
        spark.stop()
    print("FIGURES " + json.dumps(figures), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child()
        return
    settings = load_settings()
    archive = class_archive.build(settings)
    if archive is None:
        sys.exit("no class archive could be made: nothing to compare")
    options = spark_conf(settings, "x")["spark.driver.extraJavaOptions"]
    without = {**os.environ, "LAMBDALAKE_SPARK_CONF": "spark.driver.extraJavaOptions="
               + options.replace(class_archive.java_options(settings), "").strip()}
    results: dict[str, list[dict[str, float]]] = {"with archive": [], "without": []}
    for run in range(args.runs):
        for label, env in (("with archive", dict(os.environ)), ("without", without)):
            out = subprocess.run([sys.executable, "-m", "bench.startup", "--child"], env=env,
                                 capture_output=True, text=True, check=True).stdout
            figures = json.loads(out.split("FIGURES ", 1)[1])
            results[label].append(figures)
            print(f"run {run + 1}, {label:12}: " + ", ".join(
                f"{p} {figures[p]:.2f}s" for p in PHASES), flush=True)
    for label, runs in results.items():
        print(f"median, {label:12}: " + ", ".join(
            f"{p} {statistics.median(r[p] for r in runs):.2f}s" for p in PHASES))


if __name__ == "__main__":
    main()
