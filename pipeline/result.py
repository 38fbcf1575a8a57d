"""``RunResult``: what a run did, for the caller, the reporters and the manifest."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from pipeline.stage import Feed


@dataclasses.dataclass
class RunResult:
    """Rows written, where they went, how long each stage took, and what was dropped."""

    run_id: str
    trend_date: dt.date
    feed: Feed
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    rows: int = 0
    batches: int = 0
    outputs: dict[str, str] = dataclasses.field(default_factory=dict)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    counters: dict[str, float] = dataclasses.field(default_factory=dict)
    dropped: dict[str, int] = dataclasses.field(default_factory=dict)
    dry_run: bool = False
    lake: str = ""

    @property
    def wall_seconds(self) -> float:
        """Seconds from start to finish (0 while running)."""
        if self.finished_at is None:
            return 0.0
        return (self.finished_at - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping; every value is a plain str, int, float, bool or dict."""
        return {
            "run_id": self.run_id,
            "trend_date": self.trend_date.isoformat(),
            "feed": {"media_type": self.feed.media_type, "time_window": self.feed.time_window},
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "wall_seconds": round(self.wall_seconds, 3),
            "rows": self.rows,
            "batches": self.batches,
            "outputs": dict(self.outputs),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "counters": dict(self.counters),
            "dropped": dict(self.dropped),
            "dry_run": self.dry_run,
            "lake": self.lake,
        }
