"""One report, a section per feed: a run of movie, TV and people lists against the local TMDB stand-in
writes one section per feed in the Markdown report, the JSON report, the job summary and the page; a
feed that failed shows as failed and the others are complete."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.datalake import schema
from pipeline.stage import Feed, FeedResult, RunLake, RunResult
from stages.reporters import chart, github_summary, html, json_report, markdown, notify
from stages.reporters import report_model as rm
from tests.support.fixtures_tmdb import StandinFactory
from tests.support.lake import people, rows
from tests.support.report_schema import validate
from tests.support.report_support import tables
from tests.support.tmdb_standin import TmdbStandin

TOKEN = "standin-token-reportfeeds1"
FEEDS = ["movie/day", "tv/day", "person/day"]
# A live list can only be labelled today or yesterday (UTC): the two days of a run and its rerun.
DAY2 = dt.datetime.now(dt.UTC).date()
DAY1 = DAY2 - dt.timedelta(days=1)
HEADINGS = ["## Trending movies, today", "## Trending TV shows, today", "## Trending people, today"]


def config(standin: TmdbStandin, root: Path, summary: Path) -> dict[str, Any]:
    options = {"base_url": standin.base_url, "backoff": 0.01, "max_backoff": 0.02, "rate_limit": 1000}
    return {
        "extractor": {"type": "tmdb-trending", "options": {**options, "feeds": FEEDS, "pages": 1}},
        "transformer": {"type": "standardize"},
        "loader": {"type": "local", "options": {"root": str(root / "lake")}},
        "reporter": [
            {"type": "markdown", "options": {"path": str(root / "LATEST_UPDATE.md"), "chart": False}},
            {"type": "json", "options": {"path": str(root / "report.json")}},
            {"type": "github-summary"},
            {"type": "html", "options": {"path": str(root / "index.html")}},
        ],
    }


def feed_sections(text: str, level: str = "## ") -> dict[str, str]:
    """The report's per-feed sections by heading, in order."""
    chunks = re.split(rf"^(?={re.escape(level)}\S)", text, flags=re.M)[1:]
    return {chunk.splitlines()[0]: chunk for chunk in chunks}


def top_names(result: RunResult, spec: str, column: str) -> list[str]:
    """The feed's top 10 as the lake holds them (the committed cleaned file), best rank first."""
    [feed] = [f for f in result.feeds if f.feed.spec == spec]
    table = schema.for_feed(feed.feed)
    frame = schema.read_csv_bytes(Path(feed.outputs["cleaned"]).read_bytes(), table)
    return frame.sort_values("rank")[column].head(10).tolist()


@pytest.fixture
def summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "summary.md"
    monkeypatch.setenv(github_summary.ENV_VAR, str(path))
    monkeypatch.setenv("TMDB_ACCESS_TOKEN", TOKEN)
    monkeypatch.setattr(chart, "available", lambda: False)  # the charts are not what is tested here; drawing is slow
    return path


