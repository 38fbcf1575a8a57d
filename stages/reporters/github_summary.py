"""``github-summary`` reporter: a compact report appended to the Actions job summary.

GitHub Actions sets ``$GITHUB_STEP_SUMMARY`` to a file whose Markdown it shows on the
run's page. Outside Actions the variable is unset and this reporter does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from pipeline.stage import Reporter, RunLake, RunResult
from stages.reporters import report_model as rm

logger = logging.getLogger(__name__)

ENV_VAR = "GITHUB_STEP_SUMMARY"


class GithubSummaryOptions(rm.ReportOptions):
    """Options of the ``github-summary`` reporter (the shared report options)."""


class GithubSummaryReporter(Reporter[GithubSummaryOptions]):
    """Appends the top N, the movement and the run counters to ``$GITHUB_STEP_SUMMARY``."""

    Options = GithubSummaryOptions

    async def report(self, result: RunResult, lake: RunLake) -> dict[str, str]:
        """Append the summary when running in Actions; otherwise do nothing."""
        target = os.environ.get(ENV_VAR, "")
        if not target:
            logger.debug("$%s is not set: no job summary to write", ENV_VAR)
            return {}
        model = await rm.build_report(result, lake, self.options, stage=self.name)
        path = Path(target)
        await asyncio.to_thread(_append, path, render(model))
        logger.info("appended the job summary to %s", path)
        return {f"report:{self.name}": str(path)}


def render(report: rm.Report) -> str:
    """The compact Markdown summary: the run's counters, then each feed's top N and movement."""
    result = report.result
    counters = result.counters
    parts = report.parts
    several = len(parts) > 1
    heading = "trending, by feed" if several else result.feed.label
    rows = sum(s.total for s in report.sections)
    lines = [
        f"### TMDB {heading}: {result.trend_date.isoformat()}",
        "",
        f"Run {report.run_time} · {rows:,} rows · lake {rm.code_span(report.lake)}",
        "",
        *rm.table(
            ("Pages", "Requests", "Retries", "Wall time"),
            "rrrr",
            [
                (
                    _count(counters.get("pages", result.batches)),
                    _count(counters.get("requests", 0)),
                    _count(counters.get("retries", 0)),
                    f"{result.wall_seconds:.2f} s",
                )
            ],
        ),
        "",
    ]
    for part in parts:
        if several:
            lines += [f"#### {rm.feed_heading(part.feed)}", ""]
        if isinstance(part, rm.FailedSection):
            lines += rm.failed_lines(part)
            continue
        lines += [*rm.top_table(report, detailed=False, section=part), ""]
        if part.set_aside:
            lines += [f"_{rm.set_aside_line(part)}_", ""]
        lines += rm.compact_movement(report, part)
    lines += [f"_{rm.ATTRIBUTION}_", ""]
    return "\n".join(lines)


def _append(path: Path, text: str) -> None:
    # Appending, not replacing: other steps of the same job write to this file too.
    with path.open("a", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


def _count(value: float) -> str:
    return f"{int(value):,}"
