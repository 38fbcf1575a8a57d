"""``run --skip-committed``: which of the configured feeds does the lake already hold for the day?

A catch-up run (the scheduler's 18:00 and 23:00 UTC runs) asks this first. The answer comes
from the day's manifest, read through the configured loader's ``read_manifest``: the manifest is
the commit point of a day, so its presence means the day is complete. Nothing is written and the
extractor is built (to learn its feeds) but never opened, so no TMDB request is made. When every feed is
committed the run is skipped; otherwise it runs the missing feeds only, so a feed that failed at noon is
caught up without refetching (and replacing) the ones that committed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pipeline.config import PipelineConfig
    from pipeline.stage import Feed


@dataclasses.dataclass(frozen=True)
class Committed:
    """A day found committed: which, for which feed, where, and by which run."""

    day: dt.date
    feed: Feed
    lake: str
    run_id: str
    rows: int

    def describe(self) -> str:
        """The one line ``run --skip-committed`` prints."""
        by = f" by run {self.run_id}" if self.run_id else ""
        return f"{self.day} is already committed ({self.rows} rows{by}) for {self.feed.label} in {self.lake}; skipped"


@dataclasses.dataclass(frozen=True)
class CatchUp:
    """Which of the run's feeds the lake already holds for the day, and which it still lacks."""

    committed: tuple[Committed, ...]
    missing: tuple[Feed, ...]

    def describe(self) -> str:
        """One line: every feed committed (the run is skipped), or which are and which the run still fetches."""
        done = ", ".join(f"{c.feed.spec} ({c.rows} rows)" for c in self.committed)
        if not self.missing:
            lake = self.committed[0].lake if self.committed else ""
            return f"{self.committed[0].day} is already committed for every feed: {done} in {lake}; skipped"
        todo = ", ".join(feed.spec for feed in self.missing)
        return f"already committed: {done}; catching up {todo}"


async def find_committed(config: PipelineConfig, day: dt.date, only: Sequence[str] | None = None) -> CatchUp:
    """Which of the configured feeds (or of ``only``) already have ``day`` committed, read from their manifests."""
    from pipeline.commands._lake import lake_reader, selected_feeds  # pandas: imported by the command that uses it

    feeds = selected_feeds(config, only)
    loader = lake_reader(config)
    committed: list[Committed] = []
    missing: list[Feed] = []
    async with loader:
        lake = loader.describe()
        for feed in feeds:
            manifest = await loader.read_manifest(day, feed)
            if manifest is None:
                missing.append(feed)
                continue
            run_id, rows = str(manifest.get("run_id") or ""), int(manifest.get("rows") or 0)
            committed.append(Committed(day=day, feed=feed, lake=lake, run_id=run_id, rows=rows))
    return CatchUp(tuple(committed), tuple(missing))
