"""``reprocess``: rebuild cleaned days from the raw zone with the configured transformer and format.

Each day of each configured feed (or of the feeds ``--feed`` names) is replayed from the raw
pages its manifest names, through the same stages a live run uses, and committed with the
lake's usual protocol: one day of one feed at a time, atomically, idempotently. The raw zone
is only read, never written: the new manifest names the same raw object.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any, NamedTuple

from pipeline.commands._lake import selected_feeds
from pipeline.config import PipelineConfig, StageConfig
from pipeline.datalake import LakeLoader
from pipeline.errors import ConfigError, LoadError, PipelineError
from pipeline.redact import redact
from pipeline.runner import Stages, build_stage, new_context, run_stages
from pipeline.stage import Feed

logger = logging.getLogger(__name__)

MAX_DAYS = 3660


class DayFeed(NamedTuple):
    """One day of one feed: what ``reprocess`` rebuilds, skips or fails at once."""

    day: dt.date
    feed: Feed

    def describe(self) -> str:
        """``2026-11-25 tv/day``."""
        return f"{self.day} {self.feed.spec}"


@dataclasses.dataclass
class ReprocessSummary:
    """Which days of which feeds were rebuilt, skipped (no raw zone) or failed, and why."""

    rebuilt: list[DayFeed] = dataclasses.field(default_factory=list)
    skipped: list[DayFeed] = dataclasses.field(default_factory=list)
    failed: dict[DayFeed, str] = dataclasses.field(default_factory=dict)
    feeds: tuple[Feed, ...] = ()
    """The feeds the command went through, in the config's order."""

    def describe(self) -> str:
        """One line: ``rebuilt 3, skipped 1 (no raw zone), failed 0``, naming the feeds when there are several."""
        counts = f"rebuilt {len(self.rebuilt)}, skipped {len(self.skipped)} (no raw zone), failed {len(self.failed)}"
        if len(self.feeds) < 2:
            return counts
        return f"{counts} (days of {len(self.feeds)} feeds: {', '.join(feed.spec for feed in self.feeds)})"


async def reprocess(
    config: PipelineConfig,
    start: dt.date,
    end: dt.date,
    *,
    force: bool = False,
    feeds: Collection[str | Feed] | None = None,
) -> ReprocessSummary:
    """Rebuild every day from ``start`` to ``end`` (inclusive) of every configured feed (or of ``feeds``) that has a
    raw zone, day by day; go on past failures."""
    if end < start:
        raise ConfigError(f"--to {end} is before --from {start}")
    if (end - start).days >= MAX_DAYS:
        raise ConfigError(f"at most {MAX_DAYS} days at a time")
    chosen = selected_feeds(config, feeds)
    summary = ReprocessSummary(feeds=chosen)
    days = [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]
    todo = [DayFeed(day, feed) for day in days for feed in chosen]
    for number, item in enumerate(todo, start=1):
        try:
            rows = await _one_day(config, item.feed, item.day, force=force)
        except PipelineError as exc:
            message = redact(f"{exc}; {exc.outcome}" if exc.outcome else str(exc))
            summary.failed[item] = message
            logger.error("reprocess %d/%d: %s failed: %s", number, len(todo), item.describe(), message)
            continue
        if rows is None:
            summary.skipped.append(item)
            logger.info("reprocess %d/%d: %s skipped: no raw zone", number, len(todo), item.describe())
        else:
            summary.rebuilt.append(item)
            logger.info("reprocess %d/%d: %s rebuilt (%d rows)", number, len(todo), item.describe(), rows)
    return summary


async def _one_day(config: PipelineConfig, feed: Feed, day: dt.date, *, force: bool) -> int | None:
    context = new_context(day, force=force)
    loader = build_stage("loader", config.loader, context)
    if not isinstance(loader, LakeLoader):
        raise ConfigError(f"loader {config.loader.type!r} keeps no raw zone to reprocess from")
    async with loader:
        found = await _raw_zone(loader, day, feed)
    if found is None:
        return None
    data, entry = found
    with tempfile.TemporaryDirectory(prefix="pipeline-reprocess-") as folder:
        path = Path(folder) / "raw.jsonl.gz"
        path.write_bytes(data)
        options: dict[str, Any] = {"path": str(path), "media_type": feed.media_type, "time_window": feed.time_window}
        extractor = build_stage("extractor", StageConfig("replay", options, "reprocess.extractor"), context)
        loader = build_stage("loader", config.loader, context)
        transformer = build_stage("transformer", config.transformer, context)
        result = await run_stages(Stages(extractor, transformer, loader), context, reuse_raw=entry)
    return result.rows


async def _raw_zone(loader: LakeLoader[Any], day: dt.date, feed: Feed) -> tuple[bytes, dict[str, Any]] | None:
    """The day's raw pages and the manifest entry that names them; ``None`` when no manifest names any."""
    manifest = await loader.read_manifest_entry(day, feed)
    raw = manifest.raw if manifest else {}
    if not raw.get("key"):
        return None
    data = await loader.lake.get_bytes(str(raw["key"]))
    if data is None:
        return None
    if raw.get("sha256") not in (None, hashlib.sha256(data).hexdigest()):
        raise LoadError(f"{loader.locate(str(raw['key']))} does not match its manifest's sha256")
    return data, dict(raw)
