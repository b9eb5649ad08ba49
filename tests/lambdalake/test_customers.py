import datetime
from decimal import Decimal

import pytest

from lambdalake import customers
from lambdalake.errors import LambdalakeError


@pytest.mark.parametrize("text, value", [("150", Decimal("150.00")), ("99.5", Decimal("99.50")),
                                         ("none", None), (None, None), ("0", Decimal("0.00"))])
def test_thresholds_parse(text, value):
    assert customers.parse_threshold(text) == value


@pytest.mark.parametrize("text", ["-1", "1.234", "abc", "NaN", "1e12"])
def test_bad_thresholds_are_one_line_errors(text):
    with pytest.raises(LambdalakeError):
        customers.parse_threshold(text)


def test_set_threshold_updates_and_inserts(settings):
    customers.write_customers(settings, [
        {"customer_id": "C1", "name": "One", "monthly_threshold": Decimal("100.00")},
        {"customer_id": "C2", "name": "Two", "monthly_threshold": None}])
    customers.set_threshold(settings, "C2", "75")
    customers.set_threshold(settings, "C3", "20.50")
    customers.set_threshold(settings, "C1", "none")
    assert customers.thresholds(settings) == {"C1": None, "C2": Decimal("75.00"),
                                              "C3": Decimal("20.50")}


def test_threshold_changes_are_audited_from_the_change_data_feed(settings, monkeypatch):
    from deltalake import write_deltalake

    from lambdalake import lake
    from serving.engine import Serving

    monkeypatch.setenv("USER", "alice")
    # a table of an older lambdalake: no change feed until its next write switches it on
    write_deltalake(lake.table_path(settings, customers.TABLE), customers._table([
        {"customer_id": "C0", "name": None, "monthly_threshold": Decimal("5.00"),
         "updated_at": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)}]))
    customers.set_threshold(settings, "C0", "6")  # switches the feed on, then merges
    customers.write_customers(settings, [
        {"customer_id": "C1", "name": "One", "monthly_threshold": Decimal("100.00")},
        {"customer_id": "C2", "name": "Two", "monthly_threshold": None}])
    serving = Serving(settings, copy_to_duckdb=False)

    def audit():
        serving.refresh()
        return [(r[0], r[1], r[2], r[3], r[4].split("@")[0]) for r in serving.con.execute(
            "select customer_id, change_type, old_monthly_threshold, new_monthly_threshold, "
            "changed_by from reference.tolls_customer_changes "
            "order by customer_version, customer_id").fetchall()]

    first = audit()
    # the merge of C0 is after the feed was switched on; the rewrite replaced C0 by C1 and C2
    assert first == [("C0", "update", Decimal("5.00"), Decimal("6.00"), "alice"),
                     ("C0", "delete", Decimal("6.00"), None, "alice"),
                     ("C1", "insert", None, Decimal("100.00"), "alice"),
                     ("C2", "insert", None, None, "alice")]
    monkeypatch.setenv("USER", "bob")
    customers.set_threshold(settings, "C2", "75")
    customers.set_threshold(settings, "C1", "100")  # no change: not audited
    customers.write_customers(settings, [  # a rewrite that changes C1 only
        {"customer_id": "C1", "name": "One", "monthly_threshold": Decimal("90.00")},
        {"customer_id": "C2", "name": "Two", "monthly_threshold": Decimal("75.00")}])
    assert audit()[len(first):] == [("C2", "update", None, Decimal("75.00"), "bob"),
                                    ("C1", "update", Decimal("100.00"), Decimal("90.00"), "bob")]
    changed_at = serving.con.execute("select min(changed_at), max(changed_at) from "
                                     "reference.tolls_customer_changes").fetchone()
    assert changed_at[0] <= changed_at[1] and changed_at[0].tzinfo is not None
    serving.close()


def test_the_change_data_feed_reads_as_a_spark_stream(settings, spark):
    customers.set_threshold(settings, "C1", "100")
    customers.set_threshold(settings, "C1", "150")
    query = (customers.change_stream(spark, settings).writeStream.format("memory")
             .queryName("customer_changes").trigger(availableNow=True)
             .option("checkpointLocation", f"{settings.checkpoint.root}/customer_changes")
             .start())
    query.awaitTermination(120)
    rows = spark.sql("select customer_id, monthly_threshold, _change_type, _commit_version "
                     "from customer_changes order by _commit_version, _change_type").collect()
    assert [tuple(r) for r in rows] == [
        ("C1", Decimal("100.00"), "insert", 0),
        ("C1", Decimal("150.00"), "update_postimage", 1),
        ("C1", Decimal("100.00"), "update_preimage", 1)]
