"""What every reporter shows, computed once: today's top N, movement since the previous day, safe text.

The three reporters (``markdown``, ``github-summary``, ``json``) differ only in layout.
Everything they share lives here: reading today and the previous *available* day
through the loader's read-back (so local and S3 lakes behave the same), the movement
computation, escaping of untrusted TMDB text, number formatting, Markdown tables and
the mermaid chart.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from pipeline.errors import ReportError
from pipeline.options import StageOptions
from pipeline.redact import redact
from pipeline.stage import LakeReader, RunLake, RunResult

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

ATTRIBUTION = "This product uses the TMDB API but is not endorsed or certified by TMDB."
RUN_TIME_FORMAT = "%Y-%m-%d %H:%M:%S UTC"
NO_VALUE = "—"

MovementKind = Literal["new", "up", "down", "same"]

_SPECIAL = re.compile(r"([\\|*_`\[\]<>#!~&])")
# Newlines, other C0/C1 controls and bidi overrides: all would let a title break a row or disguise itself.
_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]+")
# GitHub autolinks ``www.`` hosts and ``scheme://`` URLs even without Markdown link syntax.
_WWW = re.compile(r"(?i)\bwww\.")
_USERINFO = re.compile(r"://[^/@\s]*@")
_YEAR = re.compile(r"^(\d{4})-\d{2}-\d{2}")


# -- options shared by the reporters ----------------------------------------------------------
class ReportOptions(StageOptions):
    """Options every report shares: how many rows, how far back to look, how many climbers."""

    top: int = Field(default=10, ge=1, le=100)
    lookback_days: int = Field(default=7, ge=1, le=366)
    climbers: int = Field(default=5, ge=1, le=100)


# -- the model ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Entry:
    """One title of a day's list, with its rank on the previous available day (if any)."""

    rank: int
    id: int
    title: str
    release_date: str
    genres: str
    popularity: float
    vote_average: float
    vote_count: int
    poster_url: str
    media_type: str = "movie"
    previous_rank: int | None = None

    @property
    def key(self) -> tuple[str, int]:
        """The title's identity: TMDB's movie and TV ids are separate id spaces."""
        return (self.media_type, self.id)

    @property
    def change(self) -> int | None:
        """Places climbed since the previous day (negative: fell); ``None`` when not ranked then."""
        return None if self.previous_rank is None else self.previous_rank - self.rank

    def movement(self, compared: bool) -> MovementKind | None:
        """``new``, ``up``, ``down`` or ``same``; ``None`` when there was no day to compare with."""
        if not compared:
            return None
        change = self.change
        if change is None:
            return "new"
        return "up" if change > 0 else "down" if change < 0 else "same"


@dataclasses.dataclass(frozen=True)
class Dropped:
    """A title of the previous top N that is not in today's top N."""

    previous: Entry
    rank_now: int | None


@dataclasses.dataclass(frozen=True)
class Movement:
    """Today's top N compared with the previous available day."""

    previous_date: dt.date | None
    top: tuple[Entry, ...]
    new_in_top: tuple[Entry, ...] = ()
    climbers: tuple[Entry, ...] = ()
    dropped: tuple[Dropped, ...] = ()

    @property
    def compared(self) -> bool:
        """Whether an earlier day was found; ``False`` on the first day in the lake."""
        return self.previous_date is not None


@dataclasses.dataclass(frozen=True)
class Report:
    """Everything a reporter renders for one run."""

    result: RunResult
    lake: str
    total: int
    top_n: int
    movement: Movement

    @property
    def run_time(self) -> str:
        """The run's start in UTC, the one line allowed to differ between reruns of a day."""
        return self.result.started_at.astimezone(dt.UTC).strftime(RUN_TIME_FORMAT)


_ENTRY_COLUMNS = (
    "rank",
    "id",
    "title",
    "release_date",
    "genres",
    "popularity",
    "vote_average",
    "vote_count",
    "poster_url",
    "media_type",
)


def entries(frame: pd.DataFrame) -> list[Entry]:
    """The frame's rows as entries, best rank first, one per ``(media_type, id)`` (the best-ranked copy wins)."""
    if frame.empty:
        return []
    ordered = frame.loc[:, list(_ENTRY_COLUMNS)].sort_values(["rank", "id"], kind="stable")
    ordered = ordered.drop_duplicates(["media_type", "id"], keep="first")
    # Column by column, not to_dict("records"): a dict per row of a 10,000-row day cost ~6 MB of peak RSS.
    columns = zip(*(ordered[name].tolist() for name in _ENTRY_COLUMNS), strict=True)
    return [_entry(*values) for values in columns]