async def test_a_three_feed_run_reports_three_complete_sections(
    tmdb_standin: StandinFactory, tmp_path: Path, summary: Path
) -> None:
    from pipeline.runner import run_pipeline

    standin = await tmdb_standin(token=TOKEN, total_pages=50, churn=1)
    await run_pipeline(config(standin, tmp_path, summary), trend_date=DAY1)
    summary.unlink()
    result = await run_pipeline(config(standin, tmp_path, summary), trend_date=DAY2)
    assert result.ok

    text = (tmp_path / "LATEST_UPDATE.md").read_text(encoding="utf-8")
    sections = feed_sections(text)
    assert list(sections) == HEADINGS
    assert "- **Feeds:** trending movies, today; trending TV shows, today; trending people, today" in text
    expected = {
        HEADINGS[0]: top_names(result, "movie/day", "title"),
        HEADINGS[1]: top_names(result, "tv/day", "title"),
        HEADINGS[2]: top_names(result, "person/day", "name"),
    }
    for heading, body in sections.items():
        top = tables(body)[0]
        assert [row[1] for row in top[1:]] == [rm.escape_markdown(name) for name in expected[heading]], heading
        assert f"Compared with {DAY1}, the day before." in body
        assert "### Movement since the previous day" in body and "### This week" in body
    people_top = tables(sections[HEADINGS[2]])[0]
    assert people_top[0][:3] == ["Rank", "Name", "Known for"]
    assert "| Rank | Name | Before |" in sections[HEADINGS[2]] and "| Rank | Name |" not in sections[HEADINGS[0]]
    departments = {row[2] for row in people_top[1:]}
    assert departments <= {"Acting", "Directing", "Writing", "Production", rm.NO_VALUE} and len(departments) > 1
    # every feed's own movement: each fetch pushes a new title onto the top of the stand-in's lists
    assert all("| new |" in body and "| ▼" in body for body in sections.values())

    document = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    validate(document, "top level")
    assert [(s["feed"]["media_type"], s["status"]) for s in document["sections"]] == [
        ("movie", "committed"),
        ("tv", "committed"),
        ("person", "committed"),
    ]
    movies, tv, people = document["sections"]
    assert [e["title"] for e in movies["top"]] == expected[HEADINGS[0]]
    assert [e["title"] for e in tv["top"]] == expected[HEADINGS[1]]
    assert [e["name"] for e in people["top"]] == expected[HEADINGS[2]]
    for number, person in enumerate(people["top"]):
        validate(person, "people", f"people.top[{number}]")
    assert {s["compared_with"] for s in document["sections"]} == {DAY1.isoformat()}
    assert [s["total"] for s in document["sections"]] == [20, 20, 20]
    assert document["top"] == movies["top"] and len(document["trends"]) == 3

    job = summary.read_text(encoding="utf-8")
    assert list(feed_sections(job, "#### ")) == [h.replace("## ", "#### ") for h in HEADINGS]
    for body in feed_sections(job, "#### ").values():
        assert len(tables(body)[0]) == 11 and "**New in the top 10:**" in body

    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert [m for m in re.findall(r'<section class="feed[^"]*" id="feed-(\w+)"', page)] == ["movies", "tv", "people"]
    assert f"<title>TMDB trending, by feed: {DAY2}</title>" in page and "60 titles and people" in page
    cells = PageCells("top-people")
    cells.feed(page)
    assert cells.rows[0][:3] == ["Rank", "Name", "Known for"]
    assert [row[1] for row in cells.rows[1:]] == expected[HEADINGS[2]]
    assert re.findall(r"<h[23]>[^<]*</h[23]>", page.split('id="feed-people"')[1])[:4] == [
        "<h2>Trending people, today</h2>",
        "<h3>Rank over 30 days</h3>",
        "<h3>Top 10 on " + DAY2.isoformat() + "</h3>",
        "<h3>This week</h3>",
    ]


SPECS = [("movie/day", "title", "movies"), ("tv/day", "title", "tv"), ("person/day", "name", "people")]


