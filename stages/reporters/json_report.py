"""``json`` reporter: the run and today's top N as one JSON document, for pipelines that call us.

The document's fields are listed in ``FIELDS`` and ``ENTRY_FIELDS`` and documented in
the README; ``schema_version`` changes whenever a field changes meaning or goes away.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

from pipeline import trends
from pipeline.datalake.files import write_text_atomic
from pipeline.stage import Output, Reporter, RunLake, RunResult
from stages.reporters import report_model as rm

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
STDOUT = "-"
FIELDS = (
    "schema_version",
    "run",
    "compared_with",
    "total",
    "top_n",
    "top",
    "new_in_top",
    "climbers",
    "dropped",
    "trends",
    "sections",
)
SECTION_FIELDS = (
    "feed",
    "status",
    "error",
    "outcome",
    "compared_with",
    "total",
    "top",
    "new_in_top",
    "climbers",
    "dropped",
    "set_aside",
    "trend",
)
PERSON_FIELDS = (
    "rank",
    "media_type",
    "id",
    "name",
    "known_for_department",
    "popularity",
    "profile_url",
    "previous_rank",
    "change",
    "movement",
)
ENTRY_FIELDS = (
    "rank",
    "media_type",
    "id",
    "title",
    "release_date",
    "year",
    "genres",
    "popularity",
    "vote_average",
    "vote_count",
    "poster_url",
    "previous_rank",
    "change",
    "movement",
)
DROPPED_FIELDS = ("media_type", "id", "title", "previous_rank", "rank")
DROPPED_PERSON_FIELDS = ("media_type", "id", "name", "previous_rank", "rank")


class JsonOptions(rm.ReportOptions):
    """Options of the ``json`` reporter; ``path: "-"`` (the default) means standard output."""

    path: Path = Path(STDOUT)


class JsonReporter(Reporter[JsonOptions]):
    """Writes ``RunResult`` plus today's top N (with movement) as JSON."""

    Options = JsonOptions

    async def report(self, result: RunResult, lake: RunLake) -> dict[str, str]:
        """Build the document and write it to the file or to standard output."""
        model = await rm.build_report(result, lake, self.options, stage=self.name)
        text = json.dumps(document(model), ensure_ascii=False, indent=2) + "\n"
        if str(self.options.path) == STDOUT:
            sys.stdout.write(text)
            sys.stdout.flush()
            return {f"report:{self.name}": Output("stdout", to_stdout=True)}
        await asyncio.to_thread(write_text_atomic, self.options.path, text)
        logger.info("wrote the JSON report to %s", self.options.path)
        return {f"report:{self.name}": str(self.options.path)}


def document(report: rm.Report) -> dict[str, Any]:
    """The JSON-ready document (see ``FIELDS``); the movement lists are empty on the first day.

    The top-level ``compared_with`` to ``dropped`` are the report's lead feed's (``Report.primary``).
    ``trends`` holds one trend document per section that has one (``pipeline.trends.trend_document``, the
    same document ``history --format json`` prints under ``trend``). ``sections`` holds one object per feed
    of the config, in its order: the run's, failed ones included, and those an earlier run committed for the
    day (see ``SECTION_FIELDS``).
    """
    people = bool(report.sections) and report.primary.feed.is_people
    fields = {
        "schema_version": SCHEMA_VERSION,
        "run": report.result.to_dict(),
        **_movement(report.movement, people=people),
        "total": report.total,
        "top_n": report.top_n,
        "trends": [trends.trend_document(s.trend) for s in report.sections],
        "sections": [section(part) for part in report.parts],
    }
    return {name: fields[name] for name in FIELDS}


def section(part: rm.FeedSection | rm.FailedSection) -> dict[str, Any]:
    """One feed's section (see ``SECTION_FIELDS``): its movement and trend, or, when it failed, why."""
    feed = {"media_type": part.feed.media_type, "time_window": part.feed.time_window}
    if isinstance(part, rm.FailedSection):
        return {
            "feed": feed,
            "status": "failed",
            "error": part.error,
            "outcome": part.outcome,
            "compared_with": None,
            "total": None,
            "top": [],
            "new_in_top": [],
            "climbers": [],
            "dropped": [],
            "set_aside": 0,
            "trend": None,
        }
    fields = {
        "feed": feed,
        "status": "committed",
        "error": None,
        "outcome": None,
        **_movement(part.movement, people=part.feed.is_people),
        "total": part.total,
        "set_aside": part.set_aside,
        "trend": trends.trend_document(part.trend),
    }
    return {name: fields[name] for name in SECTION_FIELDS}


def _movement(movement: rm.Movement, *, people: bool) -> dict[str, Any]:
    compared, previous = movement.compared, movement.previous_date
    row = person if people else entry
    name = "name" if people else "title"  # DROPPED_PERSON_FIELDS or DROPPED_FIELDS
    return {
        "compared_with": previous.isoformat() if previous else None,
        "top": [row(e, compared) for e in movement.top],
        "new_in_top": [row(e, compared) for e in movement.new_in_top],
        "climbers": [row(e, compared) for e in movement.climbers],
        "dropped": [
            {
                "media_type": d.previous.media_type,
                "id": d.previous.id,
                name: d.previous.title,
                "previous_rank": d.previous.rank,
                "rank": d.rank_now,
            }
            for d in movement.dropped
        ],
    }


def person(item: rm.Entry, compared: bool) -> dict[str, Any]:
    """One top-N person as a JSON object (see ``PERSON_FIELDS``); strings are raw, not escaped."""
    return {
        "rank": item.rank,
        "media_type": item.media_type,
        "id": item.id,
        "name": item.title,
        "known_for_department": item.department or None,
        "popularity": _finite(item.popularity),
        "profile_url": item.poster_url or None,
        "previous_rank": item.previous_rank,
        "change": item.change,
        "movement": item.movement(compared),
    }


def entry(item: rm.Entry, compared: bool) -> dict[str, Any]:
    """One top-N row as a JSON object (see ``ENTRY_FIELDS``); strings are raw, not escaped."""
    return {
        "rank": item.rank,
        "media_type": item.media_type,
        "id": item.id,
        "title": item.title,
        "release_date": item.release_date or None,
        "year": int(item.release_date[:4]) if rm.year(item.release_date) != rm.NO_VALUE else None,
        "genres": [g for g in item.genres.split("|") if g],
        "popularity": _finite(item.popularity),
        "vote_average": _finite(item.vote_average),
        "vote_count": item.vote_count,
        "poster_url": item.poster_url or None,
        "previous_rank": item.previous_rank,
        "change": item.change,
        "movement": item.movement(compared),
    }


def _finite(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else value