def _entry(
    rank: Any,
    tmdb_id: Any,
    title: Any,
    release_date: Any,
    genres: Any,
    popularity: Any,
    vote_average: Any,
    vote_count: Any,
    poster_url: Any,
    media_type: Any,
) -> Entry:
    return Entry(
        rank=int(rank),
        id=int(tmdb_id),
        title=_text(title),
        release_date=_text(release_date),
        genres=_text(genres),
        popularity=_number(popularity),
        vote_average=_number(vote_average),
        vote_count=_count(vote_count),
        poster_url=_text(poster_url),
        media_type=_text(media_type),
    )


def distinct_titles(frame: pd.DataFrame) -> int:
    """How many titles (distinct ``(media_type, id)``) a day holds: ``len(entries(frame))`` without building them."""
    return 0 if frame.empty else len(frame.drop_duplicates(["media_type", "id"]))


def compare(today: pd.DataFrame, previous: tuple[dt.date, pd.DataFrame] | None, *, top: int, climbers: int) -> Movement:
    """Today's top ``top`` with movement against ``(date, frame)`` of an earlier day (``None``: first day).

    Climbers are taken from the whole list, biggest climb first; equal climbs are ordered
    by today's rank so the report is stable.
    """
    now = entries(today)
    if previous is None:
        return Movement(previous_date=None, top=tuple(now[:top]))
    previous_date, before_frame = previous
    before = entries(before_frame)
    previous_rank = {e.key: e.rank for e in before}
    now = [dataclasses.replace(e, previous_rank=previous_rank.get(e.key)) for e in now]
    top_now = now[:top]
    top_now_keys = {e.key for e in top_now}
    top_before_keys = {e.key for e in before[:top]}
    rank_now = {e.key: e.rank for e in now}
    climbing = sorted((e for e in now if (e.change or 0) > 0), key=lambda e: (-(e.change or 0), e.rank, e.key))
    return Movement(
        previous_date=previous_date,
        top=tuple(top_now),
        new_in_top=tuple(e for e in top_now if e.key not in top_before_keys),
        climbers=tuple(climbing[:climbers]),
        dropped=tuple(Dropped(e, rank_now.get(e.key)) for e in before[:top] if e.key not in top_now_keys),
    )


async def previous_day(lake: LakeReader, result: RunResult, lookback_days: int) -> tuple[dt.date, pd.DataFrame] | None:
    """The latest non-empty day before the run's date, looking back at most ``lookback_days``."""
    for back in range(1, lookback_days + 1):
        day = result.trend_date - dt.timedelta(days=back)
        frame = await lake.read_day(day, result.feed)
        if frame is None:
            continue
        if frame.empty:
            # An empty day says nothing about movement; comparing with it would call everything new.
            logger.debug("skipping %s as the previous day: it has no rows", day)
            continue
        return day, frame
    logger.info("no earlier day within %d days of %s: first-day report", lookback_days, result.trend_date)
    return None


async def build_report(result: RunResult, lake: RunLake, options: ReportOptions, *, stage: str) -> Report:
    """Read today and the previous available day back from the lake and compare them.

    The model is built once per run for every reporter that asks with the same ``top``,
    ``lookback_days`` and ``climbers``.
    """
    key = f"report_model:{options.top}:{options.lookback_days}:{options.climbers}"
    return await lake.shared(key, lambda: _build_report(result, lake, options, stage=stage))


async def _build_report(result: RunResult, lake: LakeReader, options: ReportOptions, *, stage: str) -> Report:
    today = await lake.read_day(result.trend_date, result.feed)
    if today is None:
        raise ReportError(f"the lake has no data for {result.trend_date}", stage=stage)
    previous = await previous_day(lake, result, options.lookback_days)
    movement = compare(today, previous, top=options.top, climbers=options.climbers)
    total = distinct_titles(today)
    return Report(result=result, lake=safe_location(lake.describe()), total=total, top_n=options.top, movement=movement)


