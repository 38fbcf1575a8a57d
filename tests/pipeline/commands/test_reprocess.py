"""``reprocess``: rebuild cleaned days from the raw zone, atomically, idempotently, raw zone untouched."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main
from pipeline.commands.reprocess import reprocess
from pipeline.config import load_config
from pipeline.datalake import Layout
from pipeline.runner import project_version, run_pipeline
from pipeline.stage import Feed
from tests.support.cli import CliRunner
from tests.support.fixtures_s3 import get_object, object_keys
from tests.support.sample import replay_config, write_config

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "tests/data/sample"
FEED = Feed()
LAYOUT = Layout()
DAYS = (dt.date(2026, 11, 24), dt.date(2026, 11, 25))


class Store:
    """Reads a lake's objects without going through a loader."""

    def __init__(self, read: Any, keys: Any) -> None:
        self.read, self.keys = read, keys

    async def snapshot(self, prefix: str) -> dict[str, bytes]:
        return {key: await self.read(key) for key in await self.keys() if key.startswith(prefix)}


@pytest.fixture(params=["local", "s3"])
def lake_and_store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[dict[str, Any], Store]:
    if request.param == "local":
        root = tmp_path / "lake"

        async def read_local(key: str) -> bytes:
            return (root / key).read_bytes()

        async def keys_local() -> list[str]:
            return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

        return {"type": "local", "options": {"root": str(root)}}, Store(read_local, keys_local)
    client, bucket = request.getfixturevalue("s3_client"), request.getfixturevalue("s3_bucket")
    endpoint = request.getfixturevalue("moto_endpoint")

    async def read_s3(key: str) -> bytes:
        return await get_object(client, bucket, key)

    async def keys_s3() -> list[str]:
        return await object_keys(client, bucket)

    return {"type": "s3", "options": {"bucket": bucket, "endpoint_url": endpoint}}, Store(read_s3, keys_s3)


async def test_reprocess_rebuilds_each_day_byte_for_byte_and_never_touches_the_raw_zone(
    lake_and_store: tuple[dict[str, Any], Store],
) -> None:
    section, store = lake_and_store
    for day in DAYS:
        await run_pipeline(replay_config(section, SAMPLE / day.isoformat()), trend_date=day)
    cleaned = await store.snapshot("cleaned_data/")
    raw = await store.snapshot("raw_data/")
    manifests = await store.snapshot("_manifests/")

    summary = await reprocess(load_config(replay_config(section)), DAYS[0] - dt.timedelta(days=1), DAYS[1])

    before = DAYS[0] - dt.timedelta(days=1)
    assert (summary.rebuilt, summary.skipped, summary.failed) == ([(d, FEED) for d in DAYS], [(before, FEED)], {})
    assert summary.describe() == "rebuilt 2, skipped 1 (no raw zone), failed 0"
    assert await store.snapshot("cleaned_data/") == cleaned, "the same transformer rebuilds the same bytes"
    assert await store.snapshot("raw_data/") == raw, "the raw zone is read, never written"
    for key, before in manifests.items():
        old, new = json.loads(before), json.loads(await store.read(key))
        assert new["run_id"] != old["run_id"]
        assert new["objects"]["raw"] == old["objects"]["raw"], "the new manifest names the same raw pages"
        assert new["built_by"] == {"transformer": "standardize", "pipeline_version": project_version()}
    again = await reprocess(load_config(replay_config(section)), DAYS[0], DAYS[1])
    assert again.rebuilt == [(d, FEED) for d in DAYS] and await store.snapshot("cleaned_data/") == cleaned, "idempotent"


async def test_a_raw_file_no_manifest_names_is_not_a_raw_zone_and_the_day_is_skipped(tmp_path: Path) -> None:
    # A raw file at the day's key without a run tag was never written by this protocol: nothing vouches for it.
    root = tmp_path / "lake"
    day = DAYS[1]
    stray = root / LAYOUT.key("raw", day, FEED)
    stray.parent.mkdir(parents=True)
    lines = [(SAMPLE / day.isoformat() / name).read_bytes().strip() for name in ("_lookups.json", "page-001.json")]
    stray.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    before = stray.read_bytes()
    section = {"type": "local", "options": {"root": str(root)}}

    summary = await reprocess(load_config(replay_config(section)), day, day)

    assert (summary.rebuilt, summary.skipped) == ([], [(day, FEED)]), summary.failed
    assert not (root / LAYOUT.key("manifest", day, FEED)).exists()
    assert stray.read_bytes() == before
    assert not list((root / "raw_data").rglob("*.run-*")), "no new raw object"


def test_a_failing_day_keeps_its_cleaned_file_the_others_go_on_and_the_exit_is_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "lake"
    section = {"type": "local", "options": {"root": str(root)}}
    path = tmp_path / "c.yml"
    for day in DAYS:
        path.write_text(json.dumps(replay_config(section, SAMPLE / day.isoformat())))
        assert main(["run", "--config", str(path), "--date", day.isoformat(), "-q"]) == 0
    manifest = json.loads((root / LAYOUT.key("manifest", DAYS[0], FEED)).read_text())
    raw = root / manifest["objects"]["raw"]["key"]
    raw.write_bytes(raw.read_bytes() + b"tampered")
    cleaned = (root / LAYOUT.key("cleaned", DAYS[0], FEED)).read_bytes()
    capsys.readouterr()

    code = main(["reprocess", "--config", str(path), "--from", DAYS[0].isoformat(), "--to", DAYS[1].isoformat()])

    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == "rebuilt 1, skipped 0 (no raw zone), failed 1\n"
    assert "reprocess 1/2: 2026-11-24 movie/day failed: " in captured.err
    assert "does not match its manifest's sha256" in captured.err
    assert "reprocess 2/2: 2026-11-25 movie/day rebuilt (57 rows)" in captured.err
    assert (root / LAYOUT.key("cleaned", DAYS[0], FEED)).read_bytes() == cleaned


