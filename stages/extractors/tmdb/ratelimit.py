"""A client-side rate limiter shared by every worker of a run, that slows down on 429.

The limiter hands out evenly spaced send slots (virtual scheduling), and never lets more
than ``rate * window + 1`` requests start in any ``window`` (one second, as TMDB counts).
That keeps a client just under a server's per-second cap instead of bursting into it.

A slot is not lost when its caller comes late. A worker that was busy, or whose event loop
was, asks for the next slot after its time has passed: if that was less than ``catch_up``
seconds ago the worker takes it at once and the schedule goes on from there, so the run
catches up: at up to twice the rate (no two starts closer than half a slot), and within the
window cap. Only a limiter idle for longer starts
its schedule afresh from now. Without this, every late caller pushed the whole schedule
back by its lateness, and a run lost that time for good. After a 429, until the rate has
recovered, there is no catching up: the server, not the caller, set the pace.

Adaptive part (AIMD, as in TCP congestion control): ``throttled()`` cuts the rate
multiplicatively, at most once per cool-down, because the 429s that arrive right after
a cut were sent at the old rate and say nothing new. The rate then climbs back linearly
towards the configured ceiling while no 429 arrives.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class AdaptiveRateLimiter:
    """Evenly spaced request slots at up to ``rate`` per second, cut on 429 and recovered gradually."""

    def __init__(
        self,
        rate: float,
        *,
        min_rate: float | None = None,
        decrease: float = 0.8,
        recovery: float = 0.05,
        cooldown: float = 1.0,
        catch_up: float = 0.5,
        window: float = 1.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not math.isfinite(rate) or rate <= 0:
            raise ValueError(f"rate must be a finite number above 0, got {rate!r}")
        if not 0 < decrease < 1:
            raise ValueError("decrease must be between 0 and 1")
        if min_rate is not None and not (math.isfinite(min_rate) and 0 < min_rate <= rate):
            raise ValueError(f"min_rate must be a finite number above 0, at most rate, got {min_rate!r}")
        for name, value in (("recovery", recovery), ("cooldown", cooldown), ("catch_up", catch_up)):
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number, at least 0, got {value!r}")
        self.max_rate = float(rate)
        # Never stall completely: a floor keeps a run moving even after many 429s.
        self.min_rate = float(min_rate) if min_rate is not None else max(self.max_rate / 20, 0.5)
        self.decrease = decrease
        # Recovery speed in requests/second gained per second, as a share of the ceiling.
        self.recovery_per_second = recovery * self.max_rate
        self.cooldown = cooldown
        if not math.isfinite(window) or window <= 0:
            raise ValueError(f"window must be a finite number of seconds above 0, got {window!r}")
        self.catch_up = catch_up
        self.window = window
        self.window_cap = math.floor(self.max_rate * window) + 1
        self._clock = clock
        self._sleep = sleep
        self._base_rate = self.max_rate
        self._cut_at: float | None = None
        self._next_slot = -math.inf
        self._starts: collections.deque[float] = collections.deque()
        self._last_start = -math.inf
        self.cuts = 0
        self.caught_up = 0
        """Slots taken late instead of lost (a measure of how often callers came late)."""

    @property
    def rate(self) -> float:
        """The current rate in requests per second (after any cut and its recovery so far)."""
        return self._rate_at(self._clock())

    def _rate_at(self, now: float) -> float:
        if self._cut_at is None:
            return self.max_rate
        recovered = self._base_rate + self.recovery_per_second * (now - self._cut_at)
        return min(self.max_rate, recovered)

    async def acquire(self) -> None:
        """Wait for this caller's slot; slots are ``1 / rate`` seconds apart across all callers."""
        now = self._clock()
        # Reserve before sleeping, with no await in between, so concurrent callers get distinct slots.
        slot = self._next_slot
        if slot < now - 1e-9:
            # After a 429 the server is the bottleneck: no catching up until the rate has recovered.
            if now - slot <= self.catch_up and self._rate_at(now) >= self.max_rate:
                self.caught_up += 1  # a missed slot, taken now: the schedule keeps its pace
            else:
                slot = now  # idle for a while: start afresh
        self._next_slot = slot + 1.0 / self._rate_at(slot)
        delay = slot - now
        if delay > 0:
            await self._sleep(delay)
        await self._within_window()

    async def _within_window(self) -> None:
        """Start only if fewer than ``window_cap`` requests started in the last ``window`` seconds,
        and at least half a slot after the previous start (so late callers catch up at twice the rate, not at once)."""
        starts = self._starts
        while True:
            now = self._clock()
            while starts and now - starts[0] >= self.window:
                starts.popleft()
            spaced = self._last_start + 0.5 / self.max_rate
            if len(starts) < self.window_cap and now >= spaced - 1e-9:  # (float rounding is no reason to wait)
                starts.append(now)
                self._last_start = now
                return
            full = starts[0] + self.window if len(starts) >= self.window_cap else now
            await self._sleep(max(full, spaced) - now)

    def throttled(self, retry_after: float | None = None) -> bool:
        """Record a 429; cut the shared rate unless it was cut within the cool-down. Returns whether it cut."""
        now = self._clock()
        if self._cut_at is not None and now - self._cut_at < self.cooldown:
            return False
        before = self._rate_at(now)
        self._base_rate = max(self.min_rate, before * self.decrease)
        self._cut_at = now
        self.cuts += 1
        # Slots already handed out keep their times; later ones follow the new spacing.
        self._next_slot = max(self._next_slot, now + 1.0 / self._base_rate)
        logger.info(
            "rate limited by the server (retry after %s); client rate %.1f -> %.1f req/s",
            "unset" if retry_after is None else f"{retry_after:g}s",
            before,
            self._base_rate,
        )
        return True
