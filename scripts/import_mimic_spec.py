"""Write `schemas/mimic_<table>.json`, the raw MIMIC-III input specs, from the demo's CSV headers.

Usage: python scripts/import_mimic_spec.py ../shared/data/mimic-iii-demo-1.4

Column names and order are the files' headers; types are read off the demo's values once (int,
double, timestamp, string; code columns are always strings) and then kept as data, like every
other spec. `row_id`, `subject_id`
and id columns without blanks in the demo are required. LABEVENTS, absent from the demo, is
written from the MIMIC-III documentation and is optional.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
FILES = ("PATIENTS", "ADMISSIONS", "ICUSTAYS", "TRANSFERS", "SERVICES", "CAREGIVERS",
         "DIAGNOSES_ICD", "PROCEDURES_ICD", "CPTEVENTS", "PRESCRIPTIONS", "OUTPUTEVENTS",
         "MICROBIOLOGYEVENTS", "D_ICD_DIAGNOSES", "D_ICD_PROCEDURES", "D_ITEMS", "D_LABITEMS")
# Codes look like numbers in the demo but have leading zeros ("0014", "00006494300"); measured
# values may be fractional in the full release. Their types are fixed here, not read off the values.
FIXED_TYPES = {"icd9_code": "string", "ndc": "string", "cpt_cd": "string", "gsn": "string",
               "loinc_code": "string", "value": "double", "dilution_value": "double"}
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
LABEVENTS = [("row_id", "int", True), ("subject_id", "int", True), ("hadm_id", "int", False),
             ("itemid", "int", True), ("charttime", "timestamp", False),
             ("value", "string", False), ("valuenum", "double", False),
             ("valueuom", "string", False), ("flag", "string", False)]


def sniff(values: list[str]) -> str:
    """Logical type that every non-empty value fits."""
    present = [v for v in values if v != ""]
    if present and all(re.fullmatch(r"-?\d{1,9}", v) for v in present):
        return "int"
    if present and all(re.fullmatch(r"-?\d+(\.\d+)?([eE]-?\d+)?", v) for v in present):
        return "double"
    if present and all(TIMESTAMP.match(v) for v in present):
        return "timestamp"
    return "string"


def write(name: str, source_file: str, optional: bool, columns: list[dict]) -> None:
    """Write one raw spec."""
    spec = {"name": f"mimic_{name.lower()}", "layer": "raw",
            "description": f"Raw MIMIC-III {source_file}, landed as-is.",
            "source_file": source_file, "optional": optional,
            "primary_key": ["row_id"], "columns": columns}
    (SCHEMAS / f"mimic_{name.lower()}.json").write_text(json.dumps(spec, indent=2) + "\n")


def main(folder: str) -> None:
    """Import the raw specs from the demo folder."""
    for name in FILES:
        with open(Path(folder) / f"{name}.csv", newline="") as f:
            reader = csv.reader(f)
            header = next(reader)
            rows = list(reader)
        columns = []
        for i, column in enumerate(header):
            values = [r[i] for r in rows]
            required = column in ("row_id", "subject_id") or (
                column.endswith("_id") and all(v != "" for v in values))
            columns.append({"name": column, "type": FIXED_TYPES.get(column) or sniff(values),
                            "required": required,
                            "description": f"{name}.{column.upper()} of MIMIC-III."})
        write(name, f"{name}.csv", False, columns)
    write("LABEVENTS", "LABEVENTS.csv", True,
          [{"name": n, "type": t, "required": r, "description": f"LABEVENTS.{n.upper()}."}
           for n, t, r in LABEVENTS])
    print(f"wrote {len(FILES) + 1} raw MIMIC-III specs to {SCHEMAS}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/mimic-iii-demo-1.4")
