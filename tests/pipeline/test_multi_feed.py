"""Several feeds in one run against the local TMDB stand-in: one session, limiter and set of lookups;
each feed commits its own day, and one feed's failure leaves the others committed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.datalake import schema
from pipeline.errors import ConfigError
from pipeline.runner import outcome_of, run_pipeline
from pipeline.stage import Feed
from tests.support.cli import CliResult
from tests.support.fixtures_tmdb import StandinFactory
from tests.support.tmdb_standin import TmdbStandin

TOKEN = "standin-token-multifeed01"
FEEDS = ["movie/day", "tv/day", "person/day"]


def config(standin: TmdbStandin, root: Path, **extractor: Any) -> dict[str, Any]:
    options = {"base_url": standin.base_url, "backoff": 0.01, "max_backoff": 0.02, "rate_limit": 1000, **extractor}
    return {
        "extractor": {"type": "tmdb-trending", "options": options},
        "transformer": {"type": "standardize"},
        "loader": {"type": "local", "options": {"root": str(root)}},
        "reporter": [],
    }


def manifests(root: Path) -> dict[str, dict[str, Any]]:
    """Every committed day's manifest, by feed spec."""
    found = {}
    for path in sorted((root / "_manifests").rglob("*.json")):
        document = json.loads(path.read_bytes())
        feed = document["feed"]
        found[f"{feed['media_type']}/{feed['time_window']}"] = document
    return found


