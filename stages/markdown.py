"""``markdown`` reporter: the day's top titles as a Markdown table (``LATEST_UPDATE.md``)."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.errors import ReportError
from pipeline.result import RunResult
from pipeline.stage import LakeReader, Reporter

logger = logging.getLogger(__name__)

ATTRIBUTION = "This product uses the TMDB API but is not endorsed or certified by TMDB."
_SPECIAL = re.compile(r"([\\|*_`\[\]<>#!~&])")
_NEWLINES = re.compile(r"[\r\n\u2028\u2029]+")


def escape_markdown(text: Any) -> str:
    """Make untrusted text inert inside a Markdown table cell.

    Backslash-escapes Markdown and HTML syntax, turns newlines into spaces, and breaks
    ``@mentions`` and bare links so nothing from TMDB becomes live.
    """
    value = "" if text is None or (isinstance(text, float) and pd.isna(text)) else str(text)
    value = _NEWLINES.sub(" ", value)
    value = _SPECIAL.sub(r"\\\1", value)
    value = value.replace("@", "@\u200b").replace("://", ":\u200b//")
    return value.strip()


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file and ``os.replace``; no half-written report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


@dataclasses.dataclass(frozen=True)
class MarkdownOptions:
    """Options of the ``markdown`` reporter."""

    path: Path = Path("LATEST_UPDATE.md")
    top: int = dataclasses.field(default=5, metadata={"ge": 1, "le": 100})


class MarkdownReporter(Reporter[MarkdownOptions]):
    """Writes the top titles of the day as a Markdown table."""

    Options = MarkdownOptions

    async def report(self, result: RunResult, lake: LakeReader) -> dict[str, str]:
        """Read the committed day back from the lake and render it."""
        today = await lake.read_day(result.trend_date, result.feed)
        if today is None:
            raise ReportError(f"the lake has no data for {result.trend_date}", stage=self.name)
        text = render(result, today, top=self.options.top, lake=lake.describe())
        write_text_atomic(self.options.path, text)
        logger.info("wrote the report to %s", self.options.path)
        return {f"report:{self.name}": str(self.options.path)}


def render(result: RunResult, today: pd.DataFrame, *, top: int, lake: str) -> str:
    """The report's Markdown text."""
    rows = today.sort_values("rank").head(top)
    lines = [
        f"# TMDB {result.feed.label}: {result.trend_date.isoformat()}",
        "",
        f"Top {len(rows)} of {len(today)} titles in the lake at `{escape_markdown(lake)}`.",
        "",
        "| Rank | Title | Release date | Popularity | Rating |",
        "|---:|---|---|---:|---|",
    ]
    for row in rows.itertuples(index=False):
        rating = "—" if not row.vote_count else f"{row.vote_average:.1f} ({row.vote_count:,} votes)"
        lines.append(
            f"| {row.rank} | {escape_markdown(row.title)} | {escape_markdown(row.release_date) or '—'} "
            f"| {row.popularity:,.1f} | {rating} |"
        )
    lines += ["", f"_{ATTRIBUTION}_", ""]
    return "\n".join(lines)
