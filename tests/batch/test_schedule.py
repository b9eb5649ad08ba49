import pytest

from batch.schedule import parse_interval, run_schedule
from lambdalake.errors import LambdalakeError


@pytest.mark.parametrize("text, seconds", [("30m", 1800), ("90s", 90), ("1h", 3600),
                                           ("1.5h", 5400), ("2d", 172800)])
def test_intervals(text, seconds):
    assert parse_interval(text) == seconds


@pytest.mark.parametrize("text", ["30", "m", "-5m", "0s", "5 minutes"])
def test_bad_intervals_are_one_line_errors(text):
    with pytest.raises(LambdalakeError, match="--every takes an interval"):
        parse_interval(text)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_failed_run_is_logged_and_retried_on_the_next_tick():
    clock = FakeClock()
    outcomes = iter([RuntimeError("disk full\nJava stack..."), "published", "published"])
    ran_at = []

    def job():
        ran_at.append(clock.now)
        clock.now += 5  # each run takes 5 s
        result = next(outcomes)
        if isinstance(result, Exception):
            raise result
        return result

    log = run_schedule([("tolls-reports", job)], every_s=60, max_ticks=3, clock=clock,
                       sleep=clock.sleep, log=lambda line: None)
    assert ran_at == [0, 60, 120]
    assert (log.succeeded, log.failed) == (2, 1)
    assert log.lines[0] == ("batch: tolls-reports: run FAILED after 5.0s: RuntimeError: disk "
                            "full; the last published views stay; retrying at the next tick")
    assert log.lines[1] == "batch: tolls-reports: published"


def test_overrunning_run_is_followed_at_once():
    clock = FakeClock()
    ran_at = []

    def slow():
        ran_at.append(clock.now)
        clock.now += 90
        return "ok"

    run_schedule([("slow", slow)], every_s=60, max_ticks=3, clock=clock, sleep=clock.sleep,
                 log=lambda line: None)
    assert ran_at == [0, 90, 180]
