"""The vocabulary inputs of the OMOP ETL: MIMIC-to-OMOP concept maps, standard OMOP vocabulary.

A vocabulary folder (`lambdalake land vocabulary FOLDER`) holds any of:
- concept maps, CSV files named as in MIT-LCP's mimic-omop project
  (`ethnicity_to_concept.csv`, ...), with the columns of `MAPS` (header names compared without
  regard to case);
- standard OMOP vocabulary files as downloaded from Athena, `CONCEPT.csv` and
  `CONCEPT_RELATIONSHIP.csv` (tab-separated, dates as YYYYMMDD), checked against the CDM specs.

Every input is optional: a map that is absent is an empty view, so its concepts come out as 0 with
the source value kept, as OMOP conventions say.
"""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession

import schemas

# Concept maps the SQL uses: file stem -> the columns read, in file order.
MAPS: dict[str, str] = {
    "ethnicity_to_concept":
        "ethnicity string, race_concept_id int, ethnicity_concept_id int, priority int",
    "admission_type_to_concept": "admission_type string, visit_concept_id int",
    "admission_location_to_concept": "admission_location string, concept_id int",
    "discharge_location_to_concept": "discharge_location string, concept_id int, comment string",
    "care_site": "care_site_type string, care_site_name string, "
                 "place_of_service_source_value string, place_of_service_concept_id int, "
                 "visit_detail_concept_id int",
    "seq_num_to_concept": "seq_num int, concept_id int",
    "admissions_diagnosis_to_concept": "diagnosis string, concept_id int, concept_name string",
    "cpt4_to_concept":
        "procedure_source_value string, procedure_concept_id int, omop_mapping_is_sure int",
    "route_to_concept": "route string, concept_id int",
    "prescriptions_ndcisnullzero_to_concept": "label string, concept_id int, concept_name string",
    "output_label_to_concept": "label string, item_id int, concept_id int",
    "lab_unit_to_concept": "unit string, concept_id int",
    "resistance_to_concept": "interpretation string, value_as_concept_id int",
    "insurance_to_concept": "insurance string, concept_id int",
    "marital_status_to_concept": "marital_status string, concept_id int",
    "religion_to_concept": "religion string, concept_id int",
}
# Concepts the SQL files use as constants: id -> (name, domain, vocabulary, class, code). The
# generator writes them into its synthetic CONCEPT.csv (with the name as code where the Athena code
# is not given here).
FIXED_CONCEPTS: dict[int, tuple[str, str, str, str, str]] = {
    0: ("No matching concept", "Metadata", "None", "Undefined", "No matching concept"),
    8507: ("MALE", "Gender", "Gender", "Gender", "M"),
    8532: ("FEMALE", "Gender", "Gender", "Gender", "F"),
    32817: ("EHR", "Type Concept", "Type Concept", "Type Concept", "EHR"),
    32821: ("EHR billing record", "Type Concept", "Type Concept", "Type Concept",
            "EHR billing record"),
    32838: ("EHR prescription", "Type Concept", "Type Concept", "Type Concept",
            "EHR prescription"),
    32037: ("Intensive Care", "Visit", "Visit", "Visit", "Intensive Care"),
}
STANDARD = {"CONCEPT.csv": "omop_concept", "CONCEPT_RELATIONSHIP.csv": "omop_concept_relationship"}


def standard_spec(path: Path) -> str | None:
    """The CDM spec of a standard vocabulary file (CONCEPT.csv, any case), else None."""
    return {k.upper(): v for k, v in STANDARD.items()}.get(path.name.upper())


def map_columns(name: str) -> list[str]:
    """Column names of a concept map, in file order."""
    return [part.split()[0] for part in MAPS[name].split(",")]


def check_header(path: Path, header: list[str]) -> list[str]:
    """The columns a known vocabulary file lacks (empty when it is complete or not a known file)."""
    if path.stem in MAPS:
        expected = map_columns(path.stem)
    elif standard_spec(path):
        expected = schemas.load(str(standard_spec(path))).column_names
    else:
        return []
    present = [c.strip().lower() for c in header]
    missing = [c for c in expected if c.lower() not in present]
    if not missing and present[:len(expected)] != [c.lower() for c in expected]:
        return [f"(out of order: expected {', '.join(expected)} first)"]
    return missing


def is_known(path: Path) -> bool:
    """Whether the ETL reads this file."""
    return path.stem in MAPS or standard_spec(path) is not None


def register_vocabulary(spark: SparkSession, folder: Path | None, maps_prefix: str,
                        vocab_prefix: str) -> bool:
    """Temp views `<maps_prefix>_<map>` and `<vocab_prefix>_concept[_relationship]`.

    Absent files give empty views. Returns whether a standard CONCEPT file was given.
    """
    for name, ddl in MAPS.items():
        path = folder / f"{name}.csv" if folder else None
        df = (spark.read.option("header", True).option("mode", "FAILFAST").schema(ddl)
              .csv(str(path))
              if path is not None and path.exists() else spark.createDataFrame([], ddl))
        df.createOrReplaceTempView(f"{maps_prefix}_{name}")
    has_concept = False
    for file_name, spec_name in STANDARD.items():
        schema = schemas.spark_schema(spec_name, all_nullable=True)
        path = folder / file_name if folder else None
        if path is not None and path.exists():
            df = (spark.read.option("header", True).option("sep", "\t").option("quote", "")
                  .option("dateFormat", "yyyyMMdd").option("mode", "FAILFAST").schema(schema)
                  .csv(str(path)))
            has_concept = has_concept or file_name == "CONCEPT.csv"
        else:
            df = spark.createDataFrame([], schema)
        df.createOrReplaceTempView(f"{vocab_prefix}_{spec_name.removeprefix('omop_')}")
    return has_concept
