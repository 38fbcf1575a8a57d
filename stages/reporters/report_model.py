"""What every reporter shows, computed once: today's top N, movement since the previous day, the trend, safe text.

The reporters (``markdown``, ``github-summary``, ``json``, ``html``) differ only in layout.
Everything they share lives here: reading today and the trend window through the
loader's verified read-back (``pipeline.trends``, so local and S3 lakes behave the same),
the movement since the previous *available* day, escaping of untrusted TMDB text, number
formatting and Markdown tables. A report is a list of feed sections; a run of one feed
has one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from pipeline import trends
from pipeline.errors import PipelineError, ReportError
from pipeline.options import StageOptions
from pipeline.redact import redact
from pipeline.stage import Feed, FeedResult, LakeReader, RunLake, RunResult

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
    """Options every report shares: how many rows, how far back to look, how many climbers, how many trend days."""

    top: int = Field(default=10, ge=1, le=100)
    lookback_days: int = Field(default=7, ge=1, le=366)
    climbers: int = Field(default=5, ge=1, le=100)
    trend_days: int = Field(default=trends.DEFAULT_DAYS, ge=trends.WEEK, le=trends.MAX_DAYS)


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
    department: str = ""
    """A person's ``known_for_department`` (people feeds; empty for titles)."""

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
class FeedSection:
    """One feed of a run: its day's size, movement since the previous day and trend over the window."""

    feed: Feed
    day: dt.date
    total: int
    movement: Movement
    trend: trends.FeedTrend
    set_aside: int = 0
    """People of an ``all`` list this run set aside (``standardize``'s ``person_set_aside``): the lake stores
    that feed's movies and TV shows only (docs/fidelity.md). 0 for other feeds and for sections read from an
    earlier run."""


@dataclasses.dataclass(frozen=True)
class FailedSection:
    """A feed of the run that failed: nothing of it is read back, its section says why and what the lake kept."""

    feed: Feed
    error: str
    outcome: str | None = None


@dataclasses.dataclass(frozen=True)
class Report:
    """Everything a reporter renders for one run: one section per feed (a run of one feed has one).

    ``total`` and ``movement`` are the run's primary feed's (``result.feed``) when it committed, else the
    first committed feed's: what a one-feed report shows. ``failed`` holds the feeds that failed.
    """

    result: RunResult
    lake: str
    total: int
    top_n: int
    movement: Movement
    sections: tuple[FeedSection, ...] = ()
    failed: tuple[FailedSection, ...] = ()

    @property
    def run_time(self) -> str:
        """The run's start in UTC, the one line allowed to differ between reruns of a day."""
        return self.result.started_at.astimezone(dt.UTC).strftime(RUN_TIME_FORMAT)

    @property
    def primary(self) -> FeedSection:
        """The section ``total`` and ``movement`` come from."""
        return _primary(self.sections, self.result)

    @property
    def parts(self) -> tuple[FeedSection | FailedSection, ...]:
        """Every feed's section, committed or failed, in the config's order of feeds."""
        feeds = self.result.tracked or tuple(r.feed for r in self.result.feeds)
        order = {feed: n for n, feed in enumerate(feeds)}
        both: list[FeedSection | FailedSection] = [*self.sections, *self.failed]
        return tuple(sorted(both, key=lambda part: order.get(part.feed, len(order))))


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


SET_ASIDE = "person_set_aside"
"""``standardize``'s count of the people of an ``all`` list it set aside."""
_PERSON_COLUMNS = ("rank", "id", "name", "popularity", "profile_url", "media_type", "known_for_department")


def entries(frame: pd.DataFrame) -> list[Entry]:
    """The frame's rows as entries, best rank first, one per ``(media_type, id)`` (the best-ranked copy wins).

    People (the people schema: ``name``, no ``title``) become entries with their name as the
    title, their profile as the picture and their ``known_for_department``.
    """
    if frame.empty:
        return []
    rows = _rows(frame)
    return rows.entries(range(len(rows.keys)))


