"""Progress of a long extract: a bar on a terminal, sparse log lines everywhere else.

On a TTY the bar is redrawn in place on the stream (stderr by default). Off a TTY (CI,
cron) a bar would fill the log with carriage returns, so a plain log line is emitted at
most every ``interval`` seconds instead.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import TextIO

logger = logging.getLogger(__name__)

_BAR_WIDTH = 30
_REDRAW_SECONDS = 0.1
_RATE_WINDOW_SECONDS = 3.0


class Progress:
    """Tracks pages done out of a total, retries and the request rate, and shows them."""

    def __init__(
        self,
        label: str,
        *,
        stream: TextIO | None = None,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        log: logging.Logger | None = None,
    ) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self._clock = clock
        self._log = log or logger
        isatty = getattr(self.stream, "isatty", None)
        self.bar = bool(isatty and isatty())
        self.total = 0
        self.done = 0
        self.retries = 0
        self._requests: deque[float] = deque()
        self._last_draw = float("-inf")
        self._last_log = clock()
        self._drawn = False

    def set_total(self, total: int) -> None:
        """The number of pages the run will fetch, once page 1 has told us."""
        self.total = total
        self._show(force=True)

    def add_total(self, pages: int) -> None:
        """Add one more feed's pages to the total, once its page 1 has told us."""
        self.set_total(self.total + pages)

    def request(self) -> None:
        """Count one request towards the current rate."""
        now = self._clock()
        self._requests.append(now)
        self._show()

    def retry(self) -> None:
        """Count one retry."""
        self.retries += 1
        self._show()

    def page_done(self) -> None:
        """Count one finished page."""
        self.done += 1
        self._show(force=self.done == self.total)

    @property
    def current_rate(self) -> float:
        """Requests per second over the last few seconds."""
        now = self._clock()
        while self._requests and now - self._requests[0] > _RATE_WINDOW_SECONDS:
            self._requests.popleft()
        if not self._requests:
            return 0.0
        span = max(now - self._requests[0], 1.0)
        return len(self._requests) / span

    def close(self) -> None:
        """End the bar's line so later output starts on a fresh line."""
        if self.bar and self._drawn:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False

    def _show(self, *, force: bool = False) -> None:
        now = self._clock()
        if self.bar:
            if force or now - self._last_draw >= _REDRAW_SECONDS:
                self._last_draw = now
                self._draw()
        elif now - self._last_log >= self.interval:
            self._last_log = now
            self._log.info(
                "%s: %d/%d pages, %d retries, %.1f req/s",
                self.label,
                self.done,
                self.total,
                self.retries,
                self.current_rate,
            )

    def _draw(self) -> None:
        total = max(self.total, 1)
        filled = int(_BAR_WIDTH * min(self.done, total) / total)
        bar = "#" * filled + "." * (_BAR_WIDTH - filled)
        line = (
            f"\r{self.label} [{bar}] {self.done}/{self.total} pages"
            f" | {self.retries} retries | {self.current_rate:.1f} req/s"
        )
        # \x1b[K clears what a longer previous line left behind.
        self.stream.write(line + "\x1b[K")
        self.stream.flush()
        self._drawn = True