@pytest.mark.parametrize(("failing", "status"), [(1, 401), (0, 500)], ids=["tv-failed", "primary-failed"])
async def test_a_failed_feed_shows_as_failed_and_the_others_are_complete(
    tmdb_standin: StandinFactory, tmp_path: Path, summary: Path, failing: int, status: int
) -> None:
    from pipeline.runner import run_pipeline

    spec, _, slug = SPECS[failing]
    standin = await tmdb_standin(token=TOKEN, total_pages=50, list_errors={spec: status})
    result = await run_pipeline(config(standin, tmp_path, summary), trend_date=DAY1)
    assert [f.feed.spec for f in result.failed] == [spec]
    others = [n for n in range(3) if n != failing]

    text = (tmp_path / "LATEST_UPDATE.md").read_text(encoding="utf-8")
    sections = feed_sections(text)
    assert list(sections) == HEADINGS
    assert f"{HEADINGS[failing][3:].lower()} (failed)" in text.lower()
    failed = sections[HEADINGS[failing]]
    assert failed.startswith(f"{HEADINGS[failing]}\n\n**Failed:** ") and f"HTTP {status}" in failed
    assert "**The lake:** nothing was committed" in failed and "|" not in failed
    for n in others:
        body = sections[HEADINGS[n]]
        top = tables(body)[0]
        names = top_names(result, SPECS[n][0], SPECS[n][1])
        assert [row[1] for row in top[1:]] == [rm.escape_markdown(name) for name in names]
        assert "first day in the lake" in body and "### Rank over" in body

    document = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    validate(document, "top level")
    parts = document["sections"]
    assert [p["status"] for p in parts] == ["failed" if n == failing else "committed" for n in range(3)]
    assert f"HTTP {status}" in parts[failing]["error"] and parts[failing]["outcome"].startswith("nothing was committed")
    assert (parts[failing]["top"], parts[failing]["trend"], parts[failing]["total"]) == ([], None, None)
    assert [len(parts[n]["top"]) for n in others] == [10, 10]
    assert document["top"] == parts[others[0]]["top"]  # the top level is the first committed feed's

    job = feed_sections(summary.read_text(encoding="utf-8"), "#### ")
    assert f"HTTP {status}" in job[HEADINGS[failing].replace("## ", "#### ")]
    assert [len(tables(job[HEADINGS[n].replace("## ", "#### ")])[0]) for n in others] == [11, 11]
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert f'<section class="feed failed" id="feed-{slug}">' in page and f"HTTP {status}" in page


# -- untrusted names and errors, without the network ---------------------------------------------
class MemoryLake:
    """A lake reader over frames in memory, by ``(day, feed)``."""

    def __init__(self, frames: dict[tuple[dt.date, Feed], Any]) -> None:
        self.frames = frames

    def describe(self) -> str:
        return "memory://"

    async def read_day(self, day: dt.date, feed: Feed) -> Any:
        return self.frames.get((day, feed))


def _live(text: str) -> list[str]:
    """Characters of Markdown or HTML syntax in ``text`` that no backslash makes inert."""
    found = []
    for match in re.finditer(r"[<>\[\]!`]", text):
        before = text[: match.start()]
        if (len(before) - len(before.rstrip("\\"))) % 2 == 0:
            found.append(match.group())
    return found


HOSTILE = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=30)
PEOPLE, TV = Feed("person", "day"), Feed("tv", "day")
# Every tag the page's own template writes (no chart here): anything else would have come from TMDB's text.
PAGE_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "code", "section", "table",
             "thead", "tbody", "tr", "th", "td", "div", "footer", "script"}  # fmt: skip


class PageCells(HTMLParser):
    """Every start tag of a page, and the text of each cell of the table with id ``table``, row by row."""

    def __init__(self, table: str) -> None:
        super().__init__(convert_charrefs=True)
        self.table, self.tags, self.rows = table, set[str](), list[list[str]]()
        self.inside = self.cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag == "table":
            self.inside = ("id", self.table) in attrs
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.cell = True
            self.rows[-1].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self.cell = False
        elif tag == "table":
            self.inside = False

    def handle_data(self, data: str) -> None:
        if self.inside and self.cell:
            self.rows[-1][-1] += data


def people_report_of(frames: dict[tuple[dt.date, Feed], Any], feeds: list[FeedResult]) -> Any:
    """The report of a run of ``feeds`` on DAY1 whose lake holds ``frames``."""
    lake = RunLake(MemoryLake(frames), "memory://")
    result = RunResult("run", DAY1, PEOPLE, dt.datetime(2026, 11, 24, tzinfo=dt.UTC), lake="memory://", feeds=feeds)
    return rm.build_report(result, lake, rm.ReportOptions(), stage="test")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(HOSTILE, min_size=3, max_size=3), departments=st.lists(HOSTILE, min_size=2, max_size=2),
       error=HOSTILE)  # fmt: skip
