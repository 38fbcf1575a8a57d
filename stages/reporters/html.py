"""``html`` reporter: the trend dashboard as one self-contained static page (e.g. ``site/index.html``).

The page carries everything inline: the rank chart (the same matplotlib SVG as the Markdown
report's), the tables, each top title's trajectory, its styles and a few lines of script.
Nothing is fetched at view time: its Content-Security-Policy allows no network at all and
runs only the page's own script (by hash), so even a title that slipped past escaping
could not run. Every piece of TMDB text is escaped with ``html.escape``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline import trends
from pipeline.datalake.files import write_text_atomic
from pipeline.stage import Reporter, RunLake, RunResult
from stages.reporters import chart
from stages.reporters import report_model as rm

logger = logging.getLogger(__name__)

_PROLOG = re.compile(r"^.*?(?=<svg)", re.S)
# Hovering a row of the top table brings its series forward in the chart.
SCRIPT = """
document.querySelectorAll("tr[data-series]").forEach(function (row) {
  var series = document.getElementById(row.getAttribute("data-series"));
  if (!series) { return; }
  row.addEventListener("mouseenter", function () { series.classList.add("hot"); row.classList.add("hot"); });
  row.addEventListener("mouseleave", function () { series.classList.remove("hot"); row.classList.remove("hot"); });
});
""".strip()
STYLE = """
:root { color-scheme: light dark; --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg: #ffffff; --hot: #fff8c5; }
@media (prefers-color-scheme: dark) {
  :root { --ink: #e6edf3; --muted: #9198a1; --line: #3d444d; --bg: #0d1117; --hot: #3b2e00; }
}
body { font: 15px/1.5 system-ui, sans-serif; color: var(--ink); background: var(--bg); margin: 0 auto;
  max-width: 1100px; padding: 1rem 1.5rem; }
h1 { font-size: 1.6rem; } h2 { border-bottom: 1px solid var(--line); padding-bottom: .3rem; }
.meta, .note, figcaption, footer { color: var(--muted); }
table { border-collapse: collapse; margin: .5rem 0 1rem; }
th, td { border: 1px solid var(--line); padding: .25rem .6rem; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.spark { font-family: ui-monospace, monospace; letter-spacing: .1em; white-space: nowrap; }
tr.hot td { background: var(--hot); }
figure.chart { margin: 0; } figure.chart svg { max-width: 100%; height: auto; }
figure.chart g[id*="-series-"].hot path { stroke-width: 5px; }
.lists { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 0 1.5rem; }
""".strip()


class HtmlOptions(rm.ReportOptions):
    """Options of the ``html`` reporter."""

    path: Path = Path("site/index.html")


class HtmlReporter(Reporter[HtmlOptions]):
    """Writes the trend dashboard as one static HTML page, atomically."""

    Options = HtmlOptions

    async def prepare(self) -> None:
        """Load matplotlib while the run fetches."""
        await chart.prepare()

    async def report(self, result: RunResult, lake: RunLake) -> dict[str, str]:
        """Build the shared model, draw the chart (once per run), render, write."""
        model = await rm.build_report(result, lake, self.options, stage=self.name)
        charts = {s.feed.slug: await chart.shared_chart(lake, s.trend, s.feed.slug) for s in model.sections}
        await asyncio.to_thread(write_text_atomic, self.options.path, render(model, charts))
        logger.info("wrote the page to %s", self.options.path)
        return {f"report:{self.name}": str(self.options.path)}


def script_hash(script: str = SCRIPT) -> str:
    """The script's CSP source, ``'sha256-…'``: the only script the page may run."""
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    return f"'sha256-{digest}'"


def render(report: rm.Report, charts: dict[str, str | None] | None = None) -> str:
    """The whole page; ``charts`` maps a feed's slug to its SVG text (``None``: no chart)."""
    result = report.result
    several = len(report.parts) > 1
    heading = "trending, by feed" if several else result.feed.label
    title = f"TMDB {heading}: {result.trend_date.isoformat()}"
    csp = f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src {script_hash()}"
    parts = [
        "<!doctype html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">Run {_e(report.run_time)} · {_rows(report)} · lake <code>{_e(report.lake)}</code></p>',
    ]
    for part in report.parts:
        if isinstance(part, rm.FailedSection):
            parts += _failed(part)
        else:
            parts += _section(part, (charts or {}).get(part.feed.slug), several=several)
    parts += [
        f"<footer><p>{_e(rm.ATTRIBUTION)}</p></footer>",
        f"<script>{SCRIPT}</script>",
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(parts)


def _section(section: rm.FeedSection, svg: str | None, *, several: bool) -> list[str]:
    model, n = section.trend, section.trend.top_n
    slug, name = section.feed.slug, rm.name_header(section)
    parts = [f'<section class="feed" id="feed-{_e(slug)}">']
    # one feed: its parts are the page's; several: each feed's parts sit under its own heading
    h = "h3" if several else "h2"
    if several:
        parts.append(f"<h2>{_e(rm.feed_heading(section.feed))}</h2>")
    parts.append(f"<{h}>Rank over {len(model.dates)} days</{h}>")
    if svg is not None:
        inline = _PROLOG.sub("", svg, count=1)
        parts += [
            f'<figure class="chart" id="chart-{_e(slug)}" role="img" aria-label="{_e(chart.alt_text(model))}">',
            inline,
            f"<figcaption>{_e(chart.alt_text(model))}.</figcaption>",
            "</figure>",
        ]
    else:
        parts.append(f'<p class="note" id="chart-{_e(slug)}-missing">{_e(chart.MISSING_NOTE)}</p>')
    gaps = rm.gaps_line(section)
    if gaps:
        parts.append(f'<p class="note">{_e(gaps[0])}</p>')
    parts += [f"<{h}>Top {n} on {_e(str(section.day))}</{h}>", _top_table(section, slug)]
    if section.set_aside:
        parts.append(f'<p class="note" id="set-aside-{_e(slug)}">{_e(rm.set_aside_line(section))}</p>')
    parts.append(
        f'<p class="note">{trends.WEEK} days: one mark per day, oldest first; a taller bar is a better rank in the '
        f"top {n}, {trends.OUT_OF_TOP} below it, {trends.GAP_MARK} a day missing from the lake.</p>"
    )
    parts.append(f"<{h}>This week</{h}>")
    if model.baseline is None:
        parts.append('<p class="note">There is no day in the lake a week or more before today yet.</p>')
    else:
        base = model.baseline
        was = model.dates.index(base)
        parts.append(f'<p class="note">Today compared with {_e(base.isoformat())}.</p><div class="lists">')
        parts += _list(
            f"Holding the top {n}",
            ("Rank", name, "Streak"),
            model.holding,
            lambda t: [t.rank, rm.streak_label(t.streak)],
        )
        parts += _list(
            "Rising fastest",
            ("Rank", name, "Was", "Gain"),
            model.rising,
            lambda t: [t.rank, t.ranks[was], trends.change_label(t.week_change)],
        )
        parts += _list(
            f"New in the top {n}",
            ("Rank", name, "Was"),
            model.new_this_week,
            lambda t: [t.rank, rm.previous_label(t.ranks[was])],
        )
        parts += _list(
            f"Fell out of the top {n}",
            ("Was", name, "Now"),
            model.fell_out_this_week,
            lambda t: [t.ranks[was], rm.previous_label(t.rank)],
        )
        parts.append("</div>")
    parts.append("</section>")
    return parts


def _failed(failed: rm.FailedSection) -> list[str]:
    slug = failed.feed.slug
    parts = [
        f'<section class="feed failed" id="feed-{_e(slug)}">',
        f"<h2>{_e(rm.feed_heading(failed.feed))}</h2>",
        f'<p class="note">Failed: {_e(failed.error)}</p>',
    ]
    if failed.outcome:
        parts.append(f'<p class="note">The lake: {_e(failed.outcome)}</p>')
    return [*parts, "</section>"]


def _top_table(section: rm.FeedSection, slug: str) -> str:
    """The top N with trend columns; a person's row has a name and a department where a title's has a year."""
    model, n, people = section.trend, section.trend.top_n, section.feed.is_people
    named = ("Name", "Known for") if people else ("Title", "Year")
    head = ("Rank", *named, f"{trends.WEEK} days", "Week", "Streak", f"Days in the top {n}", "Best")
    rows = []
    for number, item in enumerate(model.top, start=1):
        ranks = ", ".join(f"{d}: {r if r is not None else '—'}" for d, r in item.last(len(model.dates)))
        best = f"{item.best_rank} ({item.best_date})" if item.best_rank else rm.NO_VALUE
        week = rm.NO_VALUE if model.baseline is None else trends.change_label(item.week_change)
        series = chart.SERIES_ID.format(salt=slug, n=number)
        rows.append(
            f'<tr data-series="{_e(series)}"><td class="num">{item.rank}</td><td class="title">{_e(item.label)}</td>'
            f"<td>{_e((item.department if people else item.year) or rm.NO_VALUE)}</td>"
            f'<td class="spark" title="{_e(ranks)}">{_e(trends.sparkline(model, item))}</td>'
            f'<td>{_e(week)}</td><td class="num">{_e(rm.streak_label(item.streak))}</td>'
            f'<td class="num">{item.days_in_top} of {len(model.present)}</td><td>{_e(best)}</td></tr>'
        )
    header = "".join(f"<th>{_e(h)}</th>" for h in head)
    return (
        f'<table class="top" id="top-{_e(slug)}"><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def _list(
    heading: str,
    head: tuple[str, ...],
    items: tuple[trends.TitleTrend, ...],
    cells: Callable[[trends.TitleTrend], list[Any]],
) -> list[str]:
    parts = [f"<div><h3>{_e(heading)}</h3>"]
    if not items:
        return [*parts, '<p class="note">None.</p></div>']
    body = []
    for item in items:
        first, *rest = cells(item)
        values = [first, item.label, *rest]
        body.append(
            "<tr>" + "".join(f"<td>{_e(str(v) if v is not None else rm.NO_VALUE)}</td>" for v in values) + "</tr>"
        )
    header = "".join(f"<th>{_e(h)}</th>" for h in head)
    return [*parts, f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"]


def _rows(report: rm.Report) -> str:
    """``57 titles``, ``20 people``, or ``60 titles and people``: what the page's committed feeds hold today."""
    total = sum(s.total for s in report.sections)
    kinds = {s.feed.is_people for s in report.sections}
    noun = "titles and people" if len(kinds) > 1 else "people" if kinds == {True} else "titles"
    return f"{total:,} {noun}"


def _e(text: str) -> str:
    return html.escape(text, quote=True)
