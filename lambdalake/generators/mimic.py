"""Generator of small synthetic MIMIC-III-shaped raw data (same files, columns and types).

`lambdalake generate mimic --patients N --seed S [--out FOLDER]` writes one CSV per raw spec
(`schemas/mimic_*.json`) with consistent ids: patients, their admissions, ICU stays inside the
admissions, transfers, services, diagnoses and procedures (codes from the generated dictionaries),
prescriptions, output and lab events (items from the dictionaries), microbiology. Dates are
shifted into the 2100s as in MIMIC-III. Deterministic for a seed. Columns the generator does not
model are left empty when optional, or get a plain value of their type.

It also writes a small vocabulary into `<FOLDER>/vocabulary/` (land it with `lambdalake land
vocabulary`): concept maps for the values it generates, with the concept ids of MIT-LCP's
mimic-omop maps, and a synthetic Athena-style CONCEPT.csv / CONCEPT_RELATIONSHIP.csv. Those hold
the concepts the maps and the ETL use, plus the generated ICD-9, LOINC and drug codes as source
concepts mapped to local standard concepts (ids from 2,000,000,001, OMOP's range for local
concepts). It is not the OHDSI vocabulary: it exists so the ETL's vocabulary path runs end to end.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import schemas

ICD9_DIAGNOSES = [("4019", "Hypertension NOS"), ("4280", "CHF NOS"),
                  ("42731", "Atrial fibrillation"),
                  ("5849", "Acute kidney failure NOS"), ("25000", "DMII wo cmp nt st uncntr"),
                  ("51881", "Acute respiratry failure"), ("0389", "Septicemia NOS"),
                  ("2724", "Hyperlipidemia NEC/NOS"), ("486", "Pneumonia, organism NOS"),
                  ("99592", "Severe sepsis")]
ICD9_PROCEDURES = [("3893", "Venous cath NEC"), ("9604", "Insert endotracheal tube"),
                   ("9671", "Cont inv mec ven <96 hrs"), ("3995", "Hemodialysis"),
                   ("0014", "Injection oxazolidinone")]
DRUGS = [("Furosemide", "IV", "mg", "40"), ("Heparin", "SC", "UNIT", "5000"),
         ("Metoprolol Tartrate", "PO", "mg", "25"), ("Insulin", "SC", "UNIT", "10"),
         ("Vancomycin", "IV", "mg", "1000"), ("Acetaminophen", "PO", "mg", "650")]
LAB_ITEMS = [(50912, "Creatinine", "Blood", "Chemistry", "2160-0", "mg/dL", 0.5, 3.0),
             (50971, "Potassium", "Blood", "Chemistry", "2823-3", "mEq/L", 3.0, 5.5),
             (51222, "Hemoglobin", "Blood", "Hematology", "718-7", "g/dL", 7.0, 16.0),
             (50931, "Glucose", "Blood", "Chemistry", "2345-7", "mg/dL", 60.0, 250.0)]
OUTPUT_ITEMS = [(40055, "Urine Out Foley", "mL"), (226559, "Foley", "mL")]
CAREUNITS = ["MICU", "SICU", "CCU", "CSRU", "TSICU"]
SERVICES = ["MED", "SURG", "CMED", "NMED", "CSURG"]
ADMISSION_TYPES = ["EMERGENCY", "ELECTIVE", "URGENT"]
ETHNICITIES = ["WHITE", "BLACK/AFRICAN AMERICAN", "HISPANIC OR LATINO", "ASIAN",
               "UNKNOWN/NOT SPECIFIED"]


def _ts(value: dt.datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


class _Ids:
    def __init__(self) -> None:
        self.next: dict[str, int] = {}

    def __call__(self, table: str) -> int:
        self.next[table] = self.next.get(table, 0) + 1
        return self.next[table]


def _records(patients: int, seed: int) -> dict[str, list[dict]]:
    rng = random.Random(seed)
    row = _Ids()
    out: dict[str, list[dict]] = {n: [] for n in (
        "PATIENTS", "ADMISSIONS", "ICUSTAYS", "TRANSFERS", "SERVICES", "CAREGIVERS",
        "DIAGNOSES_ICD", "PROCEDURES_ICD", "CPTEVENTS", "PRESCRIPTIONS", "OUTPUTEVENTS",
        "MICROBIOLOGYEVENTS", "D_ICD_DIAGNOSES", "D_ICD_PROCEDURES", "D_ITEMS", "D_LABITEMS",
        "LABEVENTS")}
    for code, title in ICD9_DIAGNOSES:
        out["D_ICD_DIAGNOSES"].append({"row_id": row("dd"), "icd9_code": code,
                                       "short_title": title, "long_title": title})
    for code, title in ICD9_PROCEDURES:
        out["D_ICD_PROCEDURES"].append({"row_id": row("dp"), "icd9_code": code,
                                        "short_title": title, "long_title": title})
    for itemid, label, fluid, category, loinc, *_ in LAB_ITEMS:
        out["D_LABITEMS"].append({"row_id": row("dl"), "itemid": itemid, "label": label,
                                  "fluid": fluid, "category": category, "loinc_code": loinc})
    for itemid, label, unit in OUTPUT_ITEMS:
        out["D_ITEMS"].append({"row_id": row("di"), "itemid": itemid, "label": label,
                               "dbsource": "carevue", "linksto": "outputevents",
                               "unitname": unit})
    caregivers = [c for c in range(14000, 14010)]
    for cgid in caregivers:
        out["CAREGIVERS"].append({"row_id": row("cg"), "cgid": cgid, "label": "RN",
                                  "description": "Registered Nurse"})
    hadm_id, icustay_id = 100000, 200000
    for n in range(patients):
        subject_id = 10000 + n
        dob = dt.datetime(2080, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 60))
        first_admit = dob + dt.timedelta(days=rng.randrange(365 * 20, 365 * 70),
                                         hours=rng.randrange(24))
        admits = []
        at = first_admit
        for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
            stay = dt.timedelta(days=rng.randrange(1, 15), hours=rng.randrange(24))
            admits.append((at, at + stay))
            at = at + stay + dt.timedelta(days=rng.randrange(30, 400))
        died = rng.random() < 0.4
        dod = (admits[-1][1] + dt.timedelta(days=rng.randrange(0, 300))) if died else None
        out["PATIENTS"].append({"row_id": row("pt"), "subject_id": subject_id,
                                "gender": rng.choice("FM"), "dob": _ts(dob), "dod": _ts(dod),
                                "dod_hosp": _ts(dod), "dod_ssn": "",
                                "expire_flag": 1 if died else 0})
        for admit, discharge in admits:
            hadm_id += 1
            out["ADMISSIONS"].append({
                "row_id": row("ad"), "subject_id": subject_id, "hadm_id": hadm_id,
                "admittime": _ts(admit), "dischtime": _ts(discharge), "deathtime": "",
                "admission_type": rng.choice(ADMISSION_TYPES),
                "admission_location": "EMERGENCY ROOM ADMIT", "discharge_location": "HOME",
                "insurance": rng.choice(["Medicare", "Private", "Medicaid"]), "language": "ENGL",
                "religion": "", "marital_status": rng.choice(["MARRIED", "SINGLE", "WIDOWED"]),
                "ethnicity": rng.choice(ETHNICITIES), "edregtime": "", "edouttime": "",
                "diagnosis": rng.choice(ICD9_DIAGNOSES)[1].upper(), "hospital_expire_flag": 0,
                "has_chartevents_data": 1})
            out["SERVICES"].append({"row_id": row("sv"), "subject_id": subject_id,
                                    "hadm_id": hadm_id, "transfertime": _ts(admit),
                                    "prev_service": "", "curr_service": rng.choice(SERVICES)})
            for seq, (code, _) in enumerate(rng.sample(ICD9_DIAGNOSES, rng.randrange(2, 6)), 1):
                out["DIAGNOSES_ICD"].append({"row_id": row("dx"), "subject_id": subject_id,
                                             "hadm_id": hadm_id, "seq_num": seq,
                                             "icd9_code": code})
            for seq, (code, _) in enumerate(rng.sample(ICD9_PROCEDURES, rng.randrange(0, 3)), 1):
                out["PROCEDURES_ICD"].append({"row_id": row("px"), "subject_id": subject_id,
                                              "hadm_id": hadm_id, "seq_num": seq,
                                              "icd9_code": code})
            out["CPTEVENTS"].append({"row_id": row("cpt"), "subject_id": subject_id,
                                     "hadm_id": hadm_id, "costcenter": "ICU",
                                     "chartdate": _ts(admit.replace(hour=0, minute=0)),
                                     "cpt_cd": "99291", "cpt_number": 99291,
                                     "sectionheader": "Evaluation and management",
                                     "subsectionheader": "Critical care services",
                                     "ticket_id_seq": 1})
            for name, route, unit, dose in rng.sample(DRUGS, rng.randrange(1, 4)):
                start = admit.replace(hour=0, minute=0, second=0)
                out["PRESCRIPTIONS"].append({
                    "row_id": row("rx"), "subject_id": subject_id, "hadm_id": hadm_id,
                    "startdate": _ts(start), "enddate": _ts(start + dt.timedelta(days=2)),
                    "drug_type": "MAIN", "drug": name, "drug_name_poe": name,
                    "drug_name_generic": name, "formulary_drug_cd": name[:6].upper(),
                    "gsn": "", "ndc": str(rng.randrange(10**9, 10**10)), "prod_strength": "",
                    "dose_val_rx": dose, "dose_unit_rx": unit, "form_val_disp": "1",
                    "form_unit_disp": "VIAL", "route": route})
            for itemid, *_rest, low, high in rng.sample(LAB_ITEMS, rng.randrange(1, 5)):
                unit = _rest[4]
                value = round(rng.uniform(low, high), 1)
                out["LABEVENTS"].append({"row_id": row("lab"), "subject_id": subject_id,
                                         "hadm_id": hadm_id, "itemid": itemid,
                                         "charttime": _ts(admit + dt.timedelta(hours=3)),
                                         "value": str(value), "valuenum": value,
                                         "valueuom": unit, "flag": ""})
            if rng.random() < 0.3:
                out["MICROBIOLOGYEVENTS"].append({
                    "row_id": row("mb"), "subject_id": subject_id, "hadm_id": hadm_id,
                    "chartdate": _ts(admit.replace(hour=0, minute=0)),
                    "charttime": _ts(admit + dt.timedelta(hours=5)), "spec_itemid": 70012,
                    "spec_type_desc": "BLOOD CULTURE", "org_itemid": "", "org_name": ""})
            if rng.random() < 0.8:
                icustay_id += 1
                intime = admit + dt.timedelta(hours=rng.randrange(1, 12))
                outtime = min(discharge, intime + dt.timedelta(days=rng.randrange(1, 6)))
                unit = rng.choice(CAREUNITS)
                out["ICUSTAYS"].append({
                    "row_id": row("icu"), "subject_id": subject_id, "hadm_id": hadm_id,
                    "icustay_id": icustay_id, "dbsource": "carevue", "first_careunit": unit,
                    "last_careunit": unit, "first_wardid": 12, "last_wardid": 12,
                    "intime": _ts(intime), "outtime": _ts(outtime),
                    "los": round((outtime - intime).total_seconds() / 86400, 4)})
                out["TRANSFERS"].append({
                    "row_id": row("tr"), "subject_id": subject_id, "hadm_id": hadm_id,
                    "icustay_id": icustay_id, "dbsource": "carevue", "eventtype": "transfer",
                    "prev_careunit": "", "curr_careunit": unit, "prev_wardid": "",
                    "curr_wardid": 12, "intime": _ts(intime), "outtime": _ts(outtime),
                    "los": round((outtime - intime).total_seconds() / 3600, 2)})
                itemid, _label, unit_name = rng.choice(OUTPUT_ITEMS)
                out["OUTPUTEVENTS"].append({
                    "row_id": row("out"), "subject_id": subject_id, "hadm_id": hadm_id,
                    "icustay_id": icustay_id, "charttime": _ts(intime + dt.timedelta(hours=2)),
                    "itemid": itemid, "value": rng.randrange(50, 800), "valueuom": unit_name,
                    "storetime": _ts(intime + dt.timedelta(hours=2, minutes=5)),
                    "cgid": rng.choice(caregivers)})
    return out


# Concept maps for the generated values, with mimic-omop's concept ids (MIT licence).
MAP_ROWS: dict[str, list[tuple[object, ...]]] = {
    "ethnicity_to_concept": [("WHITE", 8527, 38003564, 1),
                             ("BLACK/AFRICAN AMERICAN", 38003599, 38003564, 2),
                             ("HISPANIC OR LATINO", 4188159, 38003563, 1),
                             ("ASIAN", 8515, 38003564, 1),
                             ("UNKNOWN/NOT SPECIFIED", 4218674, 38003564, 0)],
    "admission_type_to_concept": [("ELECTIVE", 9201), ("EMERGENCY", 262), ("URGENT", 262)],
    "admission_location_to_concept": [("EMERGENCY ROOM ADMIT", 8870)],
    "discharge_location_to_concept": [("HOME", 8536, "")],
    "route_to_concept": [("PO", 4128794), ("IV", 4112421), ("SC", 4139962)],
    "insurance_to_concept": [("Medicaid", 45885112), ("Medicare", 45883718),
                             ("Private", 21498514)],
    "marital_status_to_concept": [("MARRIED", 45876756), ("SINGLE", 45881671),
                                  ("WIDOWED", 45883711)],
    "seq_num_to_concept": [(1, 38000184), (2, 38000185), (3, 38000186), (4, 38000187),
                           (5, 38000188)],
    "output_label_to_concept": [("Urine Out Foley", 40055, 3014315),
                                ("Foley", 226559, 3014315)],
    "lab_unit_to_concept": [("g/dL", 8713), ("mEq/L", 9557), ("mg/dL", 8840)],
}
LOCAL_CONCEPTS = 2_000_000_000


def _vocabulary(target: Path) -> None:
    """Write the concept maps and the synthetic CONCEPT / CONCEPT_RELATIONSHIP files."""
    from batch.omop import vocabulary

    target.mkdir(parents=True, exist_ok=True)
    concepts: dict[int, tuple[str, str, str, str, str | None, str]] = {
        cid: (name, domain, vocab, klass, "S" if cid else None, code)
        for cid, (name, domain, vocab, klass, code) in vocabulary.FIXED_CONCEPTS.items()}
    for name, rows in MAP_ROWS.items():
        with open(target / f"{name}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(vocabulary.map_columns(name))
            writer.writerows(rows)
        concept_columns = [i for i, c in enumerate(vocabulary.map_columns(name))
                           if c.endswith("concept_id")]
        for row in rows:
            for value in (row[i] for i in concept_columns):
                concepts.setdefault(value, (f"{row[0]} ({name})", "Observation", "mimic-omop",
                                            "Synthetic", "S", str(value)))
    relationships = []
    sources = ([("ICD9CM", "Condition", code[:3] + "." + code[3:] if len(code) > 3 else code,
                 title) for code, title in ICD9_DIAGNOSES]
               + [("ICD9Proc", "Procedure", code[:2] + "." + code[2:], title)
                  for code, title in ICD9_PROCEDURES]
               + [("LOINC", "Measurement", loinc, label)
                  for _, label, _, _, loinc, *_ in LAB_ITEMS])
    for n, (vocab, domain, code, title) in enumerate(sources, 1):
        source_id, standard_id = LOCAL_CONCEPTS + n, LOCAL_CONCEPTS + 1000 + n
        concepts[source_id] = (title, domain, vocab, "Synthetic", None, code)
        concepts[standard_id] = (title, domain, "Synthetic", "Synthetic", "S", f"S-{code}")
        relationships.append((source_id, standard_id, "Maps to"))
    with open(target / "prescriptions_ndcisnullzero_to_concept.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(vocabulary.map_columns("prescriptions_ndcisnullzero_to_concept"))
        for n, (drug, *_rest) in enumerate(DRUGS, 1):
            concepts[LOCAL_CONCEPTS + 2000 + n] = (drug, "Drug", "Synthetic", "Synthetic", "S",
                                                   f"D-{n}")
            writer.writerow([drug, LOCAL_CONCEPTS + 2000 + n, drug])
    with open(target / "CONCEPT.csv", "w", newline="") as f:
        f.write("\t".join(schemas.load("omop_concept").column_names) + "\n")
        for cid, (name, domain, vocab, klass, standard, code) in sorted(concepts.items()):
            f.write("\t".join([str(cid), name, domain, vocab, klass, standard or "", code,
                               "19700101", "20991231", ""]) + "\n")
    with open(target / "CONCEPT_RELATIONSHIP.csv", "w", newline="") as f:
        f.write("\t".join(schemas.load("omop_concept_relationship").column_names) + "\n")
        for one, two, relationship in relationships:
            f.write("\t".join([str(one), str(two), relationship, "19700101", "20991231", ""])
                    + "\n")


def _filler(logical: str) -> Callable[[], object]:
    return {"int": lambda: 0, "double": lambda: 0.0,
            "timestamp": lambda: "2100-01-01 00:00:00"}.get(logical, lambda: "")


def _rows(spec: schemas.TableSpec, records: list[dict]) -> Iterator[list[object]]:
    for record in records:
        yield [record[c.name] if c.name in record else
               (_filler(c.type)() if c.required else "") for c in spec.columns]


def generate(folder: str | Path, patients: int, seed: int = 0) -> dict[str, int]:
    """Write the CSV files into `folder`; return the record count per file."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    records = _records(patients, seed)
    counts = {}
    for name in schemas.available():
        spec = schemas.load(name)
        if spec.layer != "raw" or not name.startswith("mimic_"):
            continue
        rows = records[spec.source_file[:-len(".csv")]]
        with open(target / spec.source_file, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(spec.column_names)
            writer.writerows(_rows(spec, rows))
        counts[spec.source_file] = len(rows)
    _vocabulary(target / "vocabulary")
    return counts
