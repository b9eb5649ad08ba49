"""Write `schemas/omop_<table>.json` for every OMOP CDM v5.4 table from the OHDSI field-level spec.

Usage: python scripts/import_omop_spec.py ../shared/data/omop-cdm-5.4

Field names, order, required flags, primary and foreign keys come from
OMOP_CDMv5.4_Field_Level.csv; table descriptions from OMOP_CDMv5.4_Table_Level.csv. CDM types map
to logical types: integer -> int, float -> double, date -> date, datetime -> timestamp,
varchar(n) -> string (the CDM type is kept as `source_type`).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


def logical_type(cdm_type: str) -> str:
    """Logical type of a CDM datatype."""
    lowered = cdm_type.strip().lower()
    if lowered == "integer":
        return "int"
    if lowered == "float":
        return "double"
    if lowered in ("date", "datetime"):
        return "date" if lowered == "date" else "timestamp"
    if lowered.startswith("varchar("):
        return "string"
    raise ValueError(f"unknown CDM datatype {cdm_type!r}")


def main(folder: str) -> None:
    """Import every table of the field-level spec in `folder`."""
    base = Path(folder)
    fields = list(csv.DictReader(open(base / "OMOP_CDMv5.4_Field_Level.csv",
                                      encoding="utf-8-sig")))
    tables = {r["cdmTableName"]: r for r in csv.DictReader(
        open(base / "OMOP_CDMv5.4_Table_Level.csv", encoding="utf-8-sig"))}
    by_table: dict[str, list[dict]] = {}
    for row in fields:
        by_table.setdefault(row["cdmTableName"], []).append(row)
    for table, rows in by_table.items():
        spec = {
            "name": f"omop_{table}",
            "layer": "omop",
            "description": " ".join(tables[table]["tableDescription"].split()),
            "primary_key": [r["cdmFieldName"].strip('"') for r in rows
                            if r["isPrimaryKey"] == "Yes"],
            "columns": [{
                "name": r["cdmFieldName"].strip('"'),  # the CSV quotes the reserved "offset"
                "type": logical_type(r["cdmDatatype"]),
                "required": r["isRequired"] == "Yes",
                "description": " ".join(r["userGuidance"].split())[:300],
                "source_type": r["cdmDatatype"],
                **({"references": f"{r['fkTableName'].lower()}.{r['fkFieldName'].lower()}"}
                   if r["isForeignKey"] == "Yes" and r["fkTableName"] != "NA" else {}),
            } for r in rows],
        }
        (SCHEMAS / f"omop_{table}.json").write_text(json.dumps(spec, indent=2) + "\n")
    print(f"wrote {len(by_table)} OMOP CDM v5.4 table specs to {SCHEMAS}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/omop-cdm-5.4")
