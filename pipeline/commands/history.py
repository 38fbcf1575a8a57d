"""``history``: the trend over the last N days (or one title's ranks), read back from the lake, feed by feed.

It prints the trend model the report shows (``pipeline.trends``): the latest top N with
each title's last week, streak, days in the top N and best rank, and the week's lists;
with ``--title``, the matching titles (or people) day by day. Every configured feed has its
own part (``--feed`` picks some, as ``run --feed`` does); a ``person`` feed's rows are people,
with a name and a department. Days are read through the configured loader's verified
``read_day``, so the command works on any lake a loader can read (local folder, S3) in any
format and layout. A day the lake does not have, or cannot vouch for, is a gap in the
output, never an error. The JSON output is documented in ``docs/stages.md``.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import datetime as dt
import io
import json
import logging
import unicodedata
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from pipeline.errors import ConfigError

if TYPE_CHECKING:
    from pipeline.config import PipelineConfig
    from pipeline.stage import Feed
    from pipeline.trends import FeedTrend, TitleTrend

logger = logging.getLogger(__name__)

DEFAULT_DAYS = 30
DEFAULT_TOP = 10
MAX_DAYS = 366
FORMATS = ("table", "json", "csv")
SCHEMA_VERSION = 1
"""Version of ``history --format json`` (``docs/stages.md``)."""
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclasses.dataclass(frozen=True)
class FeedHistory:
    """One feed's part of ``history``: its trend over the window, and its titles matching ``--title`` (if given)."""

    trend: FeedTrend
    title_query: str | None = None
    titles: tuple[TitleTrend, ...] = ()

    @property
    def feed(self) -> Feed:
        """The feed of the window."""
        return self.trend.feed

    @property
    def days(self) -> tuple[dt.date, ...]:
        """Every day of the window, oldest first."""
        return self.trend.dates

    @property
    def present(self) -> tuple[dt.date, ...]:
        """Days of the window the lake has."""
        return self.trend.present

    @property
    def missing(self) -> tuple[dt.date, ...]:
        """Days of the window that are gaps."""
        return tuple(d.date for d in self.trend.gaps)

    def to_dict(self) -> dict[str, Any]:
        """The feed's JSON object: ``feed``, ``trend`` and ``titles`` (``docs/stages.md``)."""
        from pipeline.trends import title_document, trend_document

        return {
            "feed": {"media_type": self.feed.media_type, "time_window": self.feed.time_window},
            "trend": trend_document(self.trend),
            "titles": [title_document(t) for t in self.titles],
        }


@dataclasses.dataclass(frozen=True)
class History:
    """What ``history`` found: one part per feed asked for, in the config's order.

    ``trend``, ``titles`` and the window's days are the first part's: what a one-feed config shows.
    """

    parts: tuple[FeedHistory, ...]
    title_query: str | None = None

    def __post_init__(self) -> None:
        if not self.parts:
            raise ValueError("a history has at least one feed")

    @property
    def trend(self) -> FeedTrend:
        """The first feed's trend."""
        return self.parts[0].trend

    @property
    def titles(self) -> tuple[TitleTrend, ...]:
        """The first feed's titles matching ``--title``."""
        return self.parts[0].titles

    @property
    def feed(self) -> Feed:
        """The first feed."""
        return self.parts[0].feed

    @property
    def days(self) -> tuple[dt.date, ...]:
        """Every day of the window, oldest first (the same for every feed)."""
        return self.parts[0].days

    @property
    def present(self) -> tuple[dt.date, ...]:
        """Days of the window the lake has for the first feed."""
        return self.parts[0].present

    @property
    def missing(self) -> tuple[dt.date, ...]:
        """Days of the window that are gaps for the first feed."""
        return self.parts[0].missing

    def to_dict(self) -> dict[str, Any]:
        """The JSON document: ``schema_version``, ``title_query``, the first feed's ``trend`` and ``titles``, and
        ``feeds``, every feed's own (``docs/stages.md``)."""
        first = self.parts[0].to_dict()
        return {
            "schema_version": SCHEMA_VERSION,
            "title_query": self.title_query,
            "trend": first["trend"],
            "titles": first["titles"],
            "feeds": [first, *(part.to_dict() for part in self.parts[1:])],
        }


def window(end: dt.date, days: int) -> tuple[dt.date, ...]:
    """The ``days`` dates ending at ``end``, oldest first; ``ConfigError`` when there is no such window."""
    from pipeline.trends import window as dates

    try:
        return dates(end, days)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


