"""Wall time of the OMOP ETL on the MIMIC-III demo and on synthetic data of growing size.

Usage: .venv/bin/python -m bench.omop_etl [--patients 1000 10000] [--demo ../shared/data/...]

For each data set: generate (synthetic) or take the demo folder, land it with its vocabulary
(the demo with `--maps`, synthetic data with its generated vocabulary), then time one full ETL run
(stage, Great Expectations checks, publish, etl.table_loaded messages to a real local broker) in
a fresh lake. Prints per data set the source records, CDM rows, quarantined rows and the run's
seconds, so the growth with size is visible.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from batch import omop_etl
from batch.omop.land import land
from bench.common import bench_environment
from lambdalake.generators import mimic
from lambdalake.spark import create_spark_session

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def source_records(folder: Path) -> int:
    """CSV records of the MIMIC-III files (headers excluded; fields may span lines, roughly)."""
    return sum(max(sum(1 for _ in open(p, encoding="utf-8", errors="replace")) - 1, 0)
               for p in folder.glob("*.csv"))


def main() -> None:
    """Run the benchmark and print one line per data set."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--demo", type=Path, default=SHARED / "mimic-iii-demo-1.4")
    parser.add_argument("--maps", type=Path, default=SHARED / "mimic-omop-concept-maps")
    args = parser.parse_args()
    data_sets: list[tuple[str, Path, Path]] = []
    if args.demo.is_dir():
        data_sets.append(("MIMIC-III demo (100 patients)", args.demo, args.maps))
    work = Path(tempfile.mkdtemp(prefix="lambdalake-bench-mimic-"))
    for patients in args.patients:
        folder = work / f"synthetic-{patients}"
        mimic.generate(folder, patients, seed=1)
        data_sets.append((f"synthetic {patients} patients", folder, folder / "vocabulary"))
    results = []
    with bench_environment() as base:
        spark = create_spark_session(base, "lambdalake-bench-omop")
        for n, (name, folder, vocabulary) in enumerate(data_sets):
            settings = base.replace(lake={"root": str(Path(base.lake.root) / f"set{n}")})
            land(settings, folder)
            land(settings, vocabulary, "vocabulary")
            announcer = omop_etl.KafkaAnnouncer(settings)
            started = time.monotonic()
            result = omop_etl.run(spark, settings, announcer)
            seconds = time.monotonic() - started
            announcer.close()
            rows = sum(result.row_counts.values())
            quarantined = sum(result.quarantined_rows.values())
            results.append((name, source_records(folder), rows, quarantined, seconds))
            print(f"omop-bench: {name}: {source_records(folder):,} source records -> {rows:,} CDM "
                  f"rows ({quarantined:,} quarantined) in {seconds:.1f}s", flush=True)
        spark.stop()
    print("\n| data | source records | CDM rows | quarantined | ETL seconds |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, records, rows, quarantined, seconds in results:
        print(f"| {name} | {records:,} | {rows:,} | {quarantined:,} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
