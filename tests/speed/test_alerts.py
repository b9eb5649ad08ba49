import datetime as dt
from decimal import Decimal as D

from speed.tolls.alerts import AlertState, alert_id, find_crossing

NOV, OCT = dt.date(2026, 11, 1), dt.date(2026, 10, 1)


def test_crossing_in_a_batch_is_due_once():
    state = AlertState(spend={("C1", NOV): D("40.00")}, thresholds={"C1": D("50.00")})
    thresholds = {"C1": D("50.00")}
    (due,) = state.due({("C1", NOV): D("18.00")}, thresholds)
    assert (due.threshold, due.spend_before, due.spend_after) == (D("50.00"), D("40.00"),
                                                                  D("58.00"))
    assert due.crossed_in_batch
    state.advance({("C1", NOV): D("18.00")}, thresholds, [("C1", NOV, D("50.00"))])
    assert state.due({("C1", NOV): D("1.00")}, thresholds) == []


def test_below_threshold_and_no_threshold_are_not_due():
    state = AlertState(spend={("C1", NOV): D("10.00")})
    assert state.due({("C1", NOV): D("5.00"), ("C2", NOV): D("500.00")},
                     {"C1": D("50.00"), "C2": None}) == []


def test_changed_threshold_makes_untouched_months_candidates():
    state = AlertState(spend={("C1", NOV): D("30.00"), ("C1", OCT): D("80.00")},
                       thresholds={"C1": None}, alerted=set())
    due = state.due({}, {"C1": D("20.00")})
    assert [(d.month, d.crossed_in_batch) for d in due] == [(OCT, False), (NOV, False)]
    state.advance({}, {"C1": D("20.00")}, [("C1", OCT, D("20.00")), ("C1", NOV, D("20.00"))])
    raised = state.due({}, {"C1": D("60.00")})  # a new threshold: one more alert (October)
    assert [(d.month, d.threshold) for d in raised] == [(OCT, D("60.00"))]


def test_find_crossing_uses_the_given_order():
    events = [{"transaction_id": "t1", "amount": D("5.00")},
              {"transaction_id": "t2", "amount": D("6.00")},
              {"transaction_id": "t3", "amount": D("7.00")}]
    event, spend = find_crossing(events, D("40.00"), D("50.00"))
    assert (event["transaction_id"], spend) == ("t2", D("51.00"))
    assert find_crossing(events, D("0"), D("100.00")) is None


def test_alert_id():
    assert alert_id("C1", NOV, D("50.00")) == "C1|2026-11|50.00"