async def history(
    config: PipelineConfig,
    *,
    end: dt.date | None = None,
    days: int = DEFAULT_DAYS,
    title: str | None = None,
    top: int = DEFAULT_TOP,
    feeds: Collection[str | Feed] | None = None,
    one_feed: bool = False,
) -> History:
    """Read the window ending at ``end`` (today, UTC) of each configured feed (or of ``feeds``) and build its trend.

    ``one_feed``: the caller shows one feed only (``--format csv``), so more than one is a ``ConfigError``.
    """
    end = end or dt.datetime.now(dt.UTC).date()
    window(end, days)
    from pipeline import trends  # pandas: imported by the command that uses it
    from pipeline.commands._lake import lake_reader, selected_feeds

    chosen = selected_feeds(config, feeds)
    if one_feed and len(chosen) > 1:
        specs = ", ".join(feed.spec for feed in chosen)
        raise ConfigError(f"--format csv writes one feed's table and this config has {specs}; choose one with --feed")
    loader = lake_reader(config)
    async with loader:
        models = await asyncio.gather(*(trends.trend(loader, feed, end, days=days, top_n=top) for feed in chosen))
    for model in models:
        logger.info("history: %s: %d of %d days in %s", model.feed.spec, len(model.present), days, loader.describe())
    if title is None:
        return History(tuple(FeedHistory(model) for model in models))
    parts = tuple(FeedHistory(model, title_query=title, titles=tuple(model.find(title))) for model in models)
    return History(parts, title_query=title)


def render_json(result: History) -> str:
    """``result`` as indented JSON."""
    return json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n"


def render_csv(result: History) -> str:
    """One row per title (the latest top N, or the titles matching ``--title``), then one rank column per day.

    The first feed's only (``history(one_feed=True)`` makes sure there is one). A person feed's
    rows have ``name`` and ``known_for_department`` where a title has ``title`` and ``year``.
    A rank cell is empty when the title is not in that day's list and ``gap`` when the day is
    a gap. Text that a spreadsheet would run as a formula is prefixed with ``'``.
    """
    model = result.trend
    people = model.feed.is_people
    items = result.titles if result.title_query is not None else model.top
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    named = ("name", "label", "known_for_department") if people else ("title", "label", "year")
    head = ("media_type", "id", *named, "rank", "streak", "days_in_top", "best_rank", "best_date")
    writer.writerow([*head, "first_seen", "change", "week_change", *(d.isoformat() for d in model.dates)])
    for t in items:
        ranks = ["gap" if not d.present else _blank(r) for d, r in zip(model.days, t.ranks, strict=True)]
        writer.writerow(
            [
                t.media_type,
                t.id,
                _cell(t.title),
                _cell(t.label),
                _cell(t.department) if people else t.year,
                _blank(t.rank),
                t.streak,
                t.days_in_top,
                _blank(t.best_rank),
                _blank(t.best_date),
                _blank(t.first_seen),
                _blank(t.change),
                _blank(t.week_change),
                *ranks,
            ]
        )
    return out.getvalue()


def render_table(result: History) -> str:
    """``result`` as compact plain-text tables, one part per feed, separated by a blank line."""
    return "\n".join(_feed_table(part) for part in result.parts)


def _feed_table(part: FeedHistory) -> str:
    from pipeline.trends import describe_dates, gap_reason

    model = part.trend
    span = f"{model.dates[0]} to {model.dates[-1]}"
    lines = [f"{model.feed.label}, {span}: {len(model.present)} of {len(model.dates)} days in the lake"]
    gaps = model.gaps
    if gaps:
        reasons = sorted({d.state for d in gaps})
        for state in reasons:
            days = describe_dates([d.date for d in gaps if d.state == state])
            lines.append(f"gaps ({gap_reason(state)}): {days}")
    lines.append("")
    if part.title_query is not None:
        return _titles_table(part, lines)
    if model.latest is None:
        lines.append("no day of the window is in the lake")
        return "\n".join(lines) + "\n"
    return "\n".join(lines + trend_table(model)) + "\n"


