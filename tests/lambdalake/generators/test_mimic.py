import csv
import datetime as dt

import schemas
from batch.omop.land import check_folder, raw_specs
from lambdalake.generators.mimic import generate

PARSE = {"int": int, "double": float, "string": str,
         "timestamp": lambda v: dt.datetime.strptime(v, "%Y-%m-%d %H:%M:%S")}


def read(folder, spec):
    with open(folder / spec.source_file, newline="") as f:
        return list(csv.DictReader(f))


def test_generated_folder_has_every_file_column_and_type(tmp_path):
    counts = generate(tmp_path, patients=30, seed=3)
    assert set(check_folder(tmp_path)) == {s.source_file for s in raw_specs()}
    assert counts["PATIENTS.csv"] == 30 and counts["ADMISSIONS.csv"] >= 30
    for spec in raw_specs():
        for row in read(tmp_path, spec):
            assert list(row) == spec.column_names
            for column in spec.columns:
                value = row[column.name]
                if value == "":
                    assert not column.required, (spec.name, column.name)
                else:
                    PARSE[column.type](value)


def test_ids_are_consistent_and_deterministic(tmp_path):
    generate(tmp_path / "a", patients=20, seed=5)
    generate(tmp_path / "b", patients=20, seed=5)
    for spec in raw_specs():
        assert (tmp_path / "a" / spec.source_file).read_bytes() == (
            tmp_path / "b" / spec.source_file).read_bytes()
    folder = tmp_path / "a"
    admissions = {r["hadm_id"]: r for r in read(folder, schemas.load("mimic_admissions"))}
    subjects = {r["subject_id"] for r in read(folder, schemas.load("mimic_patients"))}
    assert {r["subject_id"] for r in admissions.values()} <= subjects
    for stay in read(folder, schemas.load("mimic_icustays")):
        admission = admissions[stay["hadm_id"]]
        assert admission["admittime"] <= stay["intime"] <= stay["outtime"] <= admission[
            "dischtime"]
    codes = {r["icd9_code"] for r in read(folder, schemas.load("mimic_d_icd_diagnoses"))}
    assert {r["icd9_code"] for r in read(folder, schemas.load("mimic_diagnoses_icd"))} <= codes
