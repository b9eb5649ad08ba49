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
