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

    log = run_schedule([("tolls-reports", job, 60)], every_s=60, max_ticks=3, clock=clock,
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

    run_schedule([("slow", slow, 60)], every_s=60, max_ticks=3, clock=clock, sleep=clock.sleep,
                 log=lambda line: None)
    assert ran_at == [0, 90, 180]


def test_a_job_with_a_longer_interval_runs_on_the_first_tick_and_once_per_interval():
    clock = FakeClock()
    ran = []

    def job(name, seconds):
        def run():
            ran.append((name, clock.now))
            clock.now += seconds
            return "ok"
        return run

    # ticks every 30 min; maintenance every 2 h, after a report that takes 1-2 minutes
    run_schedule([("reports", job("reports", 90), 1800), ("maintain", job("maintain", 60), 7200)],
                 every_s=1800, max_ticks=9, clock=clock, sleep=clock.sleep, log=lambda line: None)
    assert [at for name, at in ran if name == "reports"] == [i * 1800 for i in range(9)]
    assert [at for name, at in ran if name == "maintain"] == [90, 4 * 1800 + 90, 8 * 1800 + 90]


def test_a_failed_occasional_job_is_retried_at_the_next_tick():
    clock = FakeClock()
    outcomes = iter([RuntimeError("conflict"), "ok", "ok"])
    ran_at = []

    def maintain():
        ran_at.append(clock.now)
        result = next(outcomes)
        if isinstance(result, Exception):
            raise result
        return result

    run_schedule([("maintain", maintain, 3600)], every_s=600, max_ticks=12, clock=clock,
                 sleep=clock.sleep, log=lambda line: None)
    assert ran_at == [0, 600, 4200]
