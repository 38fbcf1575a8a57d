"""The trend model: gaps (missing, corrupt, foreign), namesakes, and one model for the report, the page and history."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import trends
from pipeline.commands.history import history
from pipeline.config import load_config
from pipeline.stage import Feed
from stages.reporters import chart, html
from tests.support.report_support import movie, run_day, write_day

END = dt.date(2026, 11, 25)
DAYS = [END - dt.timedelta(days=n) for n in range(8, -1, -1)]  # nine days: a week plus a baseline


def ranking(day: dt.date) -> list[dict[str, Any]]:
    """Twelve titles whose order turns a little each day; two share a name and a year."""
    ids = list(range(1, 13))
    shift = day.toordinal() % 12
    order = ids[shift:] + ids[:shift]
    names = {5: "Twin", 6: "Twin"}
    return [movie(i, names.get(i, f"Title {i}"), release_date="2020-01-01") for i in order]


async def fill(tmp_path: Path, reporters: list[dict[str, Any]]) -> Any:
    lake = {"type": "local", "options": {"root": str(tmp_path / "lake")}}
    result = None
    for day in DAYS:
        pages = write_day(tmp_path / day.isoformat(), ranking(day))
        result = await run_day(day, pages, lake, reporters if day == END else [])
    return result


async def test_history_gives_the_numbers_of_the_report_and_a_corrupt_day_is_a_gap(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reporters = [
        {"type": "json", "options": {"path": str(tmp_path / "r.json"), "trend_days": 9}},
        {"type": "markdown", "options": {"path": str(tmp_path / "r.md"), "trend_days": 9}},
    ]
    lake = {"type": "local", "options": {"root": str(tmp_path / "lake")}}
    for day in DAYS[:-1]:
        await run_day(day, write_day(tmp_path / day.isoformat(), ranking(day)), lake, [])
    corrupt = DAYS[3]
    for copy in (tmp_path / "lake").rglob(f"{corrupt.isoformat()}_movies*.csv"):  # the published and versioned copies
        copy.write_text(copy.read_text(encoding="utf-8").replace("Title", "Tampered"), encoding="utf-8")
    caplog.set_level(logging.WARNING, logger="pipeline.trends")
    result = await run_day(END, write_day(tmp_path / "end", ranking(END)), lake, reporters)

    assert result.outputs["report:markdown"], "the report is still written"
    warned = [r.getMessage() for r in caplog.records if corrupt.isoformat() in r.getMessage()]
    assert len(warned) == 1 and "cannot be verified" in warned[0]
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))["trends"][0]
    assert [d["state"] for d in report["days"]].count("corrupt") == 1

    config = load_config(
        {
            "extractor": {"type": "replay", "options": {"path": "unused"}},
            "transformer": {"type": "standardize"},
            "loader": lake,
        }
    )
    found = await history(config, end=END, days=9)
    assert found.to_dict()["trend"] == report, "history --days 9 prints the report's own numbers"
    markdown = (tmp_path / "r.md").read_text(encoding="utf-8")
    for item in found.trend.top:
        assert f"| {item.rank} | {item.label} |" in markdown


def test_namesakes_are_told_apart_by_year_then_by_id() -> None:
    import pandas as pd

    def day(rows: list[tuple[int, str, str]]) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {"media_type": "movie", "id": i, "rank": n, "title": t, "release_date": d, "popularity": 1.0}
                for n, (i, t, d) in enumerate(rows, start=1)
            ]
        )

    rows = [
        (1, "Velvet", "2019-01-01"),
        (2, "velvet", "2026-01-01"),
        (3, "Echo", "2025-06-01"),
        (4, "Echo", "2025-09-01"),
        (5, "Alone", ""),
    ]
    model = trends.build(Feed(), [trends.DayRead(END, "ok", trends.slim(day(rows)))], top_n=5)
    assert [t.label for t in model.top] == [
        "Velvet (2019)",
        "velvet (2026)",
        "Echo (2025, id 3)",
        "Echo (2025, id 4)",
        "Alone",
    ]


def test_a_day_of_another_feed_or_without_rows_is_a_gap() -> None:
    import pandas as pd

    tv = pd.DataFrame([{"media_type": "tv", "time_window": "day", "id": 1, "rank": 1}])
    week = pd.DataFrame([{"media_type": "movie", "time_window": "week", "id": 1, "rank": 1}])
    assert trends.day_state(tv, Feed()) == "foreign" and trends.day_state(week, Feed()) == "foreign"
    assert trends.day_state(tv.iloc[0:0], Feed()) == "empty" and trends.day_state(None, Feed()) == "missing"
    assert trends.day_state(tv, Feed("all")) == "ok"


def model_with(title: str) -> trends.FeedTrend:
    import pandas as pd

    frame = pd.DataFrame(
        [
            {
                "media_type": "movie",
                "id": n,
                "rank": n,
                "title": title if n == 1 else f"T{n}",
                "release_date": "2020-01-01",
                "popularity": 1.0,
            }
            for n in range(1, 4)
        ]
    )
    reads = [trends.DayRead(d, "ok" if d != DAYS[2] else "missing", trends.slim(frame)) for d in DAYS]
    return trends.build(Feed(), reads, top_n=3)


def test_the_chart_has_one_named_series_per_title_rank_one_on_top_and_gaps_as_bands() -> None:
    hostile = "<img src=x onerror=alert(1)> & $x^2$"
    svg = chart.rank_chart_svg(model_with(hostile), salt="movies")
    assert svg is not None
    assert [f'id="movies-series-{n}"' in svg for n in (1, 2, 3, 4)] == [True, True, True, False]
    assert "1. &lt;img src=x onerror=alert(1)&gt; &amp;…" in svg and "<img" not in svg
    figure = chart._draw(model_with("x"), "movies")
    low, high = figure.axes[0].get_ylim()
    assert high < low, "rank 1 at the top"
    assert chart.rank_chart_svg(model_with(hostile), salt="movies") == svg, "the same input draws the same bytes"


def test_days_before_the_lakes_first_day_are_not_holes_nor_shaded_in_the_chart() -> None:
    """A new lake: its first day is the window's third; of the days after it, only the sixth is missing."""
    import pandas as pd

    from stages.reporters import report_model as rm

    frame = pd.DataFrame([{"media_type": "movie", "id": 1, "rank": 1, "title": "T", "release_date": ""}])
    states = ["missing", "missing", "ok", "ok", "ok", "missing", "ok", "ok", "ok"]
    model = trends.build(Feed(), [trends.DayRead(d, s, trends.slim(frame)) for d, s in zip(DAYS, states, strict=True)])
    assert [d.date for d in model.gaps] == [DAYS[0], DAYS[1], DAYS[5]]
    assert [d.date for d in model.holes] == [DAYS[5]]
    bands = chart._draw(model, "movies").axes[0].patches
    assert len(bands) == 1, "only the hole is shaded"
    left, width = bands[0].get_x(), bands[0].get_width()  # axvspan's band, in days (ordinals)
    assert (left, left + width) == (DAYS[5].toordinal() - 0.5, DAYS[5].toordinal() + 0.5)
    section = rm.FeedSection(Feed(), END, 1, rm.Movement(None, ()), model)
    assert rm.gaps_line(section) == [f"Missing from the lake, shown as gaps: {DAYS[5]}.", ""]
    nothing = trends.build(Feed(), [trends.DayRead(d, "missing", None) for d in DAYS])
    assert nothing.holes == () and len(nothing.gaps) == len(DAYS)