def test_reprocess_rejects_a_range_that_ends_before_it_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yml"
    path.write_text(json.dumps(replay_config({"type": "local", "options": {"root": str(tmp_path)}})))
    assert main(["reprocess", "--config", str(path), "--from", "2026-11-25", "--to", "2026-11-01"]) == 2
    assert capsys.readouterr().err == "error: --to 2026-11-01 is before --from 2026-11-25\n"


# -- several feeds -----------------------------------------------------------------------------------
TOKEN = "standin-token-reprocess01"
FEEDS = ["movie/day", "tv/day", "person/day"]
TODAY = dt.datetime.now(dt.UTC).date()  # a live list is labelled today


@pytest.fixture(scope="module")
def three_feed_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run of three feeds (a page each) against the TMDB stand-in, once for the module: its lake and config."""
    from tests.support.tmdb_standin import StandinConfig, TmdbStandin

    folder = tmp_path_factory.mktemp("three-feeds")

    async def run_once() -> None:
        standin = TmdbStandin(StandinConfig(token=TOKEN, total_pages=50))
        await standin.start()
        try:
            extractor = {"base_url": standin.base_url, "feeds": FEEDS, "pages": 1, "rate_limit": 1000}
            document = replay_config({"type": "local", "options": {"root": str(folder / "lake")}})
            document["extractor"] = {"type": "tmdb-trending", "options": extractor}
            result = await run_pipeline(document, trend_date=TODAY)
            assert result.ok, result.failed
            (folder / "c.yml").write_text(json.dumps(document), encoding="utf-8")
        finally:
            await standin.stop()

    with pytest.MonkeyPatch.context() as env:
        env.setenv("TMDB_ACCESS_TOKEN", TOKEN)
        asyncio.run(run_once())
    return folder


def manifests(root: Path) -> dict[str, bytes]:
    """Every manifest of the lake, by feed spec."""
    found = {}
    for path in (root / "_manifests").rglob("*.json"):
        feed = json.loads(path.read_bytes())["feed"]
        found[f"{feed['media_type']}/{feed['time_window']}"] = path.read_bytes()
    return found


def test_feed_rebuilds_only_the_named_feeds_and_without_it_every_configured_feed(
    three_feed_lake: Path, tmp_path: Path, run_cli: CliRunner
) -> None:
    root = tmp_path / "lake"
    shutil.copytree(three_feed_lake / "lake", root)
    document = json.loads((three_feed_lake / "c.yml").read_text(encoding="utf-8"))
    document["loader"]["options"]["root"] = str(root)
    config = str(write_config(tmp_path / "c.yml", document))
    before = manifests(root)
    cleaned = {p: p.read_bytes() for p in (root / "cleaned_data").rglob("*.csv")}
    assert sorted(before) == sorted(FEEDS) and len(cleaned) == 3

    done = run_cli("reprocess", "--config", config, "--from", TODAY.isoformat(), "--feed", "person/day")

    assert (done.returncode, done.stdout) == (0, "rebuilt 1, skipped 0 (no raw zone), failed 0\n"), done.stderr
    assert f"reprocess 1/1: {TODAY} person/day rebuilt (20 rows)" in done.stderr
    after = manifests(root)
    assert {spec: after[spec] == before[spec] for spec in FEEDS} == {"movie/day": True, "tv/day": True,
                                                                     "person/day": False}  # fmt: skip
    people_before, people_after = json.loads(before["person/day"]), json.loads(after["person/day"])
    assert people_after["objects"]["raw"] == people_before["objects"]["raw"], "the same raw pages"
    assert {p: p.read_bytes() for p in cleaned} == cleaned, "the same transformer rebuilds the same people"

    every = run_cli("reprocess", "--config", config, "--from", TODAY.isoformat())

    assert every.returncode == 0, every.stderr
    assert (
        every.stdout
        == "rebuilt 3, skipped 0 (no raw zone), failed 0 (days of 3 feeds: movie/day, tv/day, person/day)\n"
    )
    assert [line.split(": ", 1)[1] for line in every.stderr.splitlines() if "reprocess " in line] == [
        f"reprocess 1/3: {TODAY} movie/day rebuilt (20 rows)",
        f"reprocess 2/3: {TODAY} tv/day rebuilt (20 rows)",
        f"reprocess 3/3: {TODAY} person/day rebuilt (20 rows)",
    ]
    assert all(manifests(root)[spec] != after[spec] for spec in FEEDS)


@pytest.mark.parametrize(
    ("feed", "message"),
    [
        ("tv/week", "error: --feed tv/week: not a feed of this config; it has movie/day, tv/day, person/day\n"),
        ("people/day", "error: --feed: expected media/window with media one of movie, tv, person, all"),
    ],
    ids=["not-configured", "not-a-feed"],
)
def test_a_feed_the_config_lacks_is_a_one_line_usage_error_and_nothing_is_rebuilt(
    three_feed_lake: Path, run_cli: CliRunner, feed: str, message: str
) -> None:
    before = manifests(three_feed_lake / "lake")
    done = run_cli("reprocess", "--config", str(three_feed_lake / "c.yml"), "--from", TODAY.isoformat(), "--feed", feed)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(message) and len(done.stderr.splitlines()) == 1, done.stderr
    assert manifests(three_feed_lake / "lake") == before
