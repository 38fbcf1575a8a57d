"""``history``: a title's ranks and the top climbers over a window, with missing days shown as gaps."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pipeline.commands.history import History, history, render_table
from pipeline.config import load_config
from pipeline.datalake import LakeLoader, schema
from pipeline.options import build_options
from pipeline.stage import Feed, RunContext
from stages.loaders.local import LocalLoader, LocalOptions
from tests.support.cli import CliRunner
from tests.support.fakes import commit_info
from tests.support.lake import context_for, people, rows
from tests.support.report_schema import validate
from tests.support.sample import replay_config, write_config

ROOT = Path(__file__).resolve().parents[3]
FIRST, MISSING, LAST = dt.date(2026, 11, 23), dt.date(2026, 11, 24), dt.date(2026, 11, 25)
MOVIES = Feed("movie", "day")


def day_frame(day: dt.date, ranking: list[tuple[int, str]], feed: Feed = MOVIES) -> pd.DataFrame:
    """One day's rows: ``ranking`` is ``(id, title)`` best first; popularity falls with rank."""
    frame = rows(day, range(len(ranking)))
    frame["id"] = [i for i, _ in ranking]
    frame["title"] = [t for _, t in ranking]
    frame["popularity"] = [1000.0 - 10 * n + day.day for n in range(len(ranking))]
    frame["media_type"], frame["time_window"] = feed.media_type, feed.time_window
    return schema.conform(frame)


# Day 1 and day 3 are in the lake; day 2 is missing. "Rising" climbs 4 -> 1, "Steady Climb" 5 -> 3,
# "Falling" drops, "Gone" leaves the list, "Newcomer" arrives (no earlier rank, so not a climber).
DAY_ONE = [(1, "Falling"), (2, "Gone"), (3, "Holding"), (4, "Rising"), (5, "Steady Climb")]
DAY_THREE = [(4, "Rising"), (3, "Holding"), (5, "Steady Climb"), (6, "Newcomer"), (1, "Falling")]


async def commit_day(loader_for_day: Any, day: dt.date, feed: Feed, frame: pd.DataFrame) -> None:
    """Commit ``frame`` as ``day`` of ``feed`` through a real loader."""
    loader: LakeLoader[Any] = loader_for_day(context_for(day))
    async with loader:
        loader_day = await loader.begin(feed)
        await loader_day.write(frame)
        await loader_day.commit(commit_info(loader))


async def fill(loader_for_day: Any, feed: Feed = MOVIES) -> None:
    """Commit DAY_ONE on FIRST and DAY_THREE on LAST through real loaders; MISSING stays absent."""
    for day, ranking in ((FIRST, DAY_ONE), (LAST, DAY_THREE)):
        await commit_day(loader_for_day, day, feed, day_frame(day, ranking, feed))


def local_config(root: Path, fmt: str = "csv", layout: str = "monthly", **extractor: str) -> dict[str, Any]:
    return {
        "extractor": {"type": "replay", "options": {"path": "unused", **extractor}},
        "transformer": {"type": "standardize"},
        "loader": {"type": "local", "options": {"root": str(root), "format": fmt, "layout": layout}},
    }


def local_factory(root: Path, fmt: str, layout: str) -> Any:
    options = build_options(LocalOptions, {"root": str(root), "format": fmt, "layout": layout}, "loader.options")
    return lambda context: LocalLoader(options, context)


def assert_window(found: History) -> None:
    assert found.days == (FIRST, MISSING, LAST)
    assert found.present == (FIRST, LAST) and found.missing == (MISSING,)


@pytest.mark.parametrize(("fmt", "layout"), [("csv", "monthly"), ("parquet", "hive")])
async def test_a_title_has_one_point_per_day_with_the_missing_day_as_a_gap(
    tmp_path: Path, fmt: str, layout: str
) -> None:
    await fill(local_factory(tmp_path, fmt, layout))
    config = load_config(local_config(tmp_path, fmt, layout))

    found = await history(config, end=LAST, days=3, title="rising")

    assert_window(found)
    assert [(t.id, t.title) for t in found.titles] == [(4, "Rising")]
    assert found.titles[0].ranks == (4, None, 1)
    assert found.titles[0].popularity == (1000.0 - 30 + 23, None, 1000.0 + 25)
    assert [d.state for d in found.trend.days] == ["ok", "missing", "ok"]


