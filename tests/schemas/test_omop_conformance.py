"""schemas/omop_*.json against the OHDSI CDM v5.4 field-level specification (issue 4, point 5)."""

import csv
from pathlib import Path

import pytest

import schemas

SPEC_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "omop-cdm-5.4"
pytestmark = pytest.mark.skipif(not SPEC_DIR.is_dir(),
                                reason=f"the OMOP CDM v5.4 spec is not at {SPEC_DIR}")
CDM_TO_LOGICAL = {"integer": "int", "float": "double", "date": "date", "datetime": "timestamp"}


def cdm_fields() -> dict[str, list[dict]]:
    with open(SPEC_DIR / "OMOP_CDMv5.4_Field_Level.csv", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    tables: dict[str, list[dict]] = {}
    for row in rows:
        tables.setdefault(row["cdmTableName"], []).append(row)
    return tables


def test_every_cdm_table_has_a_spec():
    assert {f"omop_{t}" for t in cdm_fields()} == {
        n for n in schemas.available() if schemas.load(n).layer == "omop"}


@pytest.mark.parametrize("table", sorted(cdm_fields()) if SPEC_DIR.is_dir() else [])
def test_columns_types_required_and_keys_match_the_cdm(table):
    expected = cdm_fields()[table]
    spec = schemas.load(f"omop_{table}")
    # the CSV quotes a field named after a reserved word ("offset")
    assert spec.column_names == [r["cdmFieldName"].strip('"') for r in expected]
    for column, row in zip(spec.columns, expected, strict=True):
        cdm_type = row["cdmDatatype"].lower()
        logical = "string" if cdm_type.startswith("varchar(") else CDM_TO_LOGICAL[cdm_type]
        assert column.type == logical, (table, column.name)
        assert column.source_type == row["cdmDatatype"]
        assert column.required is (row["isRequired"] == "Yes"), (table, column.name)
    assert list(spec.primary_key) == [r["cdmFieldName"] for r in expected
                                      if r["isPrimaryKey"] == "Yes"]


def test_foreign_keys_resolve_to_specified_columns():
    for name in schemas.available():
        for column in schemas.load(name).columns:
            if column.references:  # a CDM table in the CDM's specs, else a spec's name
                table, field = column.references.split(".")
                target = f"omop_{table}" if name.startswith("omop_") else table
                assert field in schemas.load(target).column_names, (name, column.name)
