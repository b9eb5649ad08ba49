"""`lambdalake land mimic|vocabulary PATH`: copy a folder of source files into the landing zone.

Every CSV file of the folder is copied to `<lake>/landing/<kind>/<landing id>/`, and one row per
file (size, SHA-256, record count, source) goes to the `<kind>_landings` table. Before anything is
copied, the folder is checked: MIMIC-III files against the raw specs (`schemas/mimic_*.json`),
vocabulary files against the concept map columns and the CDM vocabulary specs. A missing required
file or a missing column is one error naming all of them. Header names are compared without
regard to case (the full MIMIC-III release has upper-case headers, the demo lower-case).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import pyarrow as pa
from deltalake import write_deltalake

import schemas
from batch.omop import vocabulary
from lambdalake import lake
from lambdalake.config import Settings, local_path
from lambdalake.errors import LambdalakeError


def raw_specs() -> list[schemas.TableSpec]:
    """The raw MIMIC-III input specs, by file."""
    return [schemas.load(n) for n in schemas.available()
            if schemas.load(n).layer == "raw" and n.startswith("mimic_")]


def _records(f: TextIO, path: Path) -> Iterator[list[str]]:
    """CSV records of an open file: Athena's vocabulary files use tabs and no quoting."""
    if vocabulary.standard_spec(path):
        return csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
    return csv.reader(f)


def _header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        return [c.strip().lower() for c in next(_records(f, path), [])]


def _csv_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".csv")


def check_folder(folder: Path) -> dict[str, str]:
    """Map file name -> raw spec name for the folder's spec'd files, or one error naming what is
    missing."""
    if not folder.is_dir():
        raise LambdalakeError(f"{folder} is not a folder: give the folder of MIMIC-III CSV files")
    present = {p.name.upper(): p for p in _csv_files(folder)}
    missing_files, missing_columns, found = [], [], {}
    for spec in raw_specs():
        path = present.get(spec.source_file.upper())
        if path is None:
            if not spec.optional:
                missing_files.append(spec.source_file)
            continue
        found[path.name] = spec.name
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


def check_vocabulary_folder(folder: Path) -> dict[str, str]:
    """Map file name -> what it is for the folder's known vocabulary files, or one error."""
    if not folder.is_dir():
        raise LambdalakeError(f"{folder} is not a folder: give a folder of concept map CSV files "
                              "and/or CONCEPT.csv, CONCEPT_RELATIONSHIP.csv")
    found, problems = {}, []
    for path in _csv_files(folder):
        if not vocabulary.is_known(path):
            continue
        absent = vocabulary.check_header(path, _header(path))
        if absent:
            problems.append(f"{path.name}: {', '.join(absent)}")
        found[path.name] = vocabulary.standard_spec(path) or f"map:{path.stem}"
    if problems:
        raise LambdalakeError(f"{folder}: missing columns: {'; '.join(problems)}")
    if not found:
        raise LambdalakeError(
            f"{folder} has no vocabulary file the OMOP ETL reads: expected concept maps such as "
            f"{', '.join(sorted(vocabulary.MAPS)[:3])}, ... (.csv) or CONCEPT.csv")
    return found


def latest_landing(settings: Settings, kind: str) -> Path | None:
    """Folder of the latest landing of a kind, or None when nothing was landed."""
    manifest = lake.open_table(settings, f"{kind}_landings")
    if manifest is None:
        return None
    ids = lake.arrow_table(manifest, ["landing_id"]).column(0).to_pylist()
    return Path(settings.lake.root) / "landing" / kind / max(ids) if ids else None


CHECKS: dict[str, Callable[[Path], dict[str, str]]] = {
    "mimic": check_folder, "vocabulary": check_vocabulary_folder}


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
            records = max(sum(1 for _ in _records(f, path)) - 1, 0)
    return digest.hexdigest(), records


def land(settings: Settings, source: str | Path, kind: str = "mimic") -> Landing:
    """Check and copy a folder of MIMIC-III (or vocabulary) CSV files into the landing zone;
    record it."""
    folder = Path(source).expanduser().resolve()
    if kind not in CHECKS:
        raise LambdalakeError(f"cannot land {kind!r}: known kinds are {', '.join(CHECKS)}")
    spec_for = CHECKS[kind](folder)
    root = local_path(settings.lake.root)
    if root is None:
        raise LambdalakeError("landing files into an object-store lake is not supported yet: "
                              "land into a local lake root (LAMBDALAKE_LAKE_ROOT)")
    now = dt.datetime.now(dt.timezone.utc)
    landing_id = now.strftime("%Y%m%dT%H%M%S%fZ")
    target = root / "landing" / kind / landing_id
    target.mkdir(parents=True)
    rows = []
    for path in _csv_files(folder):
        shutil.copy2(path, target / path.name)
        spec = spec_for.get(path.name)
        sha, records = _sha256_and_records(target / path.name, count=spec is not None)
        rows.append({"landing_id": landing_id, "file_name": path.name,
                     "spec_name": spec, "row_count": records,
                     "bytes": path.stat().st_size, "sha256": sha, "source_path": str(folder),
                     "landed_at": now})
    manifest = f"{kind}_landings"
    write_deltalake(lake.delta_uri(lake.table_path(settings, manifest)),
                    pa.Table.from_pylist(rows, schema=schemas.arrow_schema(manifest)),
                    mode="append")
    return Landing(landing_id, str(target), len(rows), sum(r["bytes"] for r in rows))
