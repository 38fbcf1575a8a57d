"""``RunResult``: what a run did, for the caller, the reporters and the manifest.

A run fetches one feed or several; ``RunResult.feeds`` holds one ``FeedResult`` per feed,
in config order, each committed or failed on its own. The single-feed fields of
``RunResult`` (``feed``, ``rows``, ``batches``, ``outputs``, ``counters``, ``dropped``)
describe its ``primary`` feed, so one-feed callers and reporters read them as before.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Literal

from pipeline.stage import Feed

FeedStatus = Literal["committed", "failed", "dry-run"]


@dataclasses.dataclass
class FeedResult:
    """What a run did for one feed: its rows and outputs, or why it failed and what that did to the lake."""

    feed: Feed
    status: FeedStatus = "failed"
    rows: int = 0
    batches: int = 0
    outputs: dict[str, str] = dataclasses.field(default_factory=dict)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    counters: dict[str, float] = dataclasses.field(default_factory=dict)
    dropped: dict[str, int] = dataclasses.field(default_factory=dict)
    error: str | None = None
    """The failure in one line (redacted), when ``status`` is ``failed``."""
    outcome: str | None = None
    """What the failure did to this feed's day in the lake, e.g. ``nothing was committed; ...``."""
    exception: BaseException | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """Whether this feed's day was committed (or, in a dry run, fully extracted and transformed)."""
        return self.status != "failed"

    def describe_failure(self) -> str:
        """``tv/day: <error>; <outcome>``, for the run's one-line summary."""
        text = f"{self.feed.spec}: {self.error or 'failed'}"
        return f"{text}; {self.outcome}" if self.outcome else text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping."""
        return {
            "feed": {"media_type": self.feed.media_type, "time_window": self.feed.time_window},
            "status": self.status,
            "rows": self.rows,
            "batches": self.batches,
            "outputs": dict(self.outputs),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "counters": dict(self.counters),
            "dropped": dict(self.dropped),
            "error": self.error,
            "outcome": self.outcome,
        }


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
    feeds: list[FeedResult] = dataclasses.field(default_factory=list)
    """One entry per feed of the run, in config order (one entry for a one-feed run)."""

    @property
    def failed(self) -> list[FeedResult]:
        """The feeds that failed (empty when the run did all it was asked)."""
        return [feed for feed in self.feeds if not feed.ok]

    @property
    def ok(self) -> bool:
        """Whether every feed committed."""
        return not self.failed

    @property
    def wall_seconds(self) -> float:
        """Seconds from start to finish (0 while running)."""
        if self.finished_at is None:
            return 0.0
        return (self.finished_at - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping of the single-feed fields; every value is a plain str, int, float, bool or dict.

        The JSON report documents this shape; each feed's own is ``FeedResult.to_dict()``.
        """
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