def movement_entries(frame: pd.DataFrame, before: Sequence[Entry], *, top: int) -> list[Entry]:
    """``entries(frame)`` cut to what ``movement`` reads against ``before``: the first ``top``, every title
    ranked better than in ``before`` (a climber), and every title of ``before``'s first ``top`` (to say
    where it went). ``movement`` gives the same answer from these as from all the entries; a day of
    10,000 rows builds a few dozen entries instead of 10,000 (0.1 s of the report's time after the commit).
    """
    if frame.empty:
        return []
    rows = _rows(frame)
    previous_rank = {e.key: e.rank for e in before}
    watched = {e.key for e in before[:top]}
    wanted = [
        i
        for i, (key, rank) in enumerate(zip(rows.keys, rows.ranks, strict=True))
        if i < top or key in watched or previous_rank.get(key, rank) > rank
    ]
    return rows.entries(wanted)


@dataclasses.dataclass(frozen=True)
class _Rows:
    """A day's titles, best rank first, one per ``(media_type, id)``: their keys and ranks, and their values
    column by column (not ``to_dict("records")``: a dict per row of a 10,000-row day cost ~6 MB of peak RSS)."""

    keys: list[tuple[str, int]]
    ranks: list[int]
    values: list[tuple[Any, ...]]
    people: bool

    def entries(self, positions: Iterable[int]) -> list[Entry]:
        build = _person_entry if self.people else _entry
        return [build(*self.values[i]) for i in positions]


def _rows(frame: pd.DataFrame) -> _Rows:
    people = "title" not in frame.columns and "name" in frame.columns
    columns: dict[str, list[Any]]
    if people:
        present = [c for c in _PERSON_COLUMNS if c in frame.columns]
        ordered = trends.best_ranks(frame, present)
        columns = {c: ordered[c].tolist() if c in present else [None] * len(ordered) for c in _PERSON_COLUMNS}
        media_types = [_text(m) or "person" for m in columns["media_type"]]
        values = list(zip(*(columns[c] for c in _PERSON_COLUMNS), strict=True))
    else:
        ordered = trends.best_ranks(frame, _ENTRY_COLUMNS)
        columns = {c: ordered[c].tolist() for c in _ENTRY_COLUMNS}
        media_types = [_text(m) for m in columns["media_type"]]
        values = list(zip(*(columns[c] for c in _ENTRY_COLUMNS), strict=True))
    ids = [int(i) for i in columns["id"]]
    return _Rows(list(zip(media_types, ids, strict=True)), [int(r) for r in columns["rank"]], values, people)


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


def _person_entry(
    rank: Any, tmdb_id: Any, name: Any, score: Any, profile: Any, media_type: Any, department: Any
) -> Entry:
    return Entry(
        rank=int(rank),
        id=int(tmdb_id),
        title=_text(name),
        release_date="",
        genres="",
        popularity=_number(score),
        vote_average=math.nan,
        vote_count=0,
        poster_url=_text(profile),
        media_type=_text(media_type) or "person",
        department=_text(department),
    )


def distinct_titles(frame: pd.DataFrame) -> int:
    """How many titles (distinct ``(media_type, id)``) a day holds: ``len(entries(frame))`` without building them."""
    return 0 if frame.empty else len(frame.drop_duplicates(["media_type", "id"]))


def compare(today: pd.DataFrame, previous: tuple[dt.date, pd.DataFrame] | None, *, top: int, climbers: int) -> Movement:
    """Today's top ``top`` with movement against ``(date, frame)`` of an earlier day (``None``: first day)."""
    if previous is None:
        return movement(entries(today), None, [], top=top, climbers=climbers)
    return movement(entries(today), previous[0], entries(previous[1]), top=top, climbers=climbers)


def movement(
    now: Sequence[Entry], previous_date: dt.date | None, before: Sequence[Entry], *, top: int, climbers: int
) -> Movement:
    """Today's entries (best first) against the previous day's (best first; ``previous_date`` ``None``: first day).

    Climbers are taken from the whole list, biggest climb first; equal climbs are ordered
    by today's rank so the report is stable.
    """
    if previous_date is None:
        return Movement(previous_date=None, top=tuple(now[:top]))
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


