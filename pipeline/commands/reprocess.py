"""``reprocess``: rebuild cleaned days from the raw zone with the configured transformer and format.

Each day is replayed from the raw pages its manifest names,
through the same stages a live run uses, and committed with the lake's usual protocol: one
day at a time, atomically, idempotently. The raw zone is only read, never written: the new
manifest names the same raw object.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import tempfile
from pathlib import Path
from typing import Any

from pipeline.commands._lake import configured_feed
from pipeline.config import PipelineConfig, StageConfig
from pipeline.datalake import LakeLoader
from pipeline.errors import ConfigError, LoadError, PipelineError
from pipeline.redact import redact
from pipeline.runner import Stages, build_stage, new_context, run_stages
from pipeline.stage import Feed

logger = logging.getLogger(__name__)

MAX_DAYS = 3660


@dataclasses.dataclass
class ReprocessSummary:
    """Which days were rebuilt, skipped (no raw zone) or failed, and why."""

    rebuilt: list[dt.date] = dataclasses.field(default_factory=list)
    skipped: list[dt.date] = dataclasses.field(default_factory=list)
    failed: dict[dt.date, str] = dataclasses.field(default_factory=dict)

    def describe(self) -> str:
        """One line: ``rebuilt 3, skipped 1 (no raw zone), failed 0``."""
        return f"rebuilt {len(self.rebuilt)}, skipped {len(self.skipped)} (no raw zone), failed {len(self.failed)}"


async def reprocess(config: PipelineConfig, start: dt.date, end: dt.date, *, force: bool = False) -> ReprocessSummary:
    """Rebuild every day from ``start`` to ``end`` (inclusive) that has a raw zone; go on past failures."""
    if end < start:
        raise ConfigError(f"--to {end} is before --from {start}")
    if (end - start).days >= MAX_DAYS:
        raise ConfigError(f"at most {MAX_DAYS} days at a time")
    feed = configured_feed(config)
    summary = ReprocessSummary()
    days = [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]
    for number, day in enumerate(days, start=1):
        try:
            rows = await _one_day(config, feed, day, force=force)
        except PipelineError as exc:
            message = redact(f"{exc}; {exc.outcome}" if exc.outcome else str(exc))
            summary.failed[day] = message
            logger.error("reprocess %d/%d: %s failed: %s", number, len(days), day, message)
            continue
        if rows is None:
            summary.skipped.append(day)
            logger.info("reprocess %d/%d: %s skipped: no raw zone", number, len(days), day)
        else:
            summary.rebuilt.append(day)
            logger.info("reprocess %d/%d: %s rebuilt (%d rows)", number, len(days), day, rows)
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
