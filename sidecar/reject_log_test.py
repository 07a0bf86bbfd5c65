"""RejectLog with a hand-driven clock: which rejections are logged, which are counted."""

import logging as std_logging
import threading

import pytest

from sidecar import reject_log


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def lines():
    return []


@pytest.fixture
def log(clock, lines):
    return reject_log.RejectLog(60.0, emit=lambda fmt, *a: lines.append(fmt % a), clock=clock, timers=False)


def test_first_of_each_kind_in_full_then_counted(log, lines):
    assert log.admit("A", "a1")
    assert log.admit("B", "b1")  # kinds are independent
    assert not log.admit("A", "a2")
    assert not log.admit("A", "a3")
    assert lines == []


def test_one_summary_per_interval_with_the_count_and_latest(log, clock, lines):
    assert log.admit("A", "a0")
    for i in range(10_000):
        clock.now += 0.001  # 10 s of rejections
        assert not log.admit("A", f"a{i + 1}")
    log.flush_due()
    assert lines == []  # the interval has not passed
    clock.now += 50.5
    log.flush_due()
    assert len(lines) == 1
    assert lines[0].startswith("A: 10000 more rejected in the last 60s") and lines[0].endswith("latest: a10000")
    log.flush_due()
    assert len(lines) == 1  # nothing pending any more


def test_summary_written_by_the_rejection_that_finds_it_due(log, clock, lines):
    log.admit("A", "a0")
    log.admit("A", "a1")
    clock.now += 61.0
    assert not log.admit("A", "a2")  # counted, and the summary (2) goes out now
    assert len(lines) == 1 and "A: 2 more" in lines[0]
    assert not log.admit("A", "a3")  # within the new interval: counted again
    assert len(lines) == 1


def test_quiet_kind_is_logged_in_full_again(log, clock, lines):
    assert log.admit("A", "a0")
    clock.now += 60.0
    assert log.admit("A", "a1")  # nothing was pending: a trickle is always logged in full
    assert lines == []


def test_at_most_one_line_per_kind_per_interval(log, clock, lines):
    written = 0
    for i in range(100_000):
        clock.now += 0.01  # 1,000 s of 100 rejections/s of two kinds
        written += log.admit("A" if i % 2 else "B", "x")
        log.flush_due()
    total = written + len(lines)
    assert total <= 2 * (1000 / 60 + 2)
    assert written == 2


def test_flush_all_reports_what_is_pending(log, lines):
    log.admit("A", "a0")
    log.admit("A", "a1")
    log.flush_all()
    assert len(lines) == 1 and lines[0].startswith("A: 1 more")


def test_zero_interval_logs_everything(clock, lines):
    log = reject_log.RejectLog(0.0, emit=lambda fmt, *a: lines.append(fmt % a), clock=clock, timers=False)
    assert all(log.admit("A", "a") for _ in range(100))
    assert lines == []


def test_timer_writes_the_summary_without_another_rejection():
    lines, done = [], threading.Event()

    def emit(fmt, *a):
        lines.append(fmt % a)
        done.set()

    log = reject_log.RejectLog(0.05, emit=emit)
    log.admit("A", "a0")
    log.admit("A", "a1")
    assert done.wait(30)
    assert len(lines) == 1 and lines[0].startswith("A: 1 more")


def test_grpc_deserialization_tracebacks_are_rate_limited(lines):
    rejects = reject_log.RejectLog(3600.0, emit=lambda fmt, *a: lines.append(fmt % a), timers=False)
    logger = std_logging.getLogger("grpc._common")
    records = []

    class Keep(std_logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = Keep()
    logger.addHandler(handler)
    f = reject_log._GrpcDeserializeFilter(rejects)  # pylint: disable=protected-access
    logger.addFilter(f)
    try:
        for _ in range(100):
            try:
                raise ValueError("Error parsing message")
            except ValueError:
                logger.exception("Exception deserializing message!")
        logger.error("something else")
    finally:
        logger.removeFilter(f)
        logger.removeHandler(handler)
    assert [r.getMessage() for r in records] == ["Exception deserializing message!", "something else"]
    assert records[0].exc_info is not None  # the first one keeps its traceback
    rejects.flush_all()
    assert len(lines) == 1 and lines[0].startswith(f"{reject_log.GRPC_UNDECODABLE}: 99 more")


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