def listed_entries(trend: trends.FeedTrend, day: dt.date) -> list[Entry]:
    """``day``'s list as the trend model holds it (rank, identity, name), best first."""
    listed = trend.listed_on(day)
    return [Entry(rank, key[1], title, "", "", math.nan, math.nan, 0, "", key[0]) for key, rank, title in listed]


async def build_report(result: RunResult, lake: RunLake, options: ReportOptions, *, stage: str) -> Report:
    """Read today and the trend window back from the lake; compare today with the previous day the lake has.

    The model is built once per run for every reporter that asks with the same options.
    """
    key = f"report_model:{options.top}:{options.lookback_days}:{options.climbers}:{options.trend_days}"
    return await lake.shared(key, lambda: _build_report(result, lake, options, stage=stage))


async def feed_section(
    lake: LakeReader, feed: Feed, day: dt.date, options: ReportOptions, *, stage: str
) -> FeedSection:
    """One feed's section: ``day`` must be in the lake; earlier days that are not are gaps."""
    today = await lake.read_day(day, feed)
    if today is None:
        raise ReportError(f"the lake has no data for {day}", stage=stage)
    days = max(options.trend_days, options.lookback_days + 1)
    trend = await trends.trend(lake, feed, day, days=days, top_n=options.top, known={day: today})
    previous = trend.previous(options.lookback_days) if trend.latest == day else None
    if previous is None:
        logger.info("no earlier day within %d days of %s: first-day report", options.lookback_days, day)
    before = listed_entries(trend, previous) if previous else []
    now = movement_entries(today, before, top=options.top)
    moved = movement(now, previous, before, top=options.top, climbers=options.climbers)
    return FeedSection(feed, day, distinct_titles(today), moved, trend)


def _with_set_aside(section: FeedSection, dropped: Mapping[str, int]) -> FeedSection:
    count = int(dropped.get(SET_ASIDE, 0))
    return dataclasses.replace(section, set_aside=count) if count else section


def set_aside_line(section: FeedSection) -> str:
    """One sentence, plain text for every report, on the people of an ``all`` list that were set aside (none: empty)."""
    n = section.set_aside
    if not n:
        return ""
    who = "1 person was" if n == 1 else f"{n:,} people were"
    return (
        f"{who} set aside from this list: the all feed keeps its movies and TV shows; "
        "track people with the person/day feed (docs/fidelity.md)."
    )


async def _committed_earlier(
    lake: LakeReader, feed: Feed, day: dt.date, options: ReportOptions, *, stage: str
) -> FeedSection | None:
    """The section of a tracked feed this run did not fetch, from the day an earlier run committed; else ``None``."""
    try:
        return await feed_section(lake, feed, day, options, stage=stage)
    except PipelineError as exc:  # not committed for the day (or unreadable): the report goes on without it
        logger.info("%s: not in the report (not run now, and %s)", feed.spec, redact(str(exc)))
        return None


def _primary(sections: Sequence[FeedSection], result: RunResult) -> FeedSection:
    """The section the report leads with: the first title feed in config order (``sections`` are in it), so a
    catch-up run of one feed leads with the same feed as the day's first run; else the run's feed, else the first."""
    titles = [section for section in sections if not section.feed.is_people]
    if titles and result.tracked:
        return titles[0]
    return next((section for section in sections if section.feed == result.feed), sections[0])


