"""The shared adaptive rate limiter and the progress display, on a fake clock."""

from __future__ import annotations

import io
import logging

import pytest

from stages.extractors.tmdb.progress import Progress
from stages.extractors.tmdb.ratelimit import AdaptiveRateLimiter
from tests.support.tmdb import FakeClock


async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def test_slots_are_evenly_spaced_across_callers() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(10, clock=clock, sleep=clock.sleep)
    starts = []
    for _ in range(5):
        await limiter.acquire()
        starts.append(round(clock.now - 100.0, 6))
    assert starts == [0.0, 0.1, 0.2, 0.3, 0.4]


async def test_idle_time_does_not_build_up_a_burst() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(10, clock=clock, sleep=clock.sleep)
    await limiter.acquire()
    clock.now += 60  # a long pause
    await limiter.acquire()
    before = clock.now
    await limiter.acquire()
    assert clock.now - before == pytest.approx(0.1)


def test_a_429_cuts_the_rate_once_per_cooldown_then_it_recovers() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(40, decrease=0.5, recovery=0.1, cooldown=1.0, clock=clock)
    assert limiter.throttled(1.0) is True
    assert limiter.rate == pytest.approx(20)
    clock.now += 0.5
    assert limiter.throttled(1.0) is False  # same episode: already cut
    assert limiter.rate == pytest.approx(20 + 4 * 0.5)
    clock.now += 2.5
    assert limiter.rate == pytest.approx(20 + 4 * 3)
    clock.now += 100
    assert limiter.rate == 40  # never above the configured ceiling
    assert limiter.cuts == 1


def test_the_rate_never_drops_below_the_floor() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(10, min_rate=2, decrease=0.5, cooldown=0, clock=clock)
    for _ in range(10):
        limiter.throttled()
    assert limiter.rate == 2


async def test_a_cut_spaces_the_following_slots_for_every_caller() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(10, decrease=0.5, recovery=0, clock=clock, sleep=clock.sleep)
    await limiter.acquire()
    limiter.throttled()
    await limiter.acquire()
    first = clock.now
    await limiter.acquire()
    assert clock.now - first == pytest.approx(0.2)


def test_progress_off_a_tty_logs_at_most_every_interval(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="stages.extractors.tmdb.progress")
    clock = FakeClock()
    progress = Progress("tmdb", stream=io.StringIO(), interval=5.0, clock=clock)
    progress.set_total(100)
    for _ in range(100):
        clock.now += 0.2  # 20 s in all
        progress.request()
        progress.page_done()
    lines = [r.getMessage() for r in caplog.records]
    assert 3 <= len(lines) <= 4
    assert lines[-1].startswith("tmdb: ") and "pages" in lines[-1] and "req/s" in lines[-1]
    assert progress.current_rate == pytest.approx(5.0, rel=0.1)


def test_progress_on_a_tty_redraws_one_line() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    clock = FakeClock()
    stream = Tty()
    progress = Progress("tmdb", stream=stream, clock=clock)
    progress.set_total(4)
    for _ in range(4):
        clock.now += 1
        progress.request()
        progress.page_done()
    progress.retry()
    progress.close()
    output = stream.getvalue()
    assert output.count("\n") == 1 and output.endswith("\n")
    assert "4/4 pages | 1 retries" in output
