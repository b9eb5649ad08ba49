import hashlib
import shutil
from pathlib import Path

import pytest
from deltalake import DeltaTable

from batch.omop.land import check_folder, land
from lambdalake import lake
from lambdalake.errors import LambdalakeError

DEMO = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "mimic-iii-demo-1.4"
needs_demo = pytest.mark.skipif(not DEMO.is_dir(), reason=f"the MIMIC-III demo is not at {DEMO}")


@needs_demo
def test_landing_the_demo_copies_and_records_every_file(settings):
    result = land(settings, DEMO)
    landed = Path(result.folder)
    assert sorted(p.name for p in landed.iterdir()) == sorted(p.name for p in DEMO.glob("*.csv"))
    rows = {r["file_name"]: r for r in DeltaTable(
        lake.table_path(settings, "mimic_landings")).to_pyarrow_table().to_pylist()}
    patients = rows["PATIENTS.csv"]
    assert patients["row_count"] == 100 and patients["spec_name"] == "mimic_patients"
    assert patients["sha256"] == hashlib.sha256((DEMO / "PATIENTS.csv").read_bytes()).hexdigest()
    official = dict(line.split()[::-1] for line in (DEMO / "SHA256SUMS.txt").read_text()
                    .splitlines() if line.strip())
    assert official["PATIENTS.csv"] == patients["sha256"]
    assert rows["ADMISSIONS.csv"]["row_count"] == 129
    assert rows["ICUSTAYS.csv"]["row_count"] == 136


@needs_demo
def test_missing_files_and_columns_are_named_in_one_error(tmp_path):
    for name in ("PATIENTS.csv", "ICUSTAYS.csv"):
        shutil.copy(DEMO / name, tmp_path / name)
    lines = (DEMO / "ADMISSIONS.csv").read_text().splitlines()
    (tmp_path / "ADMISSIONS.csv").write_text(
        "\n".join([lines[0].replace(",admittime", "").replace(",ethnicity", "")] + lines[1:2]))
    with pytest.raises(LambdalakeError) as info:
        check_folder(tmp_path)
    message = str(info.value)
    assert "missing files: CAREGIVERS.csv, CPTEVENTS.csv" in message
    assert "LABEVENTS" not in message  # optional
    assert "missing columns: ADMISSIONS.csv: admittime, ethnicity" in message
    assert "\n" not in message


def test_not_a_folder(tmp_path):
    with pytest.raises(LambdalakeError, match="is not a folder"):
        check_folder(tmp_path / "nope")


def test_vocabulary_folder_problems_are_one_error_each(tmp_path):
    from batch.omop.land import check_vocabulary_folder

    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")
    with pytest.raises(LambdalakeError, match="no vocabulary file the OMOP ETL reads"):
        check_vocabulary_folder(tmp_path)
    (tmp_path / "ethnicity_to_concept.csv").write_text("ETHNICITY,race_concept_id\nWHITE,8527\n")
    (tmp_path / "route_to_concept.csv").write_text("concept_id,ROUTE\n4128794,PO\n")
    with pytest.raises(LambdalakeError) as info:
        check_vocabulary_folder(tmp_path)
    assert "ethnicity_to_concept.csv: ethnicity_concept_id, priority" in str(info.value)
    assert "route_to_concept.csv: (out of order" in str(info.value)


def test_generated_vocabulary_lands_with_its_record_counts(settings, tmp_path):
    from lambdalake.generators.mimic import generate

    generate(tmp_path / "mimic", patients=3, seed=1)
    result = land(settings, tmp_path / "mimic" / "vocabulary", "vocabulary")
    rows = {r["file_name"]: r for r in DeltaTable(
        lake.table_path(settings, "vocabulary_landings")).to_pyarrow_table().to_pylist()}
    assert Path(result.folder).parent.name == "vocabulary"
    concept_lines = (tmp_path / "mimic" / "vocabulary" / "CONCEPT.csv").read_text().splitlines()
    assert rows["CONCEPT.csv"]["row_count"] == len(concept_lines) - 1
    assert rows["CONCEPT.csv"]["spec_name"] == "omop_concept"
    assert rows["ethnicity_to_concept.csv"]["spec_name"] == "map:ethnicity_to_concept"
