"""The reporters' head start: each ``Reporter.prepare`` runs beside the extraction, not after the commit.

A report's slow part is often not its own work but what it loads first (the markdown reporter's
chart imports matplotlib and reads its font list: 0.5 s, several seconds on a machine that never
ran it). The runner starts every reporter's ``prepare`` once the run's first rows are cleaned
(so the run's own heavy imports are done), and waits for them before the first ``report``. A
``prepare`` that fails is a warning, never the run's failure; one still running when the run
fails or is stopped is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from pipeline.redact import redact
from pipeline.stage import Reporter

logger = logging.getLogger(__name__)


class Preparation:
    """The ``prepare`` of each reporter that has one, started at most once per run."""

    def __init__(self, reporters: Sequence[Reporter[Any]]) -> None:
        self._reporters = [r for r in reporters if type(r).prepare is not Reporter.prepare]
        self._tasks: list[asyncio.Task[None]] = []
        self.started = False

    def start(self) -> None:
        """Start every ``prepare`` (the first call only); the tasks run on the current event loop."""
        if self.started:
            return
        self.started = True
        self._tasks = [
            asyncio.create_task(_prepare(reporter), name=f"prepare-{reporter.name}") for reporter in self._reporters
        ]

    async def finish(self) -> None:
        """Wait for every started ``prepare``; their failures were already logged."""
        await asyncio.gather(*self._tasks)

    async def cancel(self) -> None:
        """Cancel any ``prepare`` still running and wait for it to end."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _prepare(reporter: Reporter[Any]) -> None:
    try:
        await reporter.prepare()
    except Exception as exc:  # a head start that failed: report() does the work itself
        logger.warning(
            "reporter %r could not prepare, its report will do without: %s",
            reporter.name,
            redact(" ".join(f"{type(exc).__name__}: {exc}".split())),
        )