async def _build_report(result: RunResult, lake: LakeReader, options: ReportOptions, *, stage: str) -> Report:
    """One section per committed feed of the run (read concurrently), one failed section per failed feed, and
    one section per tracked feed the run left alone whose day the lake already holds (``RunResult.tracked``).

    A catch-up run that fetched the one feed that failed at noon still writes the whole day's report.
    """
    feeds = result.feeds or [FeedResult(result.feed, status="committed")]
    committed = [f.feed for f in feeds if f.ok]
    failed = tuple(FailedSection(f.feed, f.error or "failed", f.outcome) for f in feeds if not f.ok)
    if not committed:
        raise ReportError("no feed of the run was committed: there is nothing to report", stage=stage)
    ran = {f.feed for f in feeds}
    earlier = [feed for feed in result.tracked if feed not in ran]
    found = await asyncio.gather(
        *(feed_section(lake, feed, result.trend_date, options, stage=stage) for feed in committed),
        *(_committed_earlier(lake, feed, result.trend_date, options, stage=stage) for feed in earlier),
    )
    order = {feed: n for n, feed in enumerate(result.tracked)}
    dropped = {f.feed: f.dropped for f in result.feeds} or {result.feed: result.dropped}
    sections = sorted(
        (_with_set_aside(s, dropped.get(s.feed, {})) for s in found if s is not None),
        key=lambda s: order.get(s.feed, len(order)),
    )
    primary = _primary(sections, result)
    return Report(
        result=result,
        lake=safe_location(lake.describe()),
        total=primary.total,
        top_n=options.top,
        movement=primary.movement,
        sections=tuple(sections),
        failed=failed,
    )


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


def comparison_line(report: Report, section: FeedSection | None = None) -> str:
    """One sentence on what today is compared with (for ``section``'s feed, else the report's first)."""
    previous = (section or report).movement.previous_date
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


def top_table(report: Report, *, detailed: bool = True, section: FeedSection | None = None) -> list[str]:
    """Today's top N; ``detailed`` adds year, genres and rating; a ``section`` adds its trend columns.

    A section of people shows each person's name and department instead of a title's year, genres and rating.
    """
    compared = (section or report).movement.compared
    if section is not None and section.feed.is_people and not detailed:
        return table(
            ("Rank", "Name", "Known for", "Popularity", "Movement"),
            "rllrc",
            (
                (
                    str(e.rank),
                    title_cell(e),
                    escape_markdown(e.department) or NO_VALUE,
                    popularity(e.popularity),
                    movement_label(e, compared),
                )
                for e in section.movement.top
            ),
        )
    if section is not None and section.feed.is_people:
        return table(
            ("Rank", "Name", "Known for", "Popularity", "Movement", f"{trends.WEEK} days", "Week", "Streak"),
            "rllrcllr",
            (
                (
                    str(e.rank),
                    section_title_cell(section, e),
                    escape_markdown(e.department) or NO_VALUE,
                    popularity(e.popularity),
                    movement_label(e, compared),
                    *trend_cells(section, e),
                )
                for e in section.movement.top
            ),
        )
    if section is not None and not detailed:
        return table(
            ("Rank", "Title", "Popularity", "Movement"),
            "rlrc",
            (
                (str(e.rank), title_cell(e), popularity(e.popularity), movement_label(e, compared))
                for e in section.movement.top
            ),
        )
    if section is not None:
        return table(
            (
                "Rank",
                "Title",
                "Year",
                "Genres",
                "Popularity",
                "Rating",
                "Movement",
                f"{trends.WEEK} days",
                "Week",
                "Streak",
            ),
            "rlllrlcllr",
            (
                (
                    str(e.rank),
                    section_title_cell(section, e),
                    year(e.release_date),
                    genres(e.genres),
                    popularity(e.popularity),
                    rating(e),
                    movement_label(e, compared),
                    *trend_cells(section, e),
                )
                for e in section.movement.top
            ),
        )
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


