"""``markdown`` reporter: the daily dashboard ``LATEST_UPDATE.md`` and its rank chart.

Header; per feed: the top N table with movement, each title's last week and streak; the
week's lists; the rank-over-time chart (an SVG beside the report, drawn by matplotlib when
the ``charts`` extra is installed, else a one-line note); the movement since the previous
day; then TMDB's attribution. Re-running a day with the same data changes only the
run-time line, so a workflow can commit the files only when something changed.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from pipeline.datalake.files import write_text_atomic
from pipeline.stage import Reporter, RunLake, RunResult
from stages.reporters import chart
from stages.reporters import report_model as rm

logger = logging.getLogger(__name__)


class MarkdownOptions(rm.ReportOptions):
    """Options of the ``markdown`` reporter."""

    path: Path = Path("LATEST_UPDATE.md")
    chart: bool = True
    """Draw the rank-over-time chart beside the report (needs the ``charts`` extra)."""


def chart_path(report_path: Path, section: rm.FeedSection) -> Path:
    """Where a feed's chart goes: beside the report, e.g. ``LATEST_UPDATE.movies.svg``."""
    return report_path.with_name(f"{report_path.stem}.{section.feed.slug}.svg")


class MarkdownReporter(Reporter[MarkdownOptions]):
    """Writes the day's dashboard as one Markdown file (and one SVG chart per feed), atomically."""

    Options = MarkdownOptions

    async def prepare(self) -> None:
        """Load matplotlib while the run fetches, when the chart is on."""
        if self.options.chart:
            await chart.prepare()

    async def report(self, result: RunResult, lake: RunLake) -> dict[str, str]:
        """Read today and the trend window back from the lake, draw, render, write."""
        model = await rm.build_report(result, lake, self.options, stage=self.name)
        outputs: dict[str, str] = {}
        charts: dict[str, str | None] = {}
        for section in model.sections:
            svg = await chart.shared_chart(lake, section.trend, section.feed.slug) if self.options.chart else None
            path = chart_path(self.options.path, section)
            charts[section.feed.slug] = path.name if svg is not None else None
            if svg is not None:
                await asyncio.to_thread(write_text_atomic, path, svg)
                outputs[f"chart:{self.name}:{section.feed.slug}"] = str(path)
        await asyncio.to_thread(write_text_atomic, self.options.path, render(model, charts, draw=self.options.chart))
        logger.info("wrote the report to %s", self.options.path)
        return {f"report:{self.name}": str(self.options.path), **outputs}


def render(report: rm.Report, charts: dict[str, str | None] | None = None, *, draw: bool = True) -> str:
    """The full report's Markdown text; ``charts`` maps a feed's slug to its chart's file name (``None``: none).

    A run of several feeds gets one ``##`` section per feed, in the run's order; a failed feed's
    section says what failed and what the lake kept, and the other sections are written all the same.
    """
    result = report.result
    parts = report.parts
    several = len(parts) > 1
    heading = "trending, by feed" if several else result.feed.label
    lines = [
        f"# TMDB {heading}: {result.trend_date.isoformat()}",
        "",
        f"- **Run:** {report.run_time}",
        # each label holds a comma ("trending movies, today"): several are set apart by semicolons
        f"- **{'Feeds' if several else 'Feed'}:** {'; '.join(feed_name(p) for p in parts) or result.feed.label}",
        f"- **Rows:** {sum(s.total for s in report.sections):,}",
        f"- **Lake:** {rm.code_span(report.lake)}",
        "",
    ]
    for part in parts:
        if several:
            lines += [f"## {rm.feed_heading(part.feed)}", ""]
        if isinstance(part, rm.FailedSection):
            lines += rm.failed_lines(part)
            continue
        lines += render_section(report, part, (charts or {}).get(part.feed.slug), draw=draw, level=3 if several else 2)
    lines += ["---", "", f"_{rm.ATTRIBUTION}_", ""]
    return "\n".join(lines)


def feed_name(part: rm.FeedSection | rm.FailedSection) -> str:
    """The feed's label in the header, marked when it failed."""
    return f"{part.feed.label} (failed)" if isinstance(part, rm.FailedSection) else part.feed.label


def render_section(
    report: rm.Report, section: rm.FeedSection, chart_file: str | None, *, draw: bool, level: int
) -> list[str]:
    """One feed: top N with trend columns, this week, the rank chart, the movement since the previous day."""
    n, hashes = section.trend.top_n, "#" * level
    days = len(section.trend.dates)
    lines = [
        f"{hashes} Top {n}",
        "",
        *rm.top_table(report, section=section),
        "",
        rm.trend_legend(section),
        "",
        *([f"_{rm.set_aside_line(section)}_", ""] if section.set_aside else []),
        f"{hashes} This week",
        "",
        *rm.this_week_sections(section, level + 1),
        f"{hashes} Rank over {days} days",
        "",
    ]
    if chart_file is not None:
        lines += [f"![{chart_text(section)}]({chart_file})", ""]
    elif draw:
        lines += [f"_{chart_module_note()}_", ""]
    else:
        lines += ["_The rank chart is turned off (`chart: false`)._", ""]
    lines += rm.gaps_line(section)
    lines += [f"{hashes} Movement since the previous day", "", *rm.movement_sections(report, level + 1, section)]
    return lines


def chart_text(section: rm.FeedSection) -> str:
    """The chart's alt text: what it shows, safe inside ``![...]``."""
    return rm.escape_markdown(chart.alt_text(section.trend))


def chart_module_note() -> str:
    """The one line where the chart would be, when matplotlib is missing."""
    return chart.MISSING_NOTE