# -- text: escaping and formatting -------------------------------------------------------------
def escape_markdown(text: Any) -> str:
    """Make untrusted text inert inside Markdown (table cells included).

    Backslash-escapes Markdown and HTML syntax, turns newlines and control characters into
    spaces, and breaks ``@mentions``, ``scheme://`` URLs and ``www.`` hosts with a zero-width
    space so nothing from TMDB becomes live.
    """
    value = _text(text)
    value = _BREAKS.sub(" ", value)
    value = _SPECIAL.sub(r"\\\1", value)
    value = value.replace("@", "@\u200b").replace("://", ":\u200b//")
    value = _WWW.sub(lambda m: m.group(0)[:3] + "\u200b.", value)
    return value.strip()


def code_span(text: str) -> str:
    """``text`` as an inline code span, whatever backticks it contains."""
    text = _BREAKS.sub(" ", text)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def safe_location(location: str) -> str:
    """A lake location with any ``user:password@`` and known secrets removed."""
    return redact(_USERINFO.sub("://", location))


def year(release_date: str) -> str:
    """The year of a ``YYYY-MM-DD`` date, or ``—``."""
    match = _YEAR.match(release_date)
    return match.group(1) if match else NO_VALUE


def rating(entry: Entry) -> str:
    """``7.4 (1,234 votes)``, or ``—`` when nobody voted."""
    if entry.vote_count <= 0 or math.isnan(entry.vote_average):
        return NO_VALUE
    votes = "vote" if entry.vote_count == 1 else "votes"
    return f"{entry.vote_average:.1f} ({entry.vote_count:,} {votes})"


def popularity(value: float) -> str:
    """Popularity with thousands separators and one decimal."""
    return NO_VALUE if math.isnan(value) else f"{value:,.1f}"


def genres(joined: str) -> str:
    """``Action|Drama`` as escaped ``Action, Drama``, or ``—``."""
    names = [escape_markdown(name) for name in joined.split("|") if name.strip()]
    return ", ".join(names) or NO_VALUE


def movement_label(entry: Entry, compared: bool) -> str:
    """``▲3``, ``▼2``, ``=``, ``new``, or ``—`` when there is nothing to compare with."""
    kind = entry.movement(compared)
    change = entry.change or 0
    return {
        None: NO_VALUE,
        "new": "new",
        "same": "=",
        "up": f"▲{change}",
        "down": f"▼{-change}",
    }[kind]


def previous_label(rank: int | None) -> str:
    """Where a title was: its rank, or ``not in the list``."""
    return "not in the list" if rank is None else str(rank)


def title_cell(entry: Entry) -> str:
    """The escaped title, or ``—`` when TMDB sent none."""
    return escape_markdown(entry.title) or NO_VALUE


def comparison_line(report: Report) -> str:
    """One sentence on what today is compared with."""
    previous = report.movement.previous_date
    if previous is None:
        return "This is the first day in the lake: there is no earlier day to compare with."
    gap = (report.result.trend_date - previous).days
    which = "the day before" if gap == 1 else f"the latest earlier day in the lake, {gap} days before"
    return f"Compared with {previous.isoformat()}, {which}."


# -- Markdown building blocks ------------------------------------------------------------------
def table(header: Sequence[str], align: str, rows: Iterable[Sequence[str]]) -> list[str]:
    """A GFM table; ``align`` has one letter per column: ``l``, ``r`` or ``c``. Cells must be escaped."""
    if len(align) != len(header):
        raise ValueError("one alignment letter per column")
    rule = {"l": "---", "r": "---:", "c": ":---:"}
    lines = [_row(header), _row([rule[a] for a in align])]
    for cells in rows:
        if len(cells) != len(header):
            raise ValueError(f"row has {len(cells)} cells, the header {len(header)}")
        lines.append(_row(cells))
    return lines


def top_table(report: Report, *, detailed: bool = True) -> list[str]:
    """Today's top N; ``detailed`` adds year, genres and rating."""
    compared = report.movement.compared
    if detailed:
        return table(
            ("Rank", "Title", "Year", "Genres", "Popularity", "Rating", "Movement"),
            "rlllrlc",
            (
                (
                    str(e.rank),
                    title_cell(e),
                    year(e.release_date),
                    genres(e.genres),
                    popularity(e.popularity),
                    rating(e),
                    movement_label(e, compared),
                )
                for e in report.movement.top
            ),
        )
    return table(
        ("Rank", "Title", "Popularity", "Movement"),
        "rlrc",
        (
            (str(e.rank), title_cell(e), popularity(e.popularity), movement_label(e, compared))
            for e in report.movement.top
        ),
    )