def movement_sections(report: Report, level: int = 3, section: FeedSection | None = None) -> list[str]:
    """The three movement sections as small tables (or the first-day sentence); a ``section`` labels namesakes."""
    movement, n, hashes = (section or report).movement, report.top_n, "#" * level

    def name(entry: Entry) -> str:
        return title_cell(entry) if section is None else section_title_cell(section, entry)

    title, one = name_header(section), noun(section)

    if not movement.compared:
        return [comparison_line(report, section), ""]
    lines = [comparison_line(report, section), "", f"{hashes} New in the top {n}", ""]
    if movement.new_in_top:
        lines += table(
            ("Rank", title, "Before"),
            "rlr",
            ((str(e.rank), name(e), previous_label(e.previous_rank)) for e in movement.new_in_top),
        )
    else:
        lines.append(f"No {one} is new in the top {n}.")
    lines += ["", f"{hashes} Biggest climbers", ""]
    if movement.climbers:
        lines += table(
            ("Rank", title, "Before", "Change"),
            "rlrc",
            (
                (str(e.rank), name(e), previous_label(e.previous_rank), movement_label(e, True))
                for e in movement.climbers
            ),
        )
    else:
        lines.append(f"No {one} climbed.")
    lines += ["", f"{hashes} Dropped out of the top {n}", ""]
    if movement.dropped:
        lines += table(
            ("Before", title, "Now"),
            "rlr",
            ((str(d.previous.rank), name(d.previous), previous_label(d.rank_now)) for d in movement.dropped),
        )
    else:
        lines.append(f"No {one} dropped out of the top {n}.")
    return [*lines, ""]


def compact_movement(report: Report, section: FeedSection | None = None) -> list[str]:
    """The three movement sections as one paragraph each, for the Actions summary (of ``section``'s feed)."""
    movement, n = (section or report).movement, report.top_n
    if not movement.compared:
        return [comparison_line(report, section), ""]

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
        comparison_line(report, section),
        "",
        f"**New in the top {n}:** {joined(new)}",
        "",
        f"**Biggest climbers:** {joined(up)}",
        "",
        f"**Dropped out of the top {n}:** {joined(out)}",
        "",
    ]


def trend_cells(section: FeedSection, entry: Entry) -> tuple[str, str, str]:
    """A top-N row's ``7 days`` trajectory, its places gained over the week, and its streak."""
    try:
        item = section.trend.title(entry.key)
    except KeyError:  # not in the model: today's day was not one of its days (another feed's rows)
        return NO_VALUE, NO_VALUE, NO_VALUE
    week = NO_VALUE if section.trend.baseline is None else trends.change_label(item.week_change)
    return trends.sparkline(section.trend, item), week, streak_label(item.streak)


def section_title_cell(section: FeedSection, entry: Entry) -> str:
    """The escaped title, told apart from a namesake of the window by year or id; ``—`` when TMDB sent none."""
    try:
        return label_cell(section.trend.title(entry.key)) if entry.title else NO_VALUE
    except KeyError:
        return title_cell(entry)


def streak_label(days: int) -> str:
    """``5 days``, ``1 day``, or ``—``."""
    return NO_VALUE if days == 0 else f"{days} day" if days == 1 else f"{days} days"


def label_cell(item: trends.TitleTrend) -> str:
    """The escaped label (the name, told apart from namesakes by year or id), or ``—``."""
    return escape_markdown(item.label) or NO_VALUE


def trend_legend(section: FeedSection) -> str:
    """The sentence under the top table that says how to read its trend columns."""
    n, model = section.trend.top_n, section.trend
    week = f"places gained since {model.baseline}" if model.baseline else "no day a week before to compare with"
    return (
        f"_{trends.WEEK} days: one mark per day, oldest first; a taller bar is a better rank in the top {n}, "
        f"{trends.OUT_OF_TOP} below the top {n}, {trends.GAP_MARK} a day missing from the lake. "
        f"Week: {week}. Streak: days running in the top {n} (a missing day neither counts nor breaks it)._"
    )