async def test_a_title_out_of_the_list_on_a_day_is_in_the_lake_without_a_rank(tmp_path: Path) -> None:
    await fill(local_factory(tmp_path, "csv", "monthly"))
    found = await history(load_config(local_config(tmp_path)), end=LAST, days=3, title="GONE")
    assert found.titles[0].ranks == (2, None, None) and found.titles[0].rank is None
    assert found.titles[0].best_rank == 2 and found.titles[0].best_date == FIRST


async def test_an_exact_title_wins_over_titles_that_contain_it(tmp_path: Path) -> None:
    await fill(local_factory(tmp_path, "csv", "monthly"))
    config = load_config(local_config(tmp_path))
    assert [t.title for t in (await history(config, end=LAST, days=3, title="climb")).titles] == ["Steady Climb"]
    assert [t.title for t in (await history(config, end=LAST, days=3, title="in")).titles] == [
        "Falling",
        "Holding",
        "Rising",
    ]
    assert (await history(config, end=LAST, days=3, title="nothing like it")).titles == ()


WEEK_AGO = LAST - dt.timedelta(days=7)


async def fill_week(loader_for_day: Any) -> None:
    """DAY_ONE a week before LAST, DAY_THREE on LAST; the six days between are missing."""
    for day, ranking in ((WEEK_AGO, DAY_ONE), (LAST, DAY_THREE)):
        await commit_day(loader_for_day, day, MOVIES, day_frame(day, ranking))


@pytest.mark.parametrize(("fmt", "layout"), [("parquet", "monthly"), ("csv", "hive")])
async def test_the_weeks_lists_compare_the_latest_day_with_the_day_a_week_before(
    tmp_path: Path, fmt: str, layout: str
) -> None:
    await fill_week(local_factory(tmp_path, fmt, layout))
    found = await history(load_config(local_config(tmp_path, fmt, layout)), end=LAST, days=8, top=3)
    model = found.trend
    assert model.latest == LAST and model.baseline == WEEK_AGO and len(found.missing) == 6
    assert [(t.title, t.rank, t.week_change) for t in model.top] == [
        ("Rising", 1, 3),
        ("Holding", 2, 1),
        ("Steady Climb", 3, 2),
    ]
    assert [(t.title, t.week_change) for t in model.rising] == [("Rising", 3), ("Steady Climb", 2), ("Holding", 1)]
    # the six missing days between neither break the streak nor count toward it
    assert [(t.title, t.streak, t.days_in_top) for t in model.holding] == [("Holding", 2, 2)]
    assert [t.title for t in model.new_this_week] == ["Rising", "Steady Climb"]
    assert [(t.title, t.rank) for t in model.fell_out_this_week] == [("Falling", 5), ("Gone", None)]
    text = render_table(found)
    assert "  fell out of the top 3: Falling (was 1, now 5); Gone (was 2, out of the list)" in text
    assert "gaps (not in the lake): 2026-11-19..2026-11-24" in text


async def test_without_a_day_a_week_before_the_weeks_lists_are_empty(tmp_path: Path) -> None:
    await fill(local_factory(tmp_path, "csv", "monthly"))
    found = await history(load_config(local_config(tmp_path)), end=LAST, days=3, top=3)
    model = found.trend
    assert model.baseline is None
    assert model.rising == model.new_this_week == model.fell_out_this_week == ()
    assert [(t.title, t.change) for t in model.top] == [("Rising", 3), ("Holding", 1), ("Steady Climb", 2)]
    text = render_table(found)
    assert "this week: no day in the lake a week before the latest to compare with" in text
    # the table says the same: no week to compare with ("-", not "new"); the window's three days are compared
    assert [(row[-6], row[-1]) for row in table_rows(text)] == [("-", "▲3"), ("-", "▲1"), ("-", "▲2")]
    assert f"over 3 days: places gained since {FIRST}, the first day of the window in the lake" in text

    alone = render_table(await history(load_config(local_config(tmp_path)), end=LAST, days=1, top=3))
    assert [(row[-6], row[-1]) for row in table_rows(alone)] == [("-", "-")] * 3  # one day: nothing to compare


def table_rows(text: str) -> list[list[str]]:
    """The top table's rows, split on whitespace (a row starts with its rank)."""
    return [line.split() for line in text.splitlines() if line[:6].strip().isdigit()]


async def test_the_table_shows_control_characters_in_titles_escaped(tmp_path: Path) -> None:
    hostile = "Line\nBreak \x1b[31mRed"
    await commit_day(local_factory(tmp_path, "csv", "monthly"), LAST, MOVIES, day_frame(LAST, [(7, hostile)]))
    found = await history(load_config(local_config(tmp_path)), end=LAST, days=1, title="line")
    assert found.titles[0].title == hostile, "the data keeps the title as TMDB sent it"
    text = render_table(found)
    assert "Line\\nBreak \\x1b[31mRed (id 7)" in text.splitlines()
    assert "\x1b" not in text


