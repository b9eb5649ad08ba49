import datetime as dt
import json
from decimal import Decimal

import pyarrow as pa

from serving.output import as_csv, as_json, as_table

RESULT = pa.table({
    "customer_id": ["C1", "C2"],
    "spend": pa.array([Decimal("12.10"), Decimal("12345678901234567.89")], pa.decimal128(20, 2)),
    "month": [dt.date(2026, 11, 1), None],
})


def test_json_is_one_array_of_row_objects_with_exact_numbers():
    rows = json.loads(as_json(RESULT))
    assert rows == [{"customer_id": "C1", "spend": 12.1, "month": "2026-11-01"},
                    {"customer_id": "C2", "spend": "12345678901234567.89", "month": None}]


def test_csv_has_a_header_and_empty_nulls():
    assert as_csv(RESULT).splitlines() == [
        "customer_id,spend,month", "C1,12.10,2026-11-01", "C2,12345678901234567.89,"]


def test_table_aligns_numbers_right_and_counts_rows():
    lines = as_table(RESULT).splitlines()
    assert lines[0].split() == ["customer_id", "spend", "month"]
    assert lines[2].index("12.10") + len("12.10") == lines[3].index(".89") + len(".89")
    assert lines[-1] == "(2 rows)"
    assert as_table(RESULT, max_rows=1).splitlines()[-1] == "(2 rows, 1 not shown)"
