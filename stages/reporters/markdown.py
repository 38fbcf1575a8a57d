"""``markdown`` reporter: the daily dashboard ``LATEST_UPDATE.md``.

Header, top N table with movement, movement sections, a mermaid chart GitHub renders
without an image, and TMDB's attribution. Re-running a day with the same data changes
only the run-time line, so a workflow can commit the file only when something changed.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from pipeline.datalake.files import write_text_atomic
from pipeline.stage import Reporter, RunLake, RunResult
from stages.reporters import report_model as rm

logger = logging.getLogger(__name__)


class MarkdownOptions(rm.ReportOptions):
    """Options of the ``markdown`` reporter."""

    path: Path = Path("LATEST_UPDATE.md")


class MarkdownReporter(Reporter[MarkdownOptions]):
    """Writes the day's dashboard as one Markdown file, atomically."""

    Options = MarkdownOptions

    async def report(self, result: RunResult, lake: RunLake) -> dict[str, str]:
        """Read today and the previous available day back from the lake, render, write."""
        model = await rm.build_report(result, lake, self.options, stage=self.name)
        await asyncio.to_thread(write_text_atomic, self.options.path, render(model))
        logger.info("wrote the report to %s", self.options.path)
        return {f"report:{self.name}": str(self.options.path)}


def render(report: rm.Report) -> str:
    """The full report's Markdown text."""
    result, n = report.result, report.top_n
    lines = [
        f"# TMDB {result.feed.label}: {result.trend_date.isoformat()}",
        "",
        f"- **Run:** {report.run_time}",
        f"- **Feed:** {result.feed.label}",
        f"- **Rows:** {report.total:,}",
        f"- **Lake:** {rm.code_span(report.lake)}",
        "",
        f"## Top {n}",
        "",
        *rm.top_table(report),
        "",
        "## Movement",
        "",
        *rm.movement_sections(report),
    ]
    chart = rm.mermaid_chart(report)
    if chart:
        lines += [f"## Popularity of the top {len(report.movement.top[:10])}", "", *chart, ""]
    lines += ["---", "", f"_{rm.ATTRIBUTION}_", ""]
    return "\n".join(lines)