def movement_sections(report: Report, level: int = 3) -> list[str]:
    """The three movement sections as small tables (or the first-day sentence)."""
    movement, n, hashes = report.movement, report.top_n, "#" * level
    if not movement.compared:
        return [comparison_line(report), ""]
    lines = [comparison_line(report), "", f"{hashes} New in the top {n}", ""]
    if movement.new_in_top:
        lines += table(
            ("Rank", "Title", "Before"),
            "rlr",
            ((str(e.rank), title_cell(e), previous_label(e.previous_rank)) for e in movement.new_in_top),
        )
    else:
        lines.append(f"No title is new in the top {n}.")
    lines += ["", f"{hashes} Biggest climbers", ""]
    if movement.climbers:
        lines += table(
            ("Rank", "Title", "Before", "Change"),
            "rlrc",
            (
                (str(e.rank), title_cell(e), previous_label(e.previous_rank), movement_label(e, True))
                for e in movement.climbers
            ),
        )
    else:
        lines.append("No title climbed.")
    lines += ["", f"{hashes} Dropped out of the top {n}", ""]
    if movement.dropped:
        lines += table(
            ("Before", "Title", "Now"),
            "rlr",
            ((str(d.previous.rank), title_cell(d.previous), previous_label(d.rank_now)) for d in movement.dropped),
        )
    else:
        lines.append(f"No title dropped out of the top {n}.")
    return [*lines, ""]


def compact_movement(report: Report) -> list[str]:
    """The three movement sections as one paragraph each, for the Actions summary."""
    movement, n = report.movement, report.top_n
    if not movement.compared:
        return [comparison_line(report), ""]

    def joined(items: list[str]) -> str:
        return " · ".join(items) if items else "none"

    def came_from(rank: int | None) -> str:
        return "new to the list" if rank is None else f"up from {rank}"

    def went_to(rank: int | None) -> str:
        return "left the list" if rank is None else f"now {rank}"

    new = [f"{title_cell(e)} ({came_from(e.previous_rank)}, now {e.rank})" for e in movement.new_in_top]
    up = [f"{title_cell(e)} {movement_label(e, True)} (now {e.rank})" for e in movement.climbers]
    out = [f"{title_cell(d.previous)} (was {d.previous.rank}, {went_to(d.rank_now)})" for d in movement.dropped]
    return [
        comparison_line(report),
        "",
        f"**New in the top {n}:** {joined(new)}",
        "",
        f"**Biggest climbers:** {joined(up)}",
        "",
        f"**Dropped out of the top {n}:** {joined(out)}",
        "",
    ]


def chart_label(entry: Entry, width: int = 18) -> str:
    """A short chart label that cannot break mermaid: rank plus the title's letters, digits and ``.-+``."""
    kept = "".join(ch if ch.isalnum() or ch in ".-+" else " " for ch in entry.title)
    short = " ".join(kept.split())
    if len(short) > width:
        short = short[: width - 1].rstrip() + "…"
    return f"{entry.rank}. {short}" if short else f"{entry.rank}."


def mermaid_chart(report: Report, bars: int = 10) -> list[str]:
    """A fenced ``xychart-beta`` block: popularity of today's top ``bars`` titles."""
    shown = report.movement.top[:bars]
    if not shown:
        return []
    labels = ", ".join(f'"{chart_label(e)}"' for e in shown)
    values = ", ".join(f"{0.0 if math.isnan(e.popularity) else e.popularity:.1f}" for e in shown)
    day = report.result.trend_date.isoformat()
    return [
        "```mermaid",
        "xychart-beta",
        f'    title "Popularity of the top {len(shown)} on {day}"',
        f"    x-axis [{labels}]",
        '    y-axis "Popularity"',
        f"    bar [{values}]",
        "```",
    ]


# -- helpers -----------------------------------------------------------------------------------
def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _text(value: Any) -> str:
    import pandas as pd  # loaded by now (the values come from a frame); here for `check`'s sake

    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _count(value: Any) -> int:
    number = _number(value)
    return 0 if math.isnan(number) else int(number)


def _number(value: Any) -> float:
    import pandas as pd  # see _text

    if value is None or value is pd.NA:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