async def test_an_empty_window_is_all_gaps_not_an_error(tmp_path: Path) -> None:
    config = load_config(local_config(tmp_path / "no-lake-yet"))
    found = await history(config, end=LAST, days=5)
    assert found.present == () and len(found.missing) == 5 and found.trend.top == ()
    assert "no day of the window is in the lake" in render_table(found)
    titled = await history(config, end=LAST, days=5, title="Rising")
    assert titled.titles == () and "no title matching 'Rising'" in render_table(titled)


async def test_the_feed_comes_from_the_extractor_options(tmp_path: Path) -> None:
    await fill(local_factory(tmp_path, "csv", "hive"), feed=Feed("tv", "week"))
    movies = await history(load_config(local_config(tmp_path, "csv", "hive")), end=LAST, days=3)
    assert movies.present == ()
    tv = await history(
        load_config(local_config(tmp_path, "csv", "hive", media_type="tv", time_window="week")), end=LAST, days=3
    )
    assert tv.feed == Feed("tv", "week") and tv.present == (FIRST, LAST)


async def test_the_command_prints_a_table_and_json(tmp_path: Path, run_cli: CliRunner) -> None:
    await fill(local_factory(tmp_path / "lake", "parquet", "hive"))
    config = str(write_config(tmp_path / "c.yml", local_config(tmp_path / "lake", "parquet", "hive")))

    table = await asyncio.to_thread(
        run_cli, "history", "--config", config, "--date", "2026-11-25", "--days", "3", "--title", "Rising"
    )
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0] == "trending movies, today, 2026-11-23 to 2026-11-25: 2 of 3 days in the lake"
    assert lines[1] == "gaps (not in the lake): 2026-11-24"
    assert "Rising (id 4)" in lines
    assert [line.split()[:2] for line in lines if line.startswith("  2026-")] == [
        ["2026-11-23", "4"],
        ["2026-11-24", "(day"],
        ["2026-11-25", "1"],
    ]

    as_json = await asyncio.to_thread(
        run_cli, "history", "--config", config, "--date", "2026-11-25", "--days", "3", "--format", "json"
    )
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)["trend"]
    assert [d["state"] for d in data["days"]] == ["ok", "missing", "ok"] and data["latest"] == "2026-11-25"
    assert [(t["title"], t["ranks"]) for t in data["top"][:2]] == [("Rising", [4, None, 1]), ("Holding", [3, None, 2])]

    as_csv = await asyncio.to_thread(
        run_cli, "history", "--config", config, "--date", "2026-11-25", "--days", "3", "--format", "csv", "--top", "2"
    )
    assert as_csv.returncode == 0, as_csv.stderr
    table = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [(r["title"], r["2026-11-23"], r["2026-11-24"], r["2026-11-25"]) for r in table] == [
        ("Rising", "4", "gap", "1"),
        ("Holding", "3", "gap", "2"),
    ]

    titled = await asyncio.to_thread(
        run_cli,
        "history",
        "--config",
        config,
        "--date",
        "2026-11-25",
        "--days",
        "3",
        "--title",
        "Gone",
        "--format",
        "json",
    )
    assert json.loads(titled.stdout)["titles"][0]["ranks"] == [2, None, None]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--days", "0"], "expected at least 1"),
        (["--days", "367"], "--days must be between 1 and 366, got 367"),
        (["--date", "25/11/2026"], "expected a date as YYYY-MM-DD"),
        (["--date", "0001-01-01"], "expected a date from 1970-01-01 to 9998-12-31"),
    ],
)
def test_bad_arguments_are_usage_errors(tmp_path: Path, args: list[str], message: str, run_cli: CliRunner) -> None:
    done = run_cli("history", "--config", str(write_config(tmp_path / "c.yml", local_config(tmp_path))), *args)
    assert done.returncode == 2 and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr


def s3_lake_config(bucket: str, endpoint: str, fmt: str, layout: str) -> dict[str, Any]:
    options = {"bucket": bucket, "endpoint_url": endpoint, "prefix": "tmdb", "format": fmt, "layout": layout}
    return replay_config({"type": "s3", "options": options}, Path("unused"))