async def test_hostile_names_and_errors_stay_inert_in_every_section(
    names: list[str], departments: list[str], error: str
) -> None:
    known = [*departments, ""]
    day = people(DAY1, [(101 + n, name, known[n]) for n, name in enumerate(names)])
    feeds = [FeedResult(PEOPLE, "committed"), FeedResult(TV, "failed", error=error, outcome=f"kept {error}")]
    report = await people_report_of({(DAY1, PEOPLE): day}, feeds)
    text = markdown.render(report, draw=False)
    job = github_summary.render(report)
    for rendered in (text, job):
        # the tables and the bold lines carry TMDB's text and the failure; the rest is ours
        untrusted = [line for line in rendered.splitlines() if line.startswith(("|", "**"))]
        assert _live("\n".join(untrusted)) == [] and "\n**Failed:** " in rendered
        for table in tables(rendered):
            assert {len(row) for row in table} == {len(table[0])}, table
    shown_known = [rm.escape_markdown(d) or rm.NO_VALUE for d in known]
    people_table = tables(feed_sections(text)["## Trending people, today"])[0]
    assert people_table[0][:3] == ["Rank", "Name", "Known for"]
    assert [row[2] for row in people_table[1:]] == shown_known
    job_table = tables(feed_sections(job, "#### ")["#### Trending people, today"])[0]
    assert job_table[0] == ["Rank", "Name", "Known for", "Popularity", "Movement"]
    assert [row[2] for row in job_table[1:]] == shown_known

    page = PageCells("top-people")
    page.feed(html.render(report, {}))
    assert page.tags <= PAGE_TAGS, page.tags - PAGE_TAGS
    top = report.sections[0].trend.top
    assert page.rows[0][:3] == ["Rank", "Name", "Known for"]
    assert [row[1:3] for row in page.rows[1:]] == [[t.label, t.department or rm.NO_VALUE] for t in top]
    assert [t.department for t in top] == known

    lines = notify.digest(report).splitlines()
    assert len(lines) == 7 and lines[:1] == ["3 people in trending people, today. Top 3:"]
    assert lines[5:] == ["", f"trending TV shows, today: failed ({notify._cut(' '.join(error.split()), 200)})"]
    assert all(len(line) <= 2 * notify.NAME_WIDTH + 20 for line in lines[1:4]), lines

    document = json_report.document(report)
    assert [p["name"] for p in document["sections"][0]["top"]] == names  # raw in JSON, as TMDB sent them
    assert [p["known_for_department"] for p in document["sections"][0]["trend"]["top"]] == [*departments, None]
    assert document["sections"][1]["error"] == error
    validate(document, "top level")


