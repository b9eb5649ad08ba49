"""`lambdalake land mimic PATH`: copy a MIMIC-III CSV folder into the landing zone, as-is.

Every CSV file of the folder is copied to `<lake>/landing/mimic/<landing id>/`, and one row per
file (size, SHA-256, record count, source) goes to the `mimic_landings` table. Before anything is
copied, the folder is checked against the raw specs (`schemas/mimic_*.json`): a missing required
file or a missing column is one error naming all of them. Header names are compared without
regard to case (the full MIMIC-III release has upper-case headers, the demo lower-case).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from deltalake import write_deltalake

import schemas
from lambdalake import lake
from lambdalake.config import Settings
from lambdalake.errors import LambdalakeError


def raw_specs() -> list[schemas.TableSpec]:
    """The raw MIMIC-III input specs, by file."""
    return [schemas.load(n) for n in schemas.available()
            if schemas.load(n).layer == "raw" and n.startswith("mimic_")]


def _header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        return [c.strip().lower() for c in next(csv.reader(f), [])]


def check_folder(folder: Path) -> dict[str, schemas.TableSpec]:
    """Map file name -> spec for the folder's spec'd files, or one error naming what is missing."""
    if not folder.is_dir():
        raise LambdalakeError(f"{folder} is not a folder: give the folder of MIMIC-III CSV files")
    present = {p.name.upper(): p for p in folder.glob("*.csv")} | {
        p.name.upper(): p for p in folder.glob("*.CSV")}
    missing_files, missing_columns, found = [], [], {}
    for spec in raw_specs():
        path = present.get(spec.source_file.upper())
        if path is None:
            if not spec.optional:
                missing_files.append(spec.source_file)
            continue
        found[path.name] = spec
        absent = [c for c in spec.column_names if c.lower() not in set(_header(path))]
        if absent:
            missing_columns.append(f"{path.name}: {', '.join(absent)}")
    problems = []
    if missing_files:
        problems.append(f"missing files: {', '.join(sorted(missing_files))}")
    if missing_columns:
        problems.append(f"missing columns: {'; '.join(missing_columns)}")
    if problems:
        raise LambdalakeError(f"{folder} is not a complete MIMIC-III CSV folder: "
                              + "; ".join(problems))
    return found


@dataclass(frozen=True)
class Landing:
    """What one landing copied."""

    landing_id: str
    folder: str
    files: int
    bytes: int


def _sha256_and_records(path: Path, count: bool) -> tuple[str, int | None]:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    records = None
    if count:
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            records = max(sum(1 for _ in csv.reader(f)) - 1, 0)
    return digest.hexdigest(), records


def land(settings: Settings, source: str | Path) -> Landing:
    """Check and copy a MIMIC-III CSV folder into the landing zone; record it."""
    folder = Path(source).expanduser().resolve()
    spec_for = check_folder(folder)
    if "://" in settings.lake.root:
        raise LambdalakeError("landing files into an object-store lake is not supported yet: "
                              "land into a local lake root (LAMBDALAKE_LAKE_ROOT)")
    now = dt.datetime.now(dt.timezone.utc)
    landing_id = now.strftime("%Y%m%dT%H%M%S%fZ")
    target = Path(settings.lake.root) / "landing" / "mimic" / landing_id
    target.mkdir(parents=True)
    rows = []
    for path in sorted(folder.glob("*.csv")) + sorted(folder.glob("*.CSV")):
        shutil.copy2(path, target / path.name)
        spec = spec_for.get(path.name)
        sha, records = _sha256_and_records(target / path.name, count=spec is not None)
        rows.append({"landing_id": landing_id, "file_name": path.name,
                     "spec_name": spec.name if spec else None, "row_count": records,
                     "bytes": path.stat().st_size, "sha256": sha, "source_path": str(folder),
                     "landed_at": now})
    write_deltalake(lake.delta_uri(lake.table_path(settings, "mimic_landings")),
                    pa.Table.from_pylist(rows, schema=schemas.arrow_schema("mimic_landings")),
                    mode="append")
    return Landing(landing_id, str(target), len(rows), sum(r["bytes"] for r in rows))