@pytest.mark.parametrize(("fmt", "layout"), [("csv", "monthly"), ("parquet", "hive")])
async def test_history_on_s3(
    tmp_path: Path,
    s3_bucket: str,
    moto_endpoint: str,
    aws_env: dict[str, str],
    s3_client: Any,
    fmt: str,
    layout: str,
    run_cli: CliRunner,
) -> None:
    from stages.loaders.s3 import S3Loader, S3Options

    raw = s3_lake_config(s3_bucket, moto_endpoint, fmt, layout)
    options = build_options(S3Options, raw["loader"]["options"], "loader.options")

    def s3_loader(context: RunContext) -> S3Loader:
        return S3Loader(options, context, name="s3")

    await fill(s3_loader)
    listing = await s3_client.list_objects_v2(Bucket=s3_bucket, Prefix="tmdb/cleaned_data/")
    assert len(listing["Contents"]) == 2 and all(o["Key"].endswith(f".{fmt}") for o in listing["Contents"])

    found = await history(load_config(raw), end=LAST, days=3, title="Rising")
    assert_window(found)
    assert found.titles[0].ranks == (4, None, 1)

    done = await asyncio.to_thread(
        run_cli,
        "history",
        "--config",
        str(write_config(tmp_path / "s3.yml", raw)),
        "--date",
        "2026-11-25",
        "--days",
        "3",
        "--format",
        "json",
        env=aws_env,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)["trend"]
    assert [d["state"] for d in data["days"]] == ["ok", "missing", "ok"]
    assert [(t["title"], t["ranks"], t["change"]) for t in data["top"][:3]] == [
        ("Rising", [4, None, 1], 3),
        ("Holding", [3, None, 2], 1),
        ("Steady Climb", [5, None, 3], 2),
    ]


# -- several feeds, people among them ------------------------------------------------------------
FEEDS = ["movie/day", "tv/day", "person/day"]
PEOPLE = Feed("person", "day")
# Bo Reed climbs and changes department (the latest day's counts); a name a spreadsheet would run arrives.
PEOPLE_ONE = [(11, "Ada Stone", "Acting"), (12, "Bo Reed", "Directing"), (13, "Cy Vale", "")]
PEOPLE_THREE = [
    (12, "Bo Reed", "Writing"),
    (11, "Ada Stone", "Acting"),
    (14, "=Eve Hack", ""),
    (15, "山田 太郎", "Acting"),
]