async def test_without_matplotlib_the_report_has_one_line_where_the_chart_would_be(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chart, "available", lambda: False)
    await fill(tmp_path, [{"type": "markdown", "options": {"path": str(tmp_path / "r.md")}}])
    text = (tmp_path / "r.md").read_text(encoding="utf-8")
    assert f"_{chart.MISSING_NOTE}_" in text and "![" not in text
    assert not (tmp_path / "r.movies.svg").exists()


@settings(max_examples=30, deadline=None)
@given(title=st.text(min_size=1, max_size=40))
def test_the_page_shows_any_title_as_text(title: str) -> None:
    from stages.reporters import report_model as rm

    model = model_with(title)
    section = rm.FeedSection(Feed(), END, 3, rm.Movement(None, ()), model)
    row = html._top_table(section, "movies").split("<tbody>", 1)[1].split("</tr>", 1)[0]
    assert f'<td class="title">{html._e(model.top[0].label)}</td>' in row
    cell = row.split('<td class="title">', 1)[1].split("</td>", 1)[0]
    assert "<" not in cell and ">" not in cell


def test_a_persons_trend_has_a_name_and_the_latest_days_department() -> None:
    from tests.support.lake import people

    feed = Feed("person", "day")
    first = people(DAYS[0], [(1, "Ada Stone", "Directing"), (2, "Sam Lee", "Acting"), (3, "Sam Lee", "")])
    last = people(END, [(2, "Sam Lee", "Acting"), (1, "Ada Stone", "Writing"), (3, "Sam Lee", "")])
    reads = [trends.DayRead(day, "ok", trends.slim(frame)) for day, frame in ((DAYS[0], first), (END, last))]

    model = trends.build(feed, reads, top_n=3)

    assert [(t.label, t.department, t.year) for t in model.top] == [
        ("Sam Lee (id 2)", "Acting", ""),  # namesakes without a year are told apart by id
        ("Ada Stone", "Writing", ""),  # the latest day's department
        ("Sam Lee (id 3)", "", ""),
    ]
    documents = [trends.title_document(t) for t in model.top]
    assert all(list(d) == list(trends.PERSON_FIELDS) for d in documents)
    assert [(d["name"], d["known_for_department"]) for d in documents] == [
        ("Sam Lee", "Acting"),
        ("Ada Stone", "Writing"),
        ("Sam Lee", None),
    ]
    assert list(trends.title_document(model_with("A title").top[0])) == list(trends.TITLE_FIELDS)
