"""Catch-up runs: a failed 12:00 run is healed by the 18:00 run, and the 23:00 run skips without a request.

The scheduler runs ``run`` at 12:00 UTC and ``run --skip-committed`` at 18:00 and 23:00 UTC
(.github/workflows/scheduler.yml); this simulates one such day against the local TMDB stand-in.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

from tests.support.cli import CliRunner
from tests.support.fixtures_tmdb import StandinFactory
from tests.support.tmdb_standin import StandinConfig

TOKEN = "catchup-test-token-0123456789abcdef"
PAGES = 2


def tmdb_config(tmp_path: Path, base_url: str) -> Path:
    """TMDB (the stand-in) → standardize → a local lake, one attempt per request so an outage fails fast."""
    document: dict[str, Any] = {
        "extractor": {
            "type": "tmdb-trending",
            "options": {"base_url": base_url, "pages": PAGES, "max_attempts": 1, "enrich": False},
        },
        "transformer": {"type": "standardize"},
        "loader": {"type": "local", "options": {"root": str(tmp_path / "lake")}},
        # no rank chart: these tests are about which runs commit, and a chart costs ~0.15 s of matplotlib a report
        "reporter": {"type": "markdown", "options": {"path": str(tmp_path / "LATEST_UPDATE.md"), "chart": False}},
    }
    path = tmp_path / "pipeline.yml"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def lake_files(root: Path) -> dict[str, bytes]:
    """Every file under ``root``, with its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


async def test_a_failed_noon_run_is_healed_by_the_catch_up_run_and_the_last_run_skips(
    tmp_path: Path, run_cli: CliRunner, tmdb_standin: StandinFactory
) -> None:
    standin = await tmdb_standin(token=TOKEN, fault_rate=1.0, faults=("503",))
    path = tmdb_config(tmp_path, standin.base_url)
    env = {"TMDB_ACCESS_TOKEN": TOKEN}
    today = dt.datetime.now(dt.UTC).date().isoformat()

    # 12:00: TMDB is down. The run fails and commits nothing.
    noon = await asyncio.to_thread(run_cli, "run", "--config", str(path), env=env)
    assert noon.returncode == 1, noon.stdout + noon.stderr
    assert "503" in noon.stderr
    assert not (tmp_path / "lake" / "_manifests").exists()

    # 18:00: TMDB is back. The catch-up run finds nothing committed, so it runs and commits.
    standin.reconfigure(StandinConfig(token=TOKEN))
    evening = await asyncio.to_thread(run_cli, "run", "--config", str(path), "--skip-committed", env=env)
    assert evening.returncode == 0, evening.stdout + evening.stderr
    assert f"wrote {PAGES * 20} rows from {PAGES} pages for {today}" in evening.stdout
    assert standin.stats.paths["/3/trending/movie/day"] == PAGES
    committed = lake_files(tmp_path / "lake")
    report = (tmp_path / "LATEST_UPDATE.md").read_bytes()

    # 23:00: the day is there. One line, exit 0, no request, nothing written.
    standin.reconfigure(StandinConfig(token=TOKEN))
    night = await asyncio.to_thread(run_cli, "run", "--config", str(path), "--skip-committed", env=env)
    assert night.returncode == 0, night.stdout + night.stderr
    [line] = night.stdout.splitlines()
    assert line.startswith(f"{today} is already committed for every feed: movie/day ({PAGES * 20} rows) in ")
    assert line.endswith(f" in {tmp_path / 'lake'}; skipped")
    assert standin.stats.requests == 0
    assert lake_files(tmp_path / "lake") == committed
    assert (tmp_path / "LATEST_UPDATE.md").read_bytes() == report
    assert TOKEN not in noon.stderr + evening.stdout + evening.stderr + night.stdout + night.stderr


async def test_skip_committed_on_a_day_that_is_not_committed_runs_as_usual(
    tmp_path: Path, run_cli: CliRunner, tmdb_standin: StandinFactory
) -> None:
    """Yesterday is in the lake, today is not: the flag looks at the run's own day only."""
    standin = await tmdb_standin(token=TOKEN)
    path = tmdb_config(tmp_path, standin.base_url)
    yesterday = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()
    env = {"TMDB_ACCESS_TOKEN": TOKEN}
    first = await asyncio.to_thread(run_cli, "run", "--config", str(path), "--date", yesterday, env=env)
    assert first.returncode == 0, first.stderr

    again = await asyncio.to_thread(run_cli, "run", "--config", str(path), "--skip-committed", env=env)

    assert again.returncode == 0, again.stderr
    assert "already committed" not in again.stdout
    assert standin.stats.paths["/3/trending/movie/day"] == 2 * PAGES