async def test_three_feeds_commit_three_days_with_one_set_of_lookups(
    tmdb_standin: StandinFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMDB_ACCESS_TOKEN", TOKEN)
    standin = await tmdb_standin(token=TOKEN, total_pages=50)
    feeds = ["movie/day", {"feed": "tv/day", "pages": 2}, "person/day"]
    result = await run_pipeline(config(standin, tmp_path, feeds=feeds, pages=3, concurrency=4))

    assert [(f.feed.spec, f.status, f.batches) for f in result.feeds] == [
        ("movie/day", "committed", 3),
        ("tv/day", "committed", 2),
        ("person/day", "committed", 3),
    ]
    assert result.ok and result.feed == Feed("movie", "day") and result.rows == result.feeds[0].rows
    paths = standin.stats.paths
    assert (paths["/3/trending/movie/day"], paths["/3/trending/tv/day"], paths["/3/trending/person/day"]) == (3, 2, 3)
    # one set of lookups for the whole run, not one per feed
    assert (paths["/3/configuration"], paths["/3/genre/movie/list"], paths["/3/genre/tv/list"]) == (1, 1, 1)
    assert result.counters["requests"] == 3 + 2 + 3 + 3
    assert [f.counters["pages"] for f in result.feeds] == [3, 2, 3]
    days = manifests(tmp_path)
    assert sorted(days) == sorted(FEEDS)
    assert {d["run_id"] for d in days.values()} == {result.run_id}


async def test_the_feeds_pages_interleave_under_the_one_limiter(
    tmdb_standin: StandinFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMDB_ACCESS_TOKEN", TOKEN)
    standin = await tmdb_standin(token=TOKEN, total_pages=50, latency=0.002)
    result = await run_pipeline(config(standin, tmp_path, feeds=FEEDS, pages=30, concurrency=3))
    assert result.ok
    trending = [path.rsplit("/", 2)[1] for path in standin.stats.sequence if path.startswith("/3/trending/")]
    assert len(trending) == 90
    # one feed does not go first and the others after it: every stretch of 30 requests serves all three
    for start in range(0, 90, 30):
        stretch = trending[start : start + 30]
        assert min(stretch.count(media) for media in ("movie", "tv", "person")) >= 5, stretch
    assert standin.stats.max_in_flight <= 3  # one in-flight cap for the run, not one per feed


async def test_people_keep_nulls_missing_keys_and_empty_known_for(
    tmdb_standin: StandinFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMDB_ACCESS_TOKEN", TOKEN)
    standin = await tmdb_standin(token=TOKEN, total_pages=50)
    result = await run_pipeline(config(standin, tmp_path, feeds=["person/day"], pages=3))
    [people] = result.feeds
    assert people.status == "committed" and people.rows == 60 and people.dropped == {}
    path = Path(people.outputs["cleaned"])
    assert path.relative_to(tmp_path).parts[:2] == ("cleaned_data", "people")
    frame = schema.read_csv_bytes(path.read_bytes(), schema.PEOPLE)
    sent = [item for page in sorted(standin.stats.bodies) for item in json.loads(standin.stats.bodies[page])["results"]]
    assert frame["id"].tolist() == [item["id"] for item in sent]
    assert frame["rank"].tolist() == list(range(1, 61))
    for row, item in zip(frame.to_dict("records"), sent, strict=True):
        assert row["name"] == item["name"]
        assert row["known_for_department"] == (item.get("known_for_department") or "")
        assert row["gender"] == item["gender"] and row["popularity"] == item["popularity"]
        known = item["known_for"]
        expected_pairs = [f"{k['media_type']}:{k['id']}" for k in known]
        assert (row["known_for"].split("|") if row["known_for"] else []) == expected_pairs
        titles = [k.get("title") or k.get("name") for k in known]
        assert json.loads(row["known_for_titles"]) == titles
        profile = item["profile_path"]
        assert row["profile_url"] == ("" if profile is None else f"https://image.tmdb.org/t/p/h632{profile}")
    # the stand-in's variety really was there
    assert any(item.get("known_for_department", "x") is None for item in sent)
    assert any("known_for_department" not in item for item in sent)
    assert any(not item["known_for"] for item in sent) and any(item["profile_path"] is None for item in sent)


async def test_a_failing_feed_leaves_the_others_committed_and_the_cli_names_it(
    tmdb_standin: StandinFactory, tmp_path: Path, run_cli: Any
) -> None:
    standin = await tmdb_standin(token=TOKEN, total_pages=50, list_errors={"tv/day": 401})
    path = tmp_path / "config.yml"
    path.write_text(json.dumps(config(standin, tmp_path / "lake", feeds=FEEDS, pages=2)), encoding="utf-8")
    done: CliResult = await asyncio.to_thread(run_cli, "run", "--config", str(path), env={"TMDB_ACCESS_TOKEN": TOKEN})

    assert done.returncode == 1
    assert sorted(manifests(tmp_path / "lake")) == ["movie/day", "person/day"]
    [line] = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith("error: 1 of 3 feeds failed: tv/day: ")
    assert "HTTP 401" in line and "nothing was committed" in line and "keeps its previous data" in line
    assert "movie/day" not in line and "person/day" not in line
    assert "wrote 40 rows from 2 pages" in done.stdout
    listed = [line for line in done.stdout.splitlines() if line.startswith("  ")]
    assert any(line.startswith("  cleaned (person/day) ") for line in listed)
    [column] = {line.index(str(tmp_path)) for line in listed}  # the locations line up in one column
    assert any(line[column - 2] != " " for line in listed)  # right after the longest name and one space
    zones = ("cleaned_data", "_versions", "raw_data", "_manifests")
    left = [p.name for zone in zones for p in (tmp_path / "lake" / zone).rglob("*_tv*")]
    assert left == []  # the failed feed stored nothing
    assert len([p for p in (tmp_path / "lake" / "cleaned_data").rglob("*.csv")]) == 2


async def test_a_failing_feed_in_a_dry_run_is_contained_as_in_a_real_run(
    tmdb_standin: StandinFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMDB_ACCESS_TOKEN", TOKEN)
    standin = await tmdb_standin(token=TOKEN, total_pages=50, list_errors={"tv/day": 401})

    result = await run_pipeline(config(standin, tmp_path / "lake", feeds=FEEDS, pages=2), dry_run=True)

    assert [(f.feed.spec, f.status) for f in result.feeds] == [
        ("movie/day", "dry-run"),
        ("tv/day", "failed"),
        ("person/day", "dry-run"),
    ]
    assert [f.rows for f in result.feeds if f.ok] == [40, 40]
    [failed] = result.failed
    assert "HTTP 401" in (failed.error or "") and "nothing was committed" in (failed.outcome or "")
    assert not (tmp_path / "lake").exists() or not any((tmp_path / "lake").rglob("*.*"))


async def test_a_failing_feed_does_not_undo_another_feeds_earlier_day(
    tmdb_standin: StandinFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMDB_ACCESS_TOKEN", TOKEN)
    standin = await tmdb_standin(token=TOKEN, total_pages=50)
    first = await run_pipeline(config(standin, tmp_path, feeds=FEEDS, pages=2))
    before = manifests(tmp_path)
    standin.config.list_errors = {"person/day": 500}
    second = await run_pipeline(config(standin, tmp_path, feeds=FEEDS, pages=2, max_attempts=2))
    after = manifests(tmp_path)

    assert [f.feed.spec for f in second.failed] == ["person/day"]
    [failed] = second.failed
    assert "failed after 2 attempts" in (failed.error or "") and "HTTP 500" in (failed.error or "")
    assert failed.outcome is not None and failed.outcome.startswith("nothing was committed")
    assert after["person/day"] == before["person/day"] and before["person/day"]["run_id"] == first.run_id
    assert after["movie/day"]["run_id"] == after["tv/day"]["run_id"] == second.run_id


async def test_feed_reruns_only_the_named_feeds(
    tmdb_standin: StandinFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMDB_ACCESS_TOKEN", TOKEN)
    standin = await tmdb_standin(token=TOKEN, total_pages=50)
    first = await run_pipeline(config(standin, tmp_path, feeds=FEEDS, pages=1))
    again = await run_pipeline(config(standin, tmp_path, feeds=FEEDS, pages=1), feeds=["person/day"])
    days = manifests(tmp_path)
    assert [f.feed.spec for f in again.feeds] == ["person/day"]
    assert {spec: d["run_id"] for spec, d in days.items()} == {
        "movie/day": first.run_id,
        "tv/day": first.run_id,
        "person/day": again.run_id,
    }
    with pytest.raises(ConfigError, match=r"^--feed tv/week: not a feed of this config; it has movie/day, tv/day"):
        await run_pipeline(config(standin, tmp_path, feeds=FEEDS, pages=1), feeds=["tv/week"])


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({}, [("movie/day", 20)]),
        ({"media_type": "tv", "time_window": "week", "pages": 7}, [("tv/week", 7)]),
        (
            {"feeds": ["movie/day", {"feed": "person/week", "pages": 3}], "pages": 9},
            [("movie/day", 9), ("person/week", 3)],
        ),
    ],
    ids=["default", "single-feed options", "feeds with an override"],
)
def test_the_feed_plan(given: dict[str, Any], expected: list[tuple[str, int]]) -> None:
    from pipeline.options import build_options
    from stages.extractors.tmdb.extractor import TmdbOptions

    plan = build_options(TmdbOptions, given, "extractor.options").feed_plan()
    assert [(feed.spec, pages) for feed, pages in plan] == expected


async def test_cancelling_a_run_of_several_feeds_aborts_every_feed_and_says_so(
    tmdb_standin: StandinFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMDB_ACCESS_TOKEN", TOKEN)
    standin = await tmdb_standin(token=TOKEN, total_pages=50)
    await run_pipeline(config(standin, tmp_path, feeds=FEEDS, pages=1))
    before = manifests(tmp_path)
    standin.open_gate.clear()  # every request now waits: the run is held mid-fetch
    run = asyncio.ensure_future(run_pipeline(config(standin, tmp_path, feeds=FEEDS, pages=3)))
    await standin.held(3)  # page 1 of every feed (and the lookups) wait at the gate
    run.cancel()
    with pytest.raises(asyncio.CancelledError) as stopped:
        await run
    standin.open_gate.set()
    outcome = outcome_of(stopped.value) or ""
    for spec in FEEDS:
        assert f"{spec}: nothing was committed" in outcome
    assert manifests(tmp_path) == before
    assert [p for p in (tmp_path / "_locks").glob("*.json")] == []
