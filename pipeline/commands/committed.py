"""``run --skip-committed``: is the day already in the lake for the configured feed?

A catch-up run (the scheduler's 18:00 and 23:00 UTC runs) asks this first. The answer comes
from the day's manifest, read through the configured loader's ``read_manifest``: the manifest is
the commit point of a day, so its presence means the day is complete. Nothing is written and the
extractor is built (to learn its feed) but never opened, so no TMDB request is made.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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


async def find_committed(config: PipelineConfig, day: dt.date) -> Committed | None:
    """The day's commit for the configured feed, or ``None`` when the lake does not have it (yet)."""
    from pipeline.commands._lake import configured_feed, lake_reader  # pandas: imported by the command that uses it

    feed = configured_feed(config)
    loader = lake_reader(config)
    async with loader:
        manifest = await loader.read_manifest(day, feed)
        lake = loader.describe()
    if manifest is None:
        return None
    return Committed(
        day=day,
        feed=feed,
        lake=lake,
        run_id=str(manifest.get("run_id") or ""),
        rows=int(manifest.get("rows") or 0),
    )