def this_week_sections(section: FeedSection, level: int = 3) -> list[str]:
    """The week's four lists as small tables, or a sentence when there is no day a week before."""
    model, n, hashes = section.trend, section.trend.top_n, "#" * level
    if model.latest is None or model.baseline is None:
        return ["There is no day in the lake a week or more before today: the week's lists start then.", ""]
    base, title, one = model.baseline, name_header(section), noun(section)
    gap = (section.day - base).days
    lines = [f"Today compared with {base.isoformat()}, {gap} days before (the latest day in the lake a week back).", ""]

    def was(item: trends.TitleTrend) -> str:
        return previous_label(item.ranks[model.dates.index(base)])

    def now(item: trends.TitleTrend) -> str:
        return previous_label(item.rank)

    lines += [f"{hashes} Holding the top {n}", ""]
    if model.holding:
        lines += table(
            ("Rank", title, "Streak", f"Days in the top {n}"),
            "rlrr",
            (
                (str(t.rank), label_cell(t), streak_label(t.streak), f"{t.days_in_top} of {len(model.present)}")
                for t in model.holding
            ),
        )
    else:
        lines.append(f"No {one} of today's top {n} was in it the day before too.")
    lines += [
        "",
        f"{hashes} Rising fastest",
        "",
        f"{noun(section, plural=True).capitalize()} of today's top {n} by places gained since {base.isoformat()}; "
        f"moves deeper in the list are left out as noise, and a {one} that was not in the list then is new, "
        "not rising.",
        "",
    ]
    if model.rising:
        lines += table(
            ("Rank", title, "Was", "Gain"),
            "rlrc",
            ((str(t.rank), label_cell(t), was(t), trends.change_label(t.week_change)) for t in model.rising),
        )
    else:
        lines.append(f"No {one} of today's top {n} gained places.")
    lines += ["", f"{hashes} New in the top {n} this week", ""]
    if model.new_this_week:
        lines += table(
            ("Rank", title, f"On {base.isoformat()}"),
            "rlr",
            ((str(t.rank), label_cell(t), was(t)) for t in model.new_this_week),
        )
    else:
        lines.append(f"No {one} is new in the top {n} this week.")
    lines += ["", f"{hashes} Fell out of the top {n} this week", ""]
    if model.fell_out_this_week:
        lines += table(
            (f"On {base.isoformat()}", title, "Now"),
            "rlr",
            ((was(t), label_cell(t), now(t)) for t in model.fell_out_this_week),
        )
    else:
        lines.append(f"No {one} fell out of the top {n} this week.")
    return [*lines, ""]


def name_header(section: FeedSection | None) -> str:
    """The column that names a row: ``Name`` for people, ``Title`` for titles."""
    return "Name" if section is not None and section.feed.is_people else "Title"


def noun(section: FeedSection | None, *, plural: bool = False) -> str:
    """What a row is, in a sentence: ``person``/``people`` in a people section, else ``title``/``titles``."""
    if section is not None and section.feed.is_people:
        return "people" if plural else "person"
    return "titles" if plural else "title"


def feed_heading(feed: Feed) -> str:
    """A feed's section heading: its label with a capital first letter (``Trending TV shows, today``)."""
    return feed.label[:1].upper() + feed.label[1:]


def failed_lines(failed: FailedSection) -> list[str]:
    """A failed feed's section body: the failure and what the lake kept for it, escaped."""
    lines = [f"**Failed:** {escape_markdown(failed.error) or NO_VALUE}", ""]
    if failed.outcome:
        lines += [f"**The lake:** {escape_markdown(failed.outcome)}", ""]
    return lines


def gaps_line(section: FeedSection) -> list[str]:
    """One sentence naming the days of the window that are gaps (none: nothing)."""
    holes = section.trend.holes
    if not holes:
        return []
    return [f"Missing from the lake, shown as gaps: {trends.describe_dates([d.date for d in holes])}.", ""]


# -- helpers -----------------------------------------------------------------------------------
def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


@functools.cache
def _pandas_na() -> Any:
    """``pd.NA``, imported on first use (for `check`'s sake), then looked up once per value, not imported."""
    import pandas as pd  # loaded by now: the values come from a frame

    return pd.NA


def _text(value: Any) -> str:
    if value is None or value is _pandas_na() or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _count(value: Any) -> int:
    number = _number(value)
    return 0 if math.isnan(number) else int(number)


def _number(value: Any) -> float:
    if value is None or value is _pandas_na():
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
