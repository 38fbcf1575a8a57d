"""The shared adaptive rate limiter and the progress display, on a fake clock."""

from __future__ import annotations

import io
import itertools
import logging
import math
import re

import pytest

from stages.extractors.tmdb.progress import Progress
from stages.extractors.tmdb.ratelimit import AdaptiveRateLimiter
from tests.support.tmdb import FakeClock


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


# -- the limiter's bounds, and a cut pushing the next slot back (fake clock, no real sleeps) ---------------------
async def test_a_cut_pushes_the_next_slot_back_to_the_new_spacing() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(10, decrease=0.5, recovery=0, clock=clock, sleep=clock.sleep)
    await limiter.acquire()  # slot at 100.0; the next would have been at 100.1
    assert limiter.throttled() is True  # now 5 req/s
    await limiter.acquire()
    assert clock.now == pytest.approx(100.2)  # 1/5 s after the cut, not the 100.1 handed out before it


async def test_a_cut_while_idle_delays_the_next_request() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(4, decrease=0.5, recovery=0, clock=clock, sleep=clock.sleep)
    limiter.throttled(2.0)  # a 429 before any slot was taken: 2 req/s from now on
    await limiter.acquire()
    assert clock.sleeps == [pytest.approx(0.5)]


async def test_slots_handed_out_before_a_cut_keep_their_times() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(10, decrease=0.5, recovery=0, clock=clock, sleep=clock.sleep)
    for _ in range(5):  # reserve 100.0 .. 100.4 without waiting
        await limiter.acquire()
        clock.now = 100.0
    limiter.throttled()
    await limiter.acquire()
    assert clock.now == pytest.approx(100.5)  # the already reserved next slot is later than now + 1/5


async def test_a_free_slot_does_not_sleep_at_all() -> None:
    clock = FakeClock(now=0.0)  # a clock that starts at zero: the first slot is free all the same
    limiter = AdaptiveRateLimiter(10, clock=clock, sleep=clock.sleep)
    await limiter.acquire()
    assert clock.sleeps == []
    await limiter.acquire()
    assert clock.sleeps == [pytest.approx(0.1)]


@pytest.mark.parametrize(
    ("rate", "expected_floor"),
    [(100.0, 5.0), (4.0, 0.5), (1.0, 0.5)],
    ids=["a twentieth of the ceiling", "half a request per second at least", "a slow ceiling"],
)
def test_the_default_floor(rate: float, expected_floor: float) -> None:
    assert AdaptiveRateLimiter(rate).min_rate == expected_floor


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": 0}, "rate must be a finite number above 0, got 0"),
        ({"rate": -1}, "rate must be a finite number above 0, got -1"),
        ({"rate": math.inf}, "rate must be a finite number above 0, got inf"),
        ({"rate": 10, "decrease": 0}, "decrease must be between 0 and 1"),
        ({"rate": 10, "decrease": 1}, "decrease must be between 0 and 1"),
        ({"rate": 10, "decrease": 1.5}, "decrease must be between 0 and 1"),
        ({"rate": 10, "min_rate": 0}, "min_rate must be a finite number above 0, at most rate, got 0"),
        ({"rate": 10, "min_rate": 10.5}, "min_rate must be a finite number above 0, at most rate, got 10.5"),
        ({"rate": 10, "min_rate": math.nan}, "min_rate must be a finite number above 0, at most rate, got nan"),
        ({"rate": 10, "recovery": -0.1}, "recovery must be a finite number, at least 0, got -0.1"),
        ({"rate": 10, "recovery": math.inf}, "recovery must be a finite number, at least 0, got inf"),
        ({"rate": 10, "cooldown": -1}, "cooldown must be a finite number, at least 0, got -1"),
        ({"rate": 10, "cooldown": math.nan}, "cooldown must be a finite number, at least 0, got nan"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        AdaptiveRateLimiter(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate": 0.5},
        {"rate": 1},
        {"rate": 10, "decrease": 0.01},
        {"rate": 10, "decrease": 0.99},
        {"rate": 10, "min_rate": 10},
        {"rate": 10, "min_rate": 0.5},
        {"rate": 10, "recovery": 0, "cooldown": 0},
    ],
)
def test_settings_at_the_edges_are_accepted(kwargs: dict[str, float]) -> None:
    limiter = AdaptiveRateLimiter(**kwargs)
    assert limiter.rate == kwargs["rate"]


async def test_a_late_caller_takes_its_missed_slot_and_the_schedule_keeps_its_pace() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(10, clock=clock, sleep=clock.sleep)
    await limiter.acquire()  # 100.0; the next slot is 100.1
    clock.now = 100.25  # the caller comes 0.15 s late (its event loop was busy)
    await limiter.acquire()  # takes 100.1 at once
    await limiter.acquire()  # and 100.2, also past: half a slot later (catching up at twice the rate)
    await limiter.acquire()  # 100.35: half a slot after that, though its slot is 100.3
    await limiter.acquire()  # 100.4: back on the schedule
    assert clock.sleeps == [pytest.approx(0.05), pytest.approx(0.05), pytest.approx(0.05)]
    assert clock.now == pytest.approx(100.4) and limiter.caught_up == 2


async def test_an_idle_limiter_starts_its_schedule_afresh() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(10, catch_up=0.5, clock=clock, sleep=clock.sleep)
    await limiter.acquire()
    clock.now = 100.7  # 0.6 s past the next slot: idle, not late
    await limiter.acquire()
    await limiter.acquire()
    assert clock.sleeps == [pytest.approx(0.1)] and limiter.caught_up == 0


async def test_catching_up_never_starts_more_than_rate_plus_one_in_any_window() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(10, catch_up=5.0, clock=clock, sleep=clock.sleep)
    await limiter.acquire()
    clock.now = 104.0  # 39 slots missed, all within catch_up
    starts = []
    for _ in range(60):
        await limiter.acquire()
        starts.append(clock.now)
    busiest = max(sum(1 for t in starts if s <= t < s + 1.0) for s in starts)
    assert busiest == 11  # the window cap: floor(10 * 1 s) + 1
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.05 - 1e-9  # never closer than half a slot
    assert starts[-1] < 104.0 + 60 / 10  # yet it caught up: faster than the plain schedule from 104


async def test_no_catching_up_while_a_cut_lasts() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(10, decrease=0.5, recovery=0, clock=clock, sleep=clock.sleep)
    await limiter.acquire()
    limiter.throttled()  # 5 req/s, for good (no recovery)
    clock.now = 100.4  # 0.2 s past the next slot (100.2)
    await limiter.acquire()
    await limiter.acquire()
    assert clock.sleeps == [pytest.approx(0.2)] and limiter.caught_up == 0