def columns(text: str) -> int:
    """Terminal columns of ``text``: a wide character takes two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


@dataclass(frozen=True)
class FeedsLake:
    """A local lake of three configured feeds: movies and people on FIRST and LAST, no TV at all."""

    config: Path


@pytest.fixture(scope="module")
def feeds_lake(tmp_path_factory: pytest.TempPathFactory) -> FeedsLake:
    """Committed through real loaders once for the module; every test only reads it."""
    root = tmp_path_factory.mktemp("feeds-lake")
    factory = local_factory(root / "lake", "csv", "monthly")

    async def commit_all() -> None:
        await fill(factory)
        for day, named in ((FIRST, PEOPLE_ONE), (LAST, PEOPLE_THREE)):
            await commit_day(factory, day, PEOPLE, people(day, named))

    asyncio.run(commit_all())
    document = local_config(root / "lake")
    document["extractor"] = {"type": "tmdb-trending", "options": {"feeds": FEEDS}}
    return FeedsLake(write_config(root / "feeds.yml", document))


async def test_every_configured_feed_has_its_own_part_and_people_have_names(feeds_lake: FeedsLake) -> None:
    found = await history(load_config(feeds_lake.config), end=LAST, days=3)

    assert [part.feed.spec for part in found.parts] == FEEDS
    movies, tv, persons = found.parts
    assert found.trend is movies.trend and [t.title for t in movies.trend.top][:2] == ["Rising", "Holding"]
    assert tv.present == () and tv.trend.top == ()
    assert [(t.title, t.rank, t.department, t.change) for t in persons.trend.top] == [
        ("Bo Reed", 1, "Writing", 1),
        ("Ada Stone", 2, "Acting", -1),
        ("=Eve Hack", 3, "", None),
        ("山田 太郎", 4, "Acting", None),
    ]
    movie_text, tv_text, people_text = render_table(found).split("\n\ntrending ")
    assert movie_text.startswith("trending movies, today, 2026-11-23 to 2026-11-25: 2 of 3 days in the lake")
    assert tv_text.startswith("TV shows, today, 2026-11-23 to 2026-11-25: 0 of 3 days in the lake")
    assert "no day of the window is in the lake" in tv_text
    lines = people_text.splitlines()
    assert lines[0] == "people, today, 2026-11-23 to 2026-11-25: 2 of 3 days in the lake"
    [head] = [line for line in lines if line.lstrip().startswith("rank")]
    assert head.split()[:4] == ["rank", "name", "known", "for"] and "title" not in people_text
    assert [line.split()[:4] for line in lines if line.startswith("     1  ")] == [["1", "Bo", "Reed", "Writing"]]
    rows = [line for line in lines if line.startswith("     ")]
    # the department column lines up in a terminal, where each of 山田 太郎's four characters takes two columns
    assert {
        columns(line[: line.index(known)])
        for line, known in zip(rows, ("Writing", "Acting", "-", "Acting"), strict=True)
    } == {head.index("known for")}
    assert "  rising fastest:" not in people_text  # no day a week before: the week's lists say so instead

    only = await history(load_config(feeds_lake.config), end=LAST, days=3, feeds=["person/day"], title="reed")
    assert [p.feed for p in only.parts] == [PEOPLE] and [t.id for t in only.titles] == [12]
    assert render_table(only).splitlines()[3:5] == ["Bo Reed (id 12, Writing)", "  date        rank  popularity"]
    nobody = await history(load_config(feeds_lake.config), end=LAST, days=3, feeds=["person/day"], title="zed")
    assert "no one matching 'zed' in those days" in render_table(nobody)


def test_the_json_names_each_feed_and_a_persons_name(feeds_lake: FeedsLake, run_cli: CliRunner) -> None:
    args = ("history", "--config", str(feeds_lake.config), "--date", "2026-11-25", "--days", "3", "--format", "json")

    done = run_cli(*args, "--title", "a")

    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    validate(document, "history")
    assert [(f["feed"]["media_type"], f["feed"]["time_window"]) for f in document["feeds"]] == [
        ("movie", "day"),
        ("tv", "day"),
        ("person", "day"),
    ]
    assert document["trend"] == document["feeds"][0]["trend"] and document["titles"] == document["feeds"][0]["titles"]
    persons = document["feeds"][2]
    assert [(p["name"], p["known_for_department"], p["rank"]) for p in persons["trend"]["top"]] == [
        ("Bo Reed", "Writing", 1),
        ("Ada Stone", "Acting", 2),
        ("=Eve Hack", None, 3),
        ("山田 太郎", "Acting", 4),
    ]
    assert [p["name"] for p in persons["titles"]] == ["=Eve Hack", "Ada Stone", "Cy Vale"]  # "a" in the name
    assert document["feeds"][1]["trend"]["days"] == [{"date": d.isoformat(), "state": "missing"} for d in (
        FIRST, MISSING, LAST)]  # fmt: skip


def test_the_csv_of_a_person_feed_has_names_and_departments(feeds_lake: FeedsLake, run_cli: CliRunner) -> None:
    done = run_cli(
        "history", "--config", str(feeds_lake.config), "--date", "2026-11-25", "--days", "3",
        "--format", "csv", "--feed", "person/day",
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    table = list(csv.DictReader(io.StringIO(done.stdout)))
    assert list(table[0])[:6] == ["media_type", "id", "name", "label", "known_for_department", "rank"]
    assert [
        (r["name"], r["known_for_department"], r["2026-11-23"], r["2026-11-24"], r["2026-11-25"]) for r in table
    ] == [
        ("Bo Reed", "Writing", "2", "gap", "1"),
        ("Ada Stone", "Acting", "1", "gap", "2"),
        ("'=Eve Hack", "", "", "gap", "3"),  # a formula is text
        ("山田 太郎", "Acting", "", "gap", "4"),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--feed", "tv/week"],
            "error: --feed tv/week: not a feed of this config; it has movie/day, tv/day, person/day",
        ),
        (["--feed", "films"], "error: --feed: expected media/window with media one of movie, tv, person, all"),
        (
            ["--format", "csv"],
            "error: --format csv writes one feed's table and this config has movie/day, tv/day, person/day; "
            "choose one with --feed",
        ),
        (["--format", "csv", "--feed", "tv/day", "--feed", "movie/day"], "error: --format csv writes one feed's"),
    ],
    ids=["not-configured", "not-a-feed", "csv-of-three", "csv-of-two"],
)
def test_a_feed_the_config_lacks_or_csv_of_several_is_a_one_line_usage_error(
    feeds_lake: FeedsLake, run_cli: CliRunner, args: list[str], message: str
) -> None:
    done = run_cli("history", "--config", str(feeds_lake.config), "--date", "2026-11-25", "--days", "3", *args)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(message) and len(done.stderr.splitlines()) == 1, done.stderr