def trend_table(model: FeedTrend) -> list[str]:
    """The latest top N with trajectory, streak and best rank, then the week's lists, as plain text lines.

    A person feed's table names its rows ``name`` and adds each person's department (``known for``).
    """
    from pipeline.trends import WEEK, change_label, sparkline

    n, days, people = model.top_n, len(model.dates), model.feed.is_people
    lines = [f"top {n} on {model.latest}:"]
    width = max([_columns(_clip(t.label)) for t in model.top] + [5])
    known = max([_columns(_clip(t.department, 20)) for t in model.top] + [len("known for")])

    def department(item: TitleTrend) -> str:
        return f"  {_pad(_clip(item.department, 20) or '-', known)}" if people else ""

    known_head = f"  {'known for':<{known}}" if people else ""
    lines.append(
        f"  {'rank':>4}  {'name' if people else 'title':<{width}}{known_head}  {f'{WEEK} days':<{WEEK}}  "
        f"{'week':>4}  {'streak':>6}  {f'in top {n}':>9}  {'best':>4}  {'best on':<10}  {f'over {days} days':>12}"
    )
    # no day a week before (or only one day in the window): nothing to compare with, as the reports say
    week = change_label if model.baseline is not None else lambda change: "-"
    window = change_label if len(model.present) > 1 else lambda change: "-"
    for t in model.top:
        lines.append(
            f"  {t.rank or '':>4}  {_pad(_clip(t.label), width)}{department(t)}  {sparkline(model, t):<{WEEK}}  "
            f"{week(t.week_change):>4}  {t.streak:>6}  {t.days_in_top:>9}  {t.best_rank or '':>4}  "
            f"{_blank(t.best_date):<10}  {window(t.change):>12}"
        )
    first = model.present[0] if model.present else model.dates[0]
    lines += [
        "",
        f"{WEEK} days: a taller bar is a better rank; · below the top {n}; ? a gap",
        f"over {days} days: places gained since {first}, the first day of the window in the lake",
        "",
    ]
    baseline = model.baseline
    if baseline is None:
        lines.append("this week: no day in the lake a week before the latest to compare with")
        return lines
    lines.append(f"this week: {model.latest} compared with {baseline}")
    groups = (
        (f"holding the top {n}", [(t, f"{t.streak} days") for t in model.holding]),
        ("rising fastest", [(t, change_label(t.week_change)) for t in model.rising]),
        (f"new in the top {n}", [(t, f"now {t.rank}") for t in model.new_this_week]),
        (f"fell out of the top {n}", [(t, _fell(model, t)) for t in model.fell_out_this_week]),
    )
    for heading, items in groups:
        shown = "; ".join(f"{_clip(t.label)} ({detail})" for t, detail in items) or "none"
        lines.append(f"  {heading}: {shown}")
    return lines


def _fell(model: FeedTrend, item: TitleTrend) -> str:
    was = item.ranks[model.dates.index(model.baseline)] if model.baseline else None
    now = "out of the list" if item.rank is None else f"now {item.rank}"
    return f"was {was}, {now}"


def _titles_table(part: FeedHistory, lines: list[str]) -> str:
    model = part.trend
    if not part.titles:
        nobody = "no one" if model.feed.is_people else "no title"
        lines.append(f"{nobody} matching {part.title_query!r} in those days")
    for item in part.titles:
        which = f"{item.media_type} id" if model.feed.media_type == "all" else "id"
        known = f", {_printable(item.department)}" if item.department else ""
        lines += [
            f"{_printable(item.title)} ({which} {item.id}{known})",
            f"  {'date':<10}  {'rank':>4}  {'popularity':>10}",
        ]
        for day, rank, pop in zip(model.days, item.ranks, item.popularity, strict=True):
            if not day.present:
                lines.append(f"  {day.date.isoformat():<10}  {'':>4}  {'':>10}  (day missing)")
            elif rank is None:
                lines.append(f"  {day.date.isoformat():<10}  {'-':>4}  {'-':>10}  (not in the list)")
            else:
                shown = "-" if pop is None else f"{pop:,.1f}"
                lines.append(f"  {day.date.isoformat():<10}  {rank:>4}  {shown:>10}")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _blank(value: Any) -> str:
    if value is None:
        return ""
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def _cell(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_START) else text


def _columns(text: str) -> int:
    """Terminal columns ``text`` takes: East Asian wide and fullwidth characters take two (names in CJK do)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, columns: int) -> str:
    """``text`` padded with spaces to ``columns`` terminal columns, so the table's columns line up."""
    return text + " " * max(0, columns - _columns(text))


def _clip(text: str, width: int = 40) -> str:
    shown = _printable(text)
    return shown if len(shown) <= width else shown[: width - 1] + "…"


def _printable(text: str) -> str:
    # Titles come from TMDB: a newline would break the table, an escape sequence would drive the terminal.
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
