"""One report, a section per feed: a run of movie, TV and people lists against the local TMDB stand-in
writes one section per feed in the Markdown report, the JSON report, the job summary and the page; a
feed that failed shows as failed and the others are complete."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.datalake import schema
from pipeline.stage import Feed, FeedResult, RunLake, RunResult
from stages.reporters import chart, github_summary, json_report, markdown
from stages.reporters import report_model as rm
from tests.stages.reporters.test_report_json import validate
from tests.support.fixtures_tmdb import StandinFactory
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
    assert "- **Feed:** trending movies, today, trending TV shows, today, trending people, today" in text
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
        validate(person, "person", f"people.top[{number}]")
    assert {s["compared_with"] for s in document["sections"]} == {DAY1.isoformat()}
    assert [s["total"] for s in document["sections"]] == [20, 20, 20]
    assert document["top"] == movies["top"] and len(document["trends"]) == 3

    job = summary.read_text(encoding="utf-8")
    assert list(feed_sections(job, "#### ")) == [h.replace("## ", "#### ") for h in HEADINGS]
    for body in feed_sections(job, "#### ").values():
        assert len(tables(body)[0]) == 11 and "**New in the top 10:**" in body

    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert [m for m in re.findall(r'<section class="feed[^"]*" id="feed-(\w+)"', page)] == ["movies", "tv", "people"]


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


def people_frame(names: list[str], departments: list[str]) -> Any:
    rows = [
        {
            "trend_date": DAY1.isoformat(),
            "rank": rank,
            "id": 100 + rank,
            "name": name,
            "original_name": name,
            "known_for_department": department,
            "gender": 0,
            "popularity": 10.0,
            "adult": False,
            "known_for": "",
            "known_for_titles": "[]",
            "profile_url": "",
            "media_type": "person",
            "time_window": "day",
            "extracted_at": "2026-11-24T00:00:00+00:00",
        }
        for rank, (name, department) in enumerate(zip(names, departments, strict=True), start=1)
    ]
    return schema.frame_from_rows(rows, schema.PEOPLE)


def _live(text: str) -> list[str]:
    """Characters of Markdown or HTML syntax in ``text`` that no backslash makes inert."""
    found = []
    for match in re.finditer(r"[<>\[\]!`]", text):
        before = text[: match.start()]
        if (len(before) - len(before.rstrip("\\"))) % 2 == 0:
            found.append(match.group())
    return found


HOSTILE = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=30)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(HOSTILE, min_size=3, max_size=3), department=HOSTILE, error=HOSTILE)
async def test_hostile_names_and_errors_stay_inert_in_every_section(
    names: list[str], department: str, error: str
) -> None:
    people, tv = Feed("person", "day"), Feed("tv", "day")
    lake = RunLake(MemoryLake({(DAY1, people): people_frame(names, [department, "", "Acting"])}), "memory://")
    result = RunResult(
        "run", DAY1, people, dt.datetime(2026, 11, 24, tzinfo=dt.UTC), lake="memory://",
        feeds=[FeedResult(people, "committed"), FeedResult(tv, "failed", error=error, outcome=f"kept {error}")],
    )  # fmt: skip
    report = await rm.build_report(result, lake, rm.ReportOptions(), stage="test")
    text = markdown.render(report, draw=False)
    job = github_summary.render(report)
    for rendered in (text, job):
        # the tables and the bold lines carry TMDB's text and the failure; the rest is ours
        untrusted = [line for line in rendered.splitlines() if line.startswith(("|", "**"))]
        assert _live("\n".join(untrusted)) == [] and "\n**Failed:** " in rendered
        for table in tables(rendered):
            assert {len(row) for row in table} == {len(table[0])}, table
    people_table = tables(feed_sections(text)["## Trending people, today"])[0]
    assert [row[2] for row in people_table[2:]] == [rm.NO_VALUE, "Acting"]
    document = json_report.document(report)
    assert [p["name"] for p in document["sections"][0]["top"]] == names  # raw in JSON, as TMDB sent them
    assert document["sections"][1]["error"] == error
