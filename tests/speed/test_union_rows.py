import datetime as dt
from decimal import Decimal

import pyarrow as pa

import schemas
from speed.clicks_stream import CLICKS
from speed.tolls_stream import TOLLS
from speed.union_rows import partial_rows_less

SPEND = "speed_tolls_customer_spend_10m"
PLAZA = "speed_tolls_plaza_revenue_30m"
START = dt.datetime(2026, 12, 3, 9, 30, tzinfo=dt.timezone.utc)


def partial_rows(*rows: dict) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schemas.arrow_schema("tolls_speed_rows"))


def spend(customer_id: str, count: int, amount: str) -> dict:
    return {"view_name": SPEND, "customer_id": customer_id, "window_start": START,
            "window_end": START + dt.timedelta(minutes=10), "transaction_count": count,
            "spend": Decimal(amount)}


def plaza(count: int, amount: str) -> dict:
    return {"view_name": PLAZA, "plaza_id": "P01", "bucket_start": START,
            "vehicle_count": count, "revenue": Decimal(amount)}


def test_partial_rows_less_those_of_some_events_are_those_of_the_others():
    guessed = partial_rows(spend("C1", 3, "30.00"), spend("C2", 1, "5.00"), plaza(4, "35.00"))
    removed = partial_rows(spend("C1", 1, "10.00"), spend("C2", 1, "5.00"), plaza(2, "15.00"))
    left = partial_rows_less(guessed, removed, TOLLS.speed_views)
    assert left.schema == guessed.schema
    # C2's only event removed: no row of C2 is left
    assert sorted(left.to_pylist(), key=lambda r: r["view_name"]) == (
        partial_rows(spend("C1", 2, "20.00"), plaza(2, "20.00")).to_pylist())
    assert partial_rows_less(guessed, partial_rows(), TOLLS.speed_views).num_rows == 3


def test_partial_rows_collected_with_columns_that_cannot_be_null_keep_their_schema():
    # one view only: Spark collects its measure, and the view name, as not nullable
    schema = schemas.arrow_schema("clicks_speed_rows")
    for name in ("view_name", "view_count"):
        schema = schema.set(schema.get_field_index(name), schema.field(name).with_nullable(False))
    minute = START.replace(tzinfo=None)

    def views(*counts: tuple[str, int]) -> pa.Table:
        return pa.Table.from_pylist([{"view_name": "speed_clicks_article_views", "article_id": a,
                                      "view_minute": minute, "session_id": "s1", "view_count": n}
                                     for a, n in counts], schema)

    left = partial_rows_less(views(("a1", 2), ("a2", 1)), views(("a1", 1)), CLICKS.speed_views)
    assert left.schema == schema
    assert sorted((r["article_id"], r["view_count"]) for r in left.to_pylist()) == [("a1", 1),
                                                                                     ("a2", 1)]