def test_skip_committed_never_opens_the_extractor(tmp_path: Path, run_cli: CliRunner, closed_port: int) -> None:
    """Committed by a replay; the catch-up check then uses a TMDB config whose server does not even listen."""
    sample = Path(__file__).resolve().parents[2] / "tests" / "data" / "sample" / "2026-11-25"
    path = tmdb_config(tmp_path, f"http://127.0.0.1:{closed_port}")
    replay = ["--set", "extractor.type=replay", "--set", f"extractor.options={{path: {sample}}}"]
    done = run_cli("run", "--config", str(path), "--date", "2026-11-25", *replay)
    assert done.returncode == 0, done.stderr

    skipped = run_cli(
        "run", "--config", str(path), "--date", "2026-11-25", "--skip-committed", env={"TMDB_ACCESS_TOKEN": TOKEN}
    )

    assert skipped.returncode == 0, skipped.stderr
    assert "2026-11-25 is already committed for every feed: movie/day (" in skipped.stdout


async def test_a_catch_up_run_fetches_only_the_feeds_that_failed_and_keeps_the_committed_ones(
    tmp_path: Path, run_cli: CliRunner, tmdb_standin: StandinFactory
) -> None:
    """Three feeds; tv/day fails at noon. The catch-up run fetches tv/day alone: movie/day's day is not replaced."""
    standin = await tmdb_standin(token=TOKEN, list_errors={"tv/day": 401})
    path = tmdb_config(tmp_path, standin.base_url)
    document = json.loads(path.read_text(encoding="utf-8"))
    options = document["extractor"]["options"]
    options["feeds"] = ["movie/day", "tv/day", "person/day"]
    document["reporter"] = []
    path.write_text(json.dumps(document), encoding="utf-8")
    env = {"TMDB_ACCESS_TOKEN": TOKEN}
    manifests = tmp_path / "lake" / "_manifests"

    noon = await asyncio.to_thread(run_cli, "run", "--config", str(path), env=env)
    assert noon.returncode == 1 and "1 of 3 feeds failed: tv/day" in noon.stderr
    before = {p.name: p.read_bytes() for p in manifests.rglob("*.json")}
    assert len(before) == 2

    standin.reconfigure(StandinConfig(token=TOKEN))
    served = standin.stats.requests
    evening = await asyncio.to_thread(run_cli, "run", "--config", str(path), "--skip-committed", env=env)
    assert evening.returncode == 0, evening.stderr
    assert "already committed: movie/day (40 rows), person/day (40 rows); catching up tv/day" in evening.stderr
    after = {p.name: p.read_bytes() for p in manifests.rglob("*.json")}
    assert len(after) == 3 and all(after[name] == body for name, body in before.items())  # not replaced
    assert standin.stats.requests - served <= PAGES + 3  # tv/day's pages and the lookups, nothing else

    night = await asyncio.to_thread(run_cli, "run", "--config", str(path), "--skip-committed", env=env)
    assert night.returncode == 0 and "already committed for every feed" in night.stdout


async def test_a_catch_up_run_of_one_feed_still_writes_the_whole_days_report(
    tmp_path: Path, run_cli: CliRunner, tmdb_standin: StandinFactory
) -> None:
    """The 18:00 run fetches tv/day alone, but the report it writes (and the job commits) is the whole day's:
    movies and people from the lake, as the noon run committed them, in the config's order, led by movies."""
    standin = await tmdb_standin(token=TOKEN, list_errors={"tv/day": 401})
    path = tmdb_config(tmp_path, standin.base_url)
    document = json.loads(path.read_text(encoding="utf-8"))
    document["extractor"]["options"]["feeds"] = ["movie/day", "tv/day", "person/day"]
    report, page = tmp_path / "LATEST_UPDATE.md", tmp_path / "report.json"
    document["reporter"] = [
        {"type": "markdown", "options": {"path": str(report), "chart": False}},
        {"type": "json", "options": {"path": str(page)}},
    ]
    path.write_text(json.dumps(document), encoding="utf-8")
    env = {"TMDB_ACCESS_TOKEN": TOKEN}

    noon = await asyncio.to_thread(run_cli, "run", "--config", str(path), env=env)
    assert noon.returncode == 1
    standin.reconfigure(StandinConfig(token=TOKEN))
    evening = await asyncio.to_thread(run_cli, "run", "--config", str(path), "--skip-committed", env=env)
    assert evening.returncode == 0, evening.stderr
    assert "catching up tv/day" in evening.stderr

    text = report.read_text(encoding="utf-8")
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == ["## Trending movies, today", "## Trending TV shows, today", "## Trending people, today"]
    assert "- **Feeds:** trending movies, today; trending TV shows, today; trending people, today" in text
    assert "failed" not in text.lower()
    document = json.loads(page.read_text(encoding="utf-8"))
    assert [s["feed"]["media_type"] for s in document["sections"]] == ["movie", "tv", "person"]
    assert [s["status"] for s in document["sections"]] == ["committed"] * 3
    assert document["run"]["feed"] == {"media_type": "tv", "time_window": "day"}  # what this run fetched
    assert {entry["media_type"] for entry in document["top"]} == {"movie"}  # the report still leads with movies