def keys(value: Any) -> set[str]:
    """Every key of every object inside a JSON value."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys(v)}
    return {k for v in value for k in keys(v)} if isinstance(value, list) else set()


async def test_a_people_section_speaks_of_people_never_of_titles() -> None:
    """A week of the same people: every list is empty, so every "no one moved" sentence shows; none says title."""
    week_ago = DAY1 - dt.timedelta(days=7)
    named = [(201 + n, f"Person {n}", "Acting") for n in range(12)]
    frames = {(day, PEOPLE): people(day, named) for day in (week_ago, DAY1)}
    report = await people_report_of(frames, [FeedResult(PEOPLE, "committed")])

    text = markdown.render(report, draw=False)
    for sentence in (
        "No person is new in the top 10.",
        "No person climbed.",
        "No person dropped out of the top 10.",
        "No person of today's top 10 gained places.",
        "No person is new in the top 10 this week.",
        "No person fell out of the top 10 this week.",
        "People of today's top 10 by places gained since",
    ):
        assert sentence in text, sentence
    assert "| Rank | Name | Streak | Days in the top 10 |" in text
    page = PageCells("top-people")
    page.feed(html.render(report, {}))
    summary = github_summary.render(report)
    digest = notify.digest(report)
    shown = "\n".join([text, summary, digest, *(cell for row in page.rows for cell in row)])
    assert "title" not in shown.casefold()
    assert page.rows[0][:3] == ["Rank", "Name", "Known for"] and {row[2] for row in page.rows[1:]} == {"Acting"}
    assert digest.splitlines() == [
        "12 people in trending people, today. Top 10:",
        *(f"{n + 1}. Person {n} (Acting)" for n in range(10)),
        f"Biggest climber: none (no one climbed since {week_ago})",
    ]
    document = json_report.document(report)
    validate(document, "top level")
    assert "title" not in keys(document["sections"]) and "year" not in keys(document["trends"])


async def test_people_listed_first_do_not_lead_the_report_when_a_title_feed_is_the_runs_primary() -> None:
    """``feeds: [person/day, tv/day]``: the run's primary feed is TV (the runner prefers a title feed), and so
    are the report's one-feed fields (total, movement, the JSON's top level); the sections keep the run's order."""
    named = [(301 + n, f"Person {n}", "Acting") for n in range(3)]
    frames = {(DAY1, PEOPLE): people(DAY1, named), (DAY1, TV): rows(DAY1, range(1, 8))}
    feeds = [FeedResult(PEOPLE, "committed"), FeedResult(TV, "committed")]
    started = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
    result = RunResult("run", DAY1, TV, started, lake="memory://", feeds=feeds)
    report = await rm.build_report(result, RunLake(MemoryLake(frames), "memory://"), rm.ReportOptions(), stage="test")
    assert [section.feed for section in report.sections] == [PEOPLE, TV]
    assert report.total == 7 and report.movement == report.sections[1].movement
    document = json_report.document(report)
    assert [s["feed"]["media_type"] for s in document["sections"]] == ["person", "tv"]
    assert document["total"] == 7 and document["top"] == document["sections"][1]["top"]
    assert [entry["title"] for entry in document["top"]] == [f"Title {i}" for i in range(1, 8)]
    validate(document, "top level")


async def test_the_people_an_all_list_set_aside_are_counted_in_every_report() -> None:
    """``all/day`` keeps its movies and TV shows; the report says how many people it set aside, in that feed's
    section only (issue: "say in the report how many were set aside")."""
    everything = Feed("all", "day")
    frames = {(DAY1, everything): rows(DAY1, range(1, 8)), (DAY1, TV): rows(DAY1, range(1, 5))}
    feeds = [FeedResult(everything, "committed", dropped={"person_set_aside": 4}), FeedResult(TV, "committed")]
    started = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
    result = RunResult("run", DAY1, everything, started, lake="memory://", feeds=feeds, tracked=(everything, TV))
    report = await rm.build_report(result, RunLake(MemoryLake(frames), "memory://"), rm.ReportOptions(), stage="test")

    line = "4 people were set aside from this list: the all feed keeps its movies and TV shows"
    sections = feed_sections(markdown.render(report, draw=False))
    assert [line in text for text in sections.values()] == [True, False]  # the all feed's section, not TV's
    assert line in github_summary.render(report)
    page = html.render(report)
    assert 'id="set-aside-all"' in page and line in page and 'id="set-aside-tv"' not in page
    document = json_report.document(report)
    assert [s["set_aside"] for s in document["sections"]] == [4, 0]
    validate(document, "top level")
    one = dataclasses.replace(result, feeds=[FeedResult(everything, "committed", dropped={"person_set_aside": 1})])
    alone = await rm.build_report(one, RunLake(MemoryLake(frames), "memory://"), rm.ReportOptions(), stage="test")
    assert "1 person was set aside from this list" in markdown.render(alone, draw=False)
