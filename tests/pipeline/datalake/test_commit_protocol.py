"""The commit protocol's other promises: concurrent runs, signals, leftovers, verified reads, repair.

Runs that must be real processes (two runs racing for a day, a run receiving SIGTERM) are
forked ``python -m pipeline`` children (``tests/support/faults.py``) reading a TMDB stand-in that
this process serves; everything else runs in-process against the local lake and moto.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import gzip
import hashlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pipeline.cli import main
from pipeline.commands._lake import configured_feed, lake_reader
from pipeline.config import load_config
from pipeline.datalake import LakeLoader, Layout, LockRecord, Manifest, schema
from pipeline.datalake.commit import ENCODE_BYTES, ENCODE_ROWS
from pipeline.errors import CommitConflict, ConfigError, LoadError, RegressionRefused
from pipeline.runner import new_context, run_pipeline
from pipeline.stage import Feed, Lookups
from stages.loaders.local import LocalLoader, LocalOptions
from stages.loaders.local_store import LocalStore
from stages.loaders.s3 import S3Loader, S3Options
from tests.support.cli import error_lines
from tests.support.fakes import NOW, TREND_DATE, batch, commit_info
from tests.support.faults import Child
from tests.support.fixtures_s3 import moto_checks_auth, object_keys, open_uploads
from tests.support.fixtures_tmdb import StandinFactory
from tests.support.lake import context_for, files, loader_for, rows
from tests.support.s3 import iam_user
from tests.support.sample import record_line, replay_config, sample_pages, write_config

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "tests/data/sample"
FEED = Feed()
TOKEN = "standin-token-for-protocol-tests"
LAYOUT = Layout()


def local_section(root: Path) -> dict[str, Any]:
    return {"type": "local", "options": {"root": str(root)}}


def s3_section(bucket: str, endpoint: str) -> dict[str, Any]:
    return {"type": "s3", "options": {"bucket": bucket, "endpoint_url": endpoint}}


def live(base_url: str, pages: int, loader: dict[str, Any]) -> dict[str, Any]:
    return {
        "extractor": {
            "type": "tmdb-trending",
            "options": {"base_url": base_url, "pages": pages, "concurrency": 1, "enrich": False, "rate_limit": 1000},
        },
        "transformer": {"type": "standardize"},
        "loader": loader,
    }


def commit_the_sample_day(tmp_path: Path) -> tuple[Path, Path]:
    """Run the sample's 2026-11-25 through the command line into ``tmp_path/lake``; returns the lake and the config."""
    lake = tmp_path / "lake"
    config = write_config(tmp_path / "c.yml", replay_config(local_section(lake), SAMPLE / "2026-11-25"))
    assert main(["run", "--config", str(config), "--date", "2026-11-25", "-q"]) == 0
    return lake, config


def replaying_one_page(tmp_path: Path, name: str, lake: Path, page: dict[str, Any]) -> Path:
    """A config writing to ``lake`` that replays ``page`` alone (from ``tmp_path/name``) for 2026-11-25."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "page-001.json").write_bytes(record_line(page))
    config = write_config(tmp_path / f"{name}.yml", replay_config(local_section(lake), SAMPLE / "2026-11-25"))
    config.write_text(config.read_text().replace(str(SAMPLE / "2026-11-25"), str(folder)))
    return config


async def until(condition: Callable[[], Awaitable[bool]], what: str, limit: float = 20.0) -> None:
    """Poll ``condition`` while this loop keeps serving the stand-in; bounded."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not await condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def local_loader(root: Path, day: dt.date) -> LocalLoader:
    return LocalLoader(LocalOptions(root=root), new_context(day), name="local")


# -- two real processes on the same day ------------------------------------------------------


@pytest.fixture(params=["local", "s3"])
def race_lake(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[dict[str, Any], LakeLoader[Any]]:
    """A lake for the race (its config section) and a loader on it for today's checks."""
    today = dt.datetime.now(dt.UTC).date()
    if request.param == "local":
        return local_section(tmp_path / "lake"), local_loader(tmp_path / "lake", today)
    request.getfixturevalue("aws_env")
    client, bucket = request.getfixturevalue("s3_client"), request.getfixturevalue("s3_bucket")
    endpoint = request.getfixturevalue("moto_endpoint")
    options = S3Options(bucket=bucket, endpoint_url=endpoint)
    return s3_section(bucket, endpoint), S3Loader(options, new_context(today), client=client)


@pytest.mark.parametrize("first", ["three-pages", "two-pages"])
async def test_two_runs_of_one_day_end_with_one_consistent_day_and_the_loser_says_why(
    first: str,
    race_lake: tuple[dict[str, Any], LakeLoader[Any]],
    tmp_path: Path,
    tmdb_standin: StandinFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    standin = await tmdb_standin(token=TOKEN)
    monkeypatch.setenv("TMDB_ACCESS_TOKEN", TOKEN)
    today = dt.datetime.now(dt.UTC).date()
    section, loader = race_lake
    argv = {
        pages: [
            "run",
            "--config",
            str(write_config(tmp_path / f"{pages}.yml", live(standin.base_url, n, section))),
            "-q",
        ]
        for pages, n in (("three-pages", 3), ("two-pages", 2))
    }
    second = "two-pages" if first == "three-pages" else "three-pages"
    children = {name: Child(argv[name], tmp_path, name=name) for name in (first, second)}
    lock = LAYOUT.lock_key(today, FEED)

    async def locked() -> bool:
        return await loader.store.get_object(lock) is not None

    async with loader:
        standin.open_gate.clear()  # the first run waits on its first page, holding the lock
        children[first].go()
        await until(locked, "the first run to take the day's lock")
        children[second].go()
        results = {second: await asyncio.to_thread(children[second].wait)}
        standin.open_gate.set()
        results[first] = await asyncio.to_thread(children[first].wait)

        assert results[first].code == 0, results[first].stderr
        loser = results[second]
        assert loser.code == 1 and len(error_lines(loser.stderr)) == 1, loser.stderr
        assert "another run is committing this day" in error_lines(loser.stderr)[0]
        day = await loader.read_day(today, FEED)
        assert day is not None and len(day) == {"three-pages": 60, "two-pages": 40}[first]
        report = await loader.repair(check=True)
        assert report.healthy, report
        assert await loader.store.get_object(lock) is None


async def test_two_runs_started_at_the_same_moment_leave_exactly_one_winner(
    tmp_path: Path, tmdb_standin: StandinFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    standin = await tmdb_standin(token=TOKEN)
    monkeypatch.setenv("TMDB_ACCESS_TOKEN", TOKEN)
    today = dt.datetime.now(dt.UTC).date()
    config = write_config(tmp_path / "live.yml", live(standin.base_url, 2, local_section(tmp_path / "lake")))
    children = [Child(["run", "--config", str(config), "-q"], tmp_path, name=f"run{n}") for n in (1, 2)]

    async def one_lost() -> bool:
        return any(c.err_path.exists() and "another run" in c.err_path.read_text() for c in children)

    standin.open_gate.clear()  # whoever wins waits on its first page until the other has lost
    for child in children:
        child.go()
    await until(one_lost, "one of the two runs to lose the race")
    standin.open_gate.set()
    results = [await asyncio.to_thread(child.wait) for child in children]

    assert sorted(r.code for r in results) == [0, 1], [r.stderr for r in results]
    loser = next(r for r in results if r.code == 1)
    assert "another run is committing this day" in loser.stderr
    async with local_loader(tmp_path / "lake", today) as loader:
        assert (await loader.repair(check=True)).healthy
        assert await loader.read_day(today, FEED) is not None


# -- signals ----------------------------------------------------------------------------------


async def test_sigterm_aborts_the_run_cleans_up_and_exits_143_with_one_line(
    tmp_path: Path, tmdb_standin: StandinFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    standin = await tmdb_standin(latency=0.2, token=TOKEN)
    monkeypatch.setenv("TMDB_ACCESS_TOKEN", TOKEN)
    today = dt.datetime.now(dt.UTC).date()
    lake = tmp_path / "lake"
    await run_pipeline(replay_config(local_section(lake), SAMPLE / "2026-11-24"), trend_date=today)
    before = {p: p.read_bytes() for p in lake.rglob("*") if p.is_file()}
    config = write_config(tmp_path / "live.yml", live(standin.base_url, 20, local_section(lake)))
    child = Child(["run", "--config", str(config), "-q"], tmp_path, name="terminated")

    async def streaming() -> bool:  # the run holds the lock and has its temp files open
        return any(lake.rglob(".*.tmp")) and (lake / "_locks").exists()

    child.go()
    await until(streaming, "the run to stream")
    os.kill(child.pid, signal.SIGTERM)
    result = await asyncio.to_thread(child.wait)

    assert result.code == 143, result.stderr
    assert error_lines(result.stderr) == [
        f"error: stopped by SIGTERM; nothing was committed; {today} keeps its previous data"
    ], result.stderr
    assert "Traceback" not in result.stderr
    assert {p: p.read_bytes() for p in lake.rglob("*") if p.is_file()} == before, "no temp file, no lock, no change"


# -- leftovers --------------------------------------------------------------------------------


async def test_the_s3_loader_aborts_old_uploads_nobody_owns_and_keeps_a_live_runs(
    s3_client: Any, s3_bucket: str, moto_endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    day = dt.date(2026, 11, 25)
    dead = LAYOUT.run_key("version", day, FEED, "deadrun00001")
    live_key = LAYOUT.run_key("raw", day - dt.timedelta(days=1), FEED, "liverun00001")
    outside = "someone-else/file.bin"
    for key in (dead, live_key, outside):
        await s3_client.create_multipart_upload(Bucket=s3_bucket, Key=key)
    record = LockRecord(
        run_id="liverun00001",
        trend_date=day - dt.timedelta(days=1),
        feed=FEED,
        host=socket.gethostname(),
        pid=os.getpid(),  # alive: this process
        started_at=dt.datetime.now(dt.UTC),
        objects=(live_key,),
    )
    lock = LAYOUT.lock_key(day - dt.timedelta(days=1), FEED)
    await s3_client.put_object(Bucket=s3_bucket, Key=lock, Body=record.to_bytes())
    caplog.set_level("INFO")
    # moto reports every upload as begun in 2010, so both lake uploads are "old"; only ownership differs.
    async with S3Loader(S3Options(bucket=s3_bucket, endpoint_url=moto_endpoint), new_context(day)) as loader:
        report = await loader.recover()

    assert sorted(await open_uploads(s3_client, s3_bucket)) == sorted([live_key, outside])
    assert report.actions == [f"removed the unfinished upload of s3://{s3_bucket}/{dead}, left by an interrupted run"]
    assert f"recovered: removed the unfinished upload of s3://{s3_bucket}/{dead}" in caplog.text


async def test_a_kill_during_a_multipart_upload_is_aborted_by_the_next_run(
    s3_client: Any, s3_bucket: str, moto_endpoint: str
) -> None:
    day = dt.date(2026, 11, 25)
    options = S3Options(bucket=s3_bucket, endpoint_url=moto_endpoint, part_size=5 * 1024 * 1024)
    dying = S3Loader(options, new_context(day), client=s3_client)
    dying_day = await dying.begin(FEED)
    [cleaned, _raw] = dying_day.sinks
    await cleaned.write(os.urandom(6 * 1024 * 1024))  # one part goes up: an upload is open
    await asyncio.sleep(0)
    uploads = await open_uploads(s3_client, s3_bucket)
    assert uploads == [cleaned.key]
    # The process "dies": its lock stays. Age it past lock_timeout, as a dead host's would be.
    lock = LAYOUT.lock_key(day, FEED)
    record = LockRecord.from_bytes((await dying.store.get_object(lock)).data)  # type: ignore[union-attr]
    assert record is not None
    old = LockRecord(**{**record.__dict__, "started_at": record.started_at - dt.timedelta(hours=2)})
    await s3_client.put_object(Bucket=s3_bucket, Key=lock, Body=old.to_bytes())
    await asyncio.wait([t for t in (cleaned.sink._inflight,) if t])  # type: ignore[attr-defined]

    await run_pipeline(
        replay_config(s3_section(s3_bucket, moto_endpoint), SAMPLE / "2026-11-25"), trend_date=day + dt.timedelta(1)
    )

    assert await open_uploads(s3_client, s3_bucket) == []
    assert not [k for k in await object_keys(s3_client, s3_bucket) if k.startswith("_locks/")]


# -- readers verify what they read --------------------------------------------------------------


async def test_a_reader_never_trusts_a_cleaned_file_that_does_not_match_its_manifest(tmp_path: Path) -> None:
    day = dt.date(2026, 11, 25)
    await run_pipeline(replay_config(local_section(tmp_path), SAMPLE / "2026-11-25"), trend_date=day)
    seed = tmp_path / LAYOUT.key("cleaned", day, FEED)
    good = seed.read_bytes()
    seed.write_bytes(b"trend_date,rank\n2026-11-25,1\n")  # changed behind the lake's back

    async with local_loader(tmp_path, day) as loader:
        frame = await loader.read_day(day, FEED)
        assert frame is not None and len(frame) == 57, "the manifest's version is read instead"
        check = await loader.repair(check=True)
        assert [p for p in check.problems if "not yet published" in p], check
        healed = await loader.repair()
        assert healed.actions and (await loader.repair(check=True)).healthy
    assert seed.read_bytes() == good

    manifest = json.loads((tmp_path / LAYOUT.key("manifest", day, FEED)).read_text())
    version = tmp_path / manifest["objects"]["cleaned"]["version_key"]
    version.unlink()
    seed.write_bytes(b"not,the,day\n")
    async with local_loader(tmp_path, day) as loader:
        with pytest.raises(LoadError, match="does not match its manifest; run `python -m pipeline repair`"):
            await loader.read_day(day, FEED)
        assert any("no copy does" in p for p in (await loader.repair(check=True)).problems)


async def test_a_damaged_file_that_matches_its_manifest_is_an_error_not_a_missing_day(tmp_path: Path) -> None:
    day = dt.date(2026, 11, 25)
    await run_pipeline(replay_config(local_section(tmp_path), SAMPLE / "2026-11-25"), trend_date=day)
    junk = b'\x00\xffnot a csv\n"unterminated'
    manifest_path = tmp_path / LAYOUT.key("manifest", day, FEED)
    manifest = json.loads(manifest_path.read_text())
    manifest["format"] = "parquet"
    manifest["objects"]["cleaned"]["sha256"] = hashlib.sha256(junk).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    (tmp_path / LAYOUT.key("cleaned", day, FEED)).write_bytes(junk)

    async with local_loader(tmp_path, day) as loader:
        with pytest.raises(LoadError, match=r"cannot read .*2026-11-25_movies.csv as parquet"):
            await loader.read_day(day, FEED)


async def test_a_manifest_that_is_not_json_is_a_load_error(tmp_path: Path) -> None:
    day = dt.date(2026, 11, 25)
    await run_pipeline(replay_config(local_section(tmp_path), SAMPLE / "2026-11-25"), trend_date=day)
    (tmp_path / LAYOUT.key("manifest", day, FEED)).write_text("{half")
    async with local_loader(tmp_path, day) as loader:
        with pytest.raises(LoadError, match=r"_manifests/2026/11/2026-11-25_movies\.json is not valid JSON"):
            await loader.read_day(day, FEED)


# -- the regression guard and repair through the command line -----------------------------------


def test_the_regression_guard_refuses_an_empty_day_changes_nothing_and_force_overrides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake, _ = commit_the_sample_day(tmp_path)
    before = {p: p.read_bytes() for p in lake.rglob("*") if p.is_file()}
    bad = replaying_one_page(tmp_path, "empty", lake, {"page": 1, "results": [], "total_pages": 1})
    capsys.readouterr()

    assert main(["run", "--config", str(bad), "--date", "2026-11-25", "-q"]) == 1
    err = capsys.readouterr().err
    assert error_lines(err) == [
        "error: loader 'local': refusing to commit 0 rows for 2026-11-25: TMDB sent no usable rows "
        "(an incident, or every record was dropped); if an empty day is right, run again with --force; "
        "nothing was committed; 2026-11-25 keeps its previous data"
    ]
    assert {p: p.read_bytes() for p in lake.rglob("*") if p.is_file()} == before, "nothing in the lake changed"

    assert main(["run", "--config", str(bad), "--date", "2026-11-25", "--force", "-q"]) == 0
    assert capsys.readouterr().out.startswith("wrote 0 rows from 1 pages for 2026-11-25")


def test_a_much_smaller_day_is_refused_with_the_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lake, _ = commit_the_sample_day(tmp_path)
    page = sample_pages()[0]
    page["results"] = page["results"][:5]
    small = replaying_one_page(tmp_path, "short", lake, page)
    capsys.readouterr()

    assert main(["run", "--config", str(small), "--date", "2026-11-25", "-q"]) == 1
    line = error_lines(capsys.readouterr().err)[0]
    assert "refusing to replace 2026-11-25 (57 rows, run " in line and "with 5 rows (under 50% of them)" in line
    ratio = ["--set", "loader.options.min_row_ratio=0.05"]
    assert main(["run", "--config", str(small), "--date", "2026-11-25", "-q", *ratio]) == 0


def test_repair_check_reports_and_repair_heals_through_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake, config = commit_the_sample_day(tmp_path)
    capsys.readouterr()
    assert main(["repair", "--config", str(config), "--check"]) == 0
    assert capsys.readouterr().out == f"{lake}: healthy (1 days checked)\n"

    orphan = lake / LAYOUT.run_key("version", dt.date(2026, 11, 24), FEED, "orphan000001")
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"left by hand")
    assert main(["repair", "--config", str(config), "--check"]) == 1
    out = capsys.readouterr().out
    assert f"found    {orphan}: a version no manifest names" in out
    assert orphan.exists(), "--check changes nothing"
    assert main(["repair", "--config", str(config)]) == 0
    assert f"healed   removed {orphan}, a version no manifest names" in capsys.readouterr().out
    assert not orphan.exists()
    assert main(["repair", "--config", str(config), "--check", "-q"]) == 0


# == healing, repair and edge cases on the local lake ========================================================
# States a crash would leave are forged on the real file system (a lock record of a dead run, a
# seed file that lags its manifest), then the next run or ``repair`` must heal them.

SEED = LAYOUT.key("cleaned", TREND_DATE, FEED)
MANIFEST = LAYOUT.key("manifest", TREND_DATE, FEED)
LOCK = LAYOUT.lock_key(TREND_DATE, FEED)


def version(run_id: str) -> str:
    return LAYOUT.run_key("version", TREND_DATE, FEED, run_id)


def raw(run_id: str) -> str:
    return LAYOUT.run_key("raw", TREND_DATE, FEED, run_id)


async def commit(root: Path, run_id: str, ids: range = range(1, 41), **facts: object) -> LocalLoader:
    """Commit ``TREND_DATE`` through a fresh local loader; returns it (closed)."""
    loader = loader_for(root, "csv", "monthly", TREND_DATE, run_id)
    async with loader:
        loader_day = await loader.begin(FEED)
        await loader_day.write_raw(batch(1, list(ids)))
        await loader_day.write(rows(TREND_DATE, ids))
        await loader_day.commit(commit_info(loader, **facts))
    return loader


def dead_lock(root: Path, run_id: str, objects: tuple[str, ...], previous_version: str | None) -> None:
    """The lock record a run that died on another host two hours ago leaves."""
    started = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    record = LockRecord(run_id, TREND_DATE, FEED, "gone-host", 1, started, objects, previous_version)
    (root / LOCK).parent.mkdir(parents=True, exist_ok=True)
    (root / LOCK).write_bytes(record.to_bytes())


# -- healing -------------------------------------------------------------------------------
async def test_a_run_that_died_after_its_manifest_is_rolled_forward(tmp_path: Path) -> None:
    await commit(tmp_path, "r1")
    old_seed, old_version = (tmp_path / SEED).read_bytes(), (tmp_path / version("r1")).read_bytes()
    await commit(tmp_path, "r2", range(101, 141))
    new_version = (tmp_path / version("r2")).read_bytes()
    # r2 died right after its manifest: the seed still holds r1's file, r1's version is still there
    (tmp_path / SEED).write_bytes(old_seed)
    (tmp_path / version("r1")).write_bytes(old_version)
    dead_lock(tmp_path, "r2", (version("r2"), raw("r2")), version("r1"))

    report = await loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r3").recover()
    assert report.actions == ["2026-11-25 movies: rolled forward to run r2, which had committed"]
    assert (tmp_path / SEED).read_bytes() == new_version
    assert files(tmp_path) == sorted([SEED, MANIFEST, version("r2"), raw("r1"), raw("r2")])


async def test_a_run_that_died_before_its_manifest_is_rolled_back(tmp_path: Path) -> None:
    await commit(tmp_path, "r1")
    good = (tmp_path / version("r1")).read_bytes()
    for key in (version("r2"), raw("r2")):
        (tmp_path / key).write_bytes(b"half of r2")
    (tmp_path / SEED).write_bytes(b"r2 was copying")
    dead_lock(tmp_path, "r2", (version("r2"), raw("r2")), version("r1"))

    report = await loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r3").recover()
    assert report.actions == ["2026-11-25 movies: rolled back run r2, which died before its commit"]
    assert (tmp_path / SEED).read_bytes() == good
    assert files(tmp_path) == sorted([SEED, MANIFEST, version("r1"), raw("r1")])


async def test_a_first_run_that_died_is_rolled_back_to_nothing(tmp_path: Path) -> None:
    (tmp_path / "_versions/2026/11").mkdir(parents=True)
    (tmp_path / version("r1")).write_bytes(b"half")
    dead_lock(tmp_path, "r1", (version("r1"),), None)
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r2")
    report = await loader.recover()
    assert report.actions == ["2026-11-25 movies: rolled back run r1, which died before its commit"]
    assert files(tmp_path) == []
    assert await loader.read_day(TREND_DATE, FEED) is None


async def test_an_unreadable_lock_record_is_removed(tmp_path: Path) -> None:
    (tmp_path / LOCK).parent.mkdir(parents=True)
    (tmp_path / LOCK).write_bytes(b'{"run_id": "cut')
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r2")
    assert (await loader.repair(check=True)).problems == [f"{tmp_path / LOCK}: left by a dead run; repair heals it"]
    assert (tmp_path / LOCK).exists()
    report = await loader.recover()
    assert report.actions == [f"removed the unreadable lock {tmp_path / LOCK} (its run wrote nothing yet)"]
    assert files(tmp_path) == []


async def test_a_dead_runs_temp_files_go_with_its_lock(tmp_path: Path) -> None:
    await commit(tmp_path, "r1")
    temp = tmp_path / "_versions/2026/11/.x.csv.run-r2.abc.tmp"
    other = tmp_path / "_versions/2026/11/.x.csv.run-r9.abc.tmp"
    temp.write_bytes(b"half")
    other.write_bytes(b"someone else's, young")
    dead_lock(tmp_path, "r2", (version("r2"),), version("r1"))
    seed = (tmp_path / SEED).stat().st_ino
    await loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r3").recover()
    assert not temp.exists() and other.exists()
    assert (tmp_path / SEED).stat().st_ino == seed, "a seed that matches its manifest is not copied again"


async def test_the_next_run_heals_first_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    await commit(tmp_path, "r1")
    dead_lock(tmp_path, "r2", (version("r2"),), version("r1"))
    with caplog.at_level(logging.WARNING, logger="pipeline.datalake.loader"):
        await commit(tmp_path, "r3", range(201, 241))
    assert "recovered: 2026-11-25 movies: rolled back run r2, which died before its commit" in caplog.text
    assert files(tmp_path) == sorted([SEED, MANIFEST, version("r3"), raw("r1"), raw("r3")])


# -- repair ----------------------------------------------------------------------------------
async def test_repair_publishes_a_lagging_seed_and_removes_orphan_versions(tmp_path: Path) -> None:
    await commit(tmp_path, "r1")
    good = (tmp_path / SEED).read_bytes()
    (tmp_path / SEED).write_bytes(b"stale")
    orphan = LAYOUT.run_key("version", TREND_DATE - dt.timedelta(days=1), FEED, "r0")
    (tmp_path / orphan).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / orphan).write_bytes(b"orphan")
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r2")

    checked = await loader.repair(check=True)
    assert (checked.days, checked.actions, checked.healthy, checked.lake) == (1, [], False, str(tmp_path))
    assert checked.problems == [
        f"{tmp_path / SEED}: not yet published from {tmp_path / version('r1')}",
        f"{tmp_path / orphan}: a version no manifest names",
    ]
    assert (tmp_path / SEED).read_bytes() == b"stale" and (tmp_path / orphan).exists()

    healed = await loader.repair()
    assert healed.actions == [
        f"published {tmp_path / SEED} from run r1",
        f"removed {tmp_path / orphan}, a version no manifest names",
    ]
    assert healed.problems == []
    assert (tmp_path / SEED).read_bytes() == good and not (tmp_path / orphan).exists()
    assert (await loader.repair(check=True)).healthy


async def test_repair_reports_a_day_no_copy_matches(tmp_path: Path) -> None:
    await commit(tmp_path, "r1")
    (tmp_path / SEED).write_bytes(b"damaged")
    (tmp_path / version("r1")).write_bytes(b"damaged too")
    report = await loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r2").repair()
    assert report.problems == [f"{tmp_path / SEED}: does not match {tmp_path / MANIFEST} and no copy does"]
    assert report.actions == []


async def test_repair_reports_leftovers_in_check_mode_and_removes_them_otherwise(tmp_path: Path) -> None:
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r2")
    temp = tmp_path / "raw_data/.x.jsonl.gz.run-r1.abc.tmp"
    temp.parent.mkdir(parents=True)
    temp.write_bytes(b"half")
    old = (NOW - dt.timedelta(days=1)).timestamp()
    os.utime(temp, (old, old))
    assert (await loader.repair(check=True)).problems == [f"the temp file {temp}: left by an interrupted run"]
    assert (await loader.repair()).actions == [f"removed the temp file {temp}, left by an interrupted run"]
    assert not temp.exists()


# -- the commit --------------------------------------------------------------------------------
async def test_a_day_whose_lock_is_held_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    await commit(tmp_path, "r1")
    before = files(tmp_path)
    holder = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r2")
    claim = await holder.store.claim_lock(LOCK)
    loser = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r3")
    with pytest.raises(
        CommitConflict, match=r"another run is committing this day \(2026-11-25 trending movies, today\)"
    ) as refused:
        await loser.begin(FEED)
    assert refused.value.outcome == "nothing was committed; 2026-11-25 keeps its previous data"
    await holder.store.release_lock(claim)
    assert files(tmp_path) == before


async def test_a_manifest_changed_since_begin_is_a_conflict_and_the_day_stays_as_it_was(tmp_path: Path) -> None:
    await commit(tmp_path, "r1")
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r2")
    loader_day = await loader.begin(FEED)
    await loader_day.write(rows(TREND_DATE, range(101, 141)))
    meddled = json.loads((tmp_path / MANIFEST).read_bytes())
    meddled["note"] = "another writer"
    (tmp_path / MANIFEST).write_text(json.dumps(meddled))
    with pytest.raises(CommitConflict, match=r"another run is committing this day .* changed since this run began"):
        await loader_day.commit(commit_info(loader))
    await loader_day.abort()
    assert json.loads((tmp_path / MANIFEST).read_bytes()) == meddled
    assert files(tmp_path) == sorted([SEED, MANIFEST, version("r1"), raw("r1")])


async def test_a_publish_that_fails_after_the_commit_point_keeps_the_new_day_and_the_next_run_finishes_it(
    tmp_path: Path,
) -> None:
    await commit(tmp_path, "r1")
    (tmp_path / SEED).unlink()
    (tmp_path / SEED).mkdir()  # the copy to the seed key cannot land
    (tmp_path / SEED / "in-the-way").write_text("x")
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r2")
    loader_day = await loader.begin(FEED)
    await loader_day.write(rows(TREND_DATE, range(101, 141)))
    with pytest.raises(OSError):
        await loader_day.commit(commit_info(loader))
    assert await loader_day.abort() == (
        "2026-11-25 was committed by run r2; the next run (or `python -m pipeline repair`) finishes publishing it"
    )
    assert (tmp_path / version("r2")).exists(), "past the commit point nothing of the new day is undone"
    record = LockRecord.from_bytes((tmp_path / LOCK).read_bytes())
    assert record is not None and record.run_id == "r2"

    (tmp_path / SEED / "in-the-way").unlink()
    (tmp_path / SEED).rmdir()
    day = await loader.read_day(TREND_DATE, FEED)  # the manifest's version, whatever the seed holds
    assert day is not None and list(day["id"]) == list(range(101, 141))
    report = await loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r3").recover()
    assert report.actions == ["2026-11-25 movies: rolled forward to run r2, which had committed"]
    assert (tmp_path / SEED).read_bytes() == (tmp_path / version("r2")).read_bytes()
    assert not (tmp_path / version("r1")).exists()


async def test_the_manifest_is_stable_json_with_the_runs_facts(tmp_path: Path) -> None:
    await commit(tmp_path, "r1", counters={"pages": 1}, dropped={"no title": 2}, transformer="t", pipeline_version="9")
    body = (tmp_path / MANIFEST).read_bytes()
    document = json.loads(body)
    assert body == json.dumps(document, indent=2, sort_keys=True).encode() + b"\n"
    assert document["feed"] == {"media_type": "movie", "time_window": "day"}
    assert (document["counters"], document["dropped"]) == ({"pages": 1}, {"no title": 2})
    assert document["built_by"] == {"transformer": "t", "pipeline_version": "9"}
    assert document["objects"]["raw"]["key"] == raw("r1")


async def test_a_run_id_that_already_committed_the_day_is_refused(tmp_path: Path) -> None:
    await commit(tmp_path, "r1")
    again = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r1")
    with pytest.raises(LoadError, match="run r1 already committed 2026-11-25"):
        await again.begin(FEED)
    assert not (tmp_path / LOCK).exists()


async def test_the_lookups_line_is_written_once_before_the_pages(tmp_path: Path) -> None:
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r1")
    lookups = Lookups({28: "Action"}, "https://image.example/w500")
    async with loader:
        loader_day = await loader.begin(FEED)
        for number in (1, 2):
            await loader_day.write_raw(dataclasses.replace(batch(number, [number]), lookups=lookups))
            await loader_day.write(rows(TREND_DATE, range(number, number + 1)))
        await loader_day.commit(commit_info(loader))
    lines = [json.loads(line) for line in gzip.decompress((tmp_path / raw("r1")).read_bytes()).splitlines()]
    assert ["lookups" in line for line in lines] == [True, False, False]
    assert [line.get("page") for line in lines[1:]] == [1, 2]


# -- the manifest as read -----------------------------------------------------------------------
def test_a_manifest_missing_its_fields_reads_as_empty() -> None:
    empty = Manifest({}, "etag")
    assert (empty.run_id, empty.cleaned, empty.version_key, empty.rows) == ("", {}, None, 0)
    odd = Manifest({"objects": ["not", "a", "mapping"], "rows": None, "run_id": 7}, "etag")
    assert (odd.run_id, odd.cleaned, odd.rows) == ("7", {}, 0)
    assert Manifest({"objects": {"cleaned": "x"}}, "e").cleaned == {}


async def test_a_manifest_without_a_seed_key_is_read_from_the_layouts_key(tmp_path: Path) -> None:
    await commit(tmp_path, "r1")
    document = json.loads((tmp_path / MANIFEST).read_bytes())
    del document["objects"]["cleaned"]["key"], document["objects"]["cleaned"]["version_key"]
    (tmp_path / MANIFEST).write_text(json.dumps(document))
    day = await loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r2").read_day(TREND_DATE, FEED)
    assert day is not None and len(day) == 40


def _per_row(frame: pd.DataFrame) -> float:
    return float(frame.memory_usage(deep=True, index=False).sum()) / len(frame)


def _streamed(root: Path) -> int:
    """Bytes of the run's cleaned version on disk so far (its temp file)."""
    return sum(p.stat().st_size for p in (root / "_versions").rglob(".*.tmp"))


@pytest.mark.parametrize(
    ("first", "rest", "first_batch"),
    [(100_000, 100_000, None), (1_200_000, 1_200_000, 1), (200_000, 100_000, 5)],
    ids=["even", "rows-over-a-mebibyte", "a-wide-first-row"],
)
async def test_rows_stream_to_the_lake_once_about_a_mebibyte_is_queued(
    tmp_path: Path, first: int, rest: int, first_batch: int | None
) -> None:
    """The first row's size sets the first batch; each batch's own rows set the next one."""
    head = rows(TREND_DATE, range(1, 2), title="T" * first + " {id}")
    # Rows enough for the two batches written below (a batch holds at most ENCODE_BYTES // rest of them), and
    # no more: the wide case used to build 29 rows of 1.2 MB and write two.
    count = 2 * max(1, ENCODE_BYTES // rest)
    day = pd.concat([head, rows(TREND_DATE, range(2, 2 + count), title="T" * rest + " {id}")], ignore_index=True)
    one_by_one = [day.iloc[[i]] for i in range(len(day))]
    n1 = max(1, int(ENCODE_BYTES / _per_row(one_by_one[0])))
    assert n1 == (first_batch or n1) and n1 < 15
    n2 = max(1, int(ENCODE_BYTES / _per_row(day.iloc[:n1])))
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r1")
    loader_day = await loader.begin(FEED)
    sizes = []
    for chunk in one_by_one[: n1 + n2]:
        await loader_day.write(chunk)
        sizes.append(_streamed(tmp_path))
    assert sizes[: n1 - 1] == [0] * (n1 - 1), "nothing is encoded before a batch is full"
    assert sizes[n1 - 1] > 0
    assert len(set(sizes[n1 - 1 : n1 + n2 - 1])) == 1, "the second batch waits for its own size"
    assert sizes[n1 + n2 - 1] > sizes[n1 - 1]
    await loader_day.abort()


async def test_repair_of_a_manifest_from_before_versions(tmp_path: Path) -> None:
    await commit(tmp_path, "r1")
    document = json.loads((tmp_path / MANIFEST).read_bytes())
    del document["objects"]["cleaned"]["version_key"]
    (tmp_path / MANIFEST).write_text(json.dumps(document))
    (tmp_path / version("r1")).unlink()
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r2")
    assert (await loader.repair(check=True)).healthy
    (tmp_path / SEED).write_bytes(b"damaged")
    report = await loader.repair()
    assert report.problems == [f"{tmp_path / SEED}: does not match {tmp_path / MANIFEST} and no copy does"]


async def test_a_publish_denied_past_the_commit_point_says_the_day_was_committed(
    s3_client: Any, s3_bucket: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    everything = {"Effect": "Allow", "Action": ["s3:*"], "Resource": ["*"]}
    no_seed = {"Effect": "Deny", "Action": ["s3:PutObject"], "Resource": [f"arn:aws:s3:::{s3_bucket}/cleaned_data/*"]}
    user = await iam_user(moto_endpoint, {"Version": "2012-10-17", "Statement": [everything, no_seed]})
    for name, value in user.items():
        monkeypatch.setenv(name, value)
    context = dataclasses.replace(context_for(TREND_DATE), run_id="r1")
    s3 = S3Loader(S3Options(bucket=s3_bucket, endpoint_url=moto_endpoint), context, name="s3")
    with moto_checks_auth(moto_endpoint):
        async with s3:
            s3_day = await s3.begin(FEED)
            await s3_day.write(rows(TREND_DATE, range(1, 41)))
            with pytest.raises(LoadError, match="AccessDenied") as caught:
                await s3_day.commit(commit_info(s3))
            await s3_day.abort()
    assert caught.value.outcome == (
        f"2026-11-25 was committed by run r1, but s3://{s3_bucket}/{SEED} may still hold the previous file; "
        "the next run (or `python -m pipeline repair`) finishes the commit"
    )
    assert await object_keys(s3_client, s3_bucket) == sorted([LOCK, MANIFEST, version("r1"), raw("r1")])


async def test_an_empty_chunk_first_is_fine(tmp_path: Path) -> None:
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r1")
    day = rows(TREND_DATE, range(1, 41))
    async with loader:
        loader_day = await loader.begin(FEED)
        await loader_day.write(day.iloc[:0])
        await loader_day.write(day)
        await loader_day.commit(commit_info(loader))
        back = await loader.read_day(TREND_DATE, FEED)
    assert back is not None and list(back["id"]) == list(range(1, 41))


async def test_a_parquet_day_read_without_pyarrow_is_a_load_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loader = loader_for(tmp_path, "parquet", "monthly", TREND_DATE, "r1")
    async with loader:
        loader_day = await loader.begin(FEED)
        await loader_day.write(rows(TREND_DATE, range(1, 41)))
        await loader_day.commit(commit_info(loader))
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(LoadError, match="format 'parquet' needs pyarrow"):
        await loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r2").read_day(TREND_DATE, FEED)


async def test_an_abort_that_cannot_remove_its_files_says_the_next_run_will(tmp_path: Path) -> None:
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r1")
    loader_day = await loader.begin(FEED)
    await loader_day.write(rows(TREND_DATE, range(1, 41)))
    (temp,) = (tmp_path / "_versions").rglob(".*.tmp")
    temp.unlink()
    (temp / "in-the-way").mkdir(parents=True)  # the temp file's name now holds a folder that unlink refuses
    assert await loader_day.abort() == (
        "nothing was committed; 2026-11-25 keeps its previous data, and the next run removes what this one left"
    )
    record = LockRecord.from_bytes((tmp_path / LOCK).read_bytes())
    assert record is not None and record.run_id == "r1", "the record stays, so the next run knows whose files they are"


# == the quieter promises, on the local lake =================================================================
# What a run says (its outcome, its log), what its lock records, and what ``repair``, ``recover``
# and the readers do with odd but possible lake states, forged on the real file system.

LOCKS = LAYOUT.root("lock") + "/"
PARQUET_LAYOUT = Layout(format="parquet")


async def commit_parquet(root: Path, run_id: str) -> None:
    loader = loader_for(root, "parquet", "monthly", TREND_DATE, run_id)
    async with loader:
        loader_day = await loader.begin(FEED)
        await loader_day.write(rows(TREND_DATE, range(1, 41)))
        await loader_day.commit(commit_info(loader))


async def test_a_run_on_a_healthy_lake_logs_no_recovery(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    await commit(tmp_path, "r1")
    with caplog.at_level(logging.WARNING, logger="pipeline.datalake.loader"):
        await commit(tmp_path, "r2", range(101, 141))
    assert caplog.records == []


async def test_a_run_that_reuses_raw_pages_locks_only_its_version(tmp_path: Path) -> None:
    await commit(tmp_path, "r1")
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r2")
    entry = {"key": raw("r1"), "bytes": 1, "sha256": "ab", "content_type": "application/gzip"}
    loader_day = await loader.begin(FEED, reuse_raw=entry)
    record = LockRecord.from_bytes((tmp_path / LOCK).read_bytes())
    assert record is not None and record.objects == (version("r2"),)
    await loader_day.write(rows(TREND_DATE, range(1, 41)))
    await loader_day.commit(commit_info(loader))
    assert json.loads((tmp_path / MANIFEST).read_bytes())["objects"]["raw"] == entry


async def test_the_lock_record_names_the_runs_objects_and_the_version_it_replaces(tmp_path: Path) -> None:
    await commit(tmp_path, "r1")
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r2")
    loader_day = await loader.begin(FEED)
    record = LockRecord.from_bytes((tmp_path / LOCK).read_bytes())
    assert record is not None
    assert (record.run_id, record.objects, record.previous_version) == ("r2", (version("r2"), raw("r2")), version("r1"))
    await loader_day.abort()


def test_the_lake_reader_is_the_configured_loader_and_refuses_one_without_a_lake(tmp_path: Path) -> None:
    pages = {"type": "replay", "options": {"path": str(tmp_path)}}
    local = {"type": "local", "options": {"root": str(tmp_path / "lake"), "format": "parquet"}}
    config = load_config({"extractor": pages, "transformer": {"type": "standardize"}, "loader": local}, env={})
    reader = lake_reader(config)
    assert isinstance(reader, LocalLoader) and reader.layout.format == "parquet"
    assert configured_feed(config) == Feed()
    jsonl = {"type": "jsonl", "options": {"folder": str(tmp_path)}}
    config = load_config({"extractor": pages, "transformer": {"type": "standardize"}, "loader": jsonl}, env={})
    with pytest.raises(ConfigError, match="loader 'jsonl' does not keep an object-store lake that can be read back"):
        lake_reader(config)


async def test_an_aborted_day_refuses_writes_and_leaves_nothing(tmp_path: Path) -> None:
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r1")
    loader_day = await loader.begin(FEED)
    assert await loader_day.abort() == "nothing was committed; 2026-11-25 keeps its previous data"
    with pytest.raises(LoadError, match="this day was already committed or aborted"):
        await loader_day.write(rows(TREND_DATE, range(1, 3)))
    with pytest.raises(LoadError, match="this day was already committed or aborted"):
        await loader_day.write_raw(batch(1, [1]))
    with pytest.raises(LoadError, match="this day was already committed or aborted"):
        await loader_day.commit(commit_info(loader))
    assert files(tmp_path) == []


async def test_a_chunk_without_the_schemas_columns_is_refused_as_it_is_written(tmp_path: Path) -> None:
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r1")
    loader_day = await loader.begin(FEED)
    with pytest.raises(LoadError, match="chunk lacks schema columns: title, genres"):
        await loader_day.write(rows(TREND_DATE, range(1, 3)).drop(columns=["genres", "title"]))
    await loader_day.abort()


async def test_a_begin_that_cannot_open_its_sinks_leaves_nothing_and_can_be_tried_again(tmp_path: Path) -> None:
    (tmp_path / "raw_data").write_bytes(b"a file where the raw zone's folder goes")
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r1")
    with pytest.raises(OSError):
        await loader.begin(FEED)
    assert files(tmp_path) == ["raw_data"]
    (tmp_path / "raw_data").unlink()
    loader_day = await loader.begin(FEED)
    await loader_day.write(rows(TREND_DATE, range(1, 41)))
    await loader_day.commit(commit_info(loader))
    assert files(tmp_path) == sorted([SEED, MANIFEST, version("r1"), raw("r1")])


async def test_each_run_measures_its_own_rows_to_size_its_batches(tmp_path: Path) -> None:
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r1")
    loader_day = await loader.begin(FEED)
    await loader_day.write(rows(TREND_DATE, range(1, 2), title="T" * 1_200_000 + " {id}"))
    assert _streamed(tmp_path) > 0, "a row over a mebibyte is a batch of its own"
    await loader_day.abort()
    loader_day = await loader.begin(FEED)
    await loader_day.write(rows(TREND_DATE, range(1, 2), title="T" * 200_000 + " {id}"))
    assert _streamed(tmp_path) == 0, "a row a fifth of a mebibyte wide waits for the next ones"
    await loader_day.abort()


async def test_the_manifest_holds_every_fact_of_the_commit(tmp_path: Path) -> None:
    finished = NOW + dt.timedelta(minutes=3)
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r1")
    async with loader:
        loader_day = await loader.begin(FEED)
        await loader_day.write_raw(batch(1, list(range(1, 41))))
        await loader_day.write(rows(TREND_DATE, range(1, 41)))
        written = (await loader_day.commit(
            commit_info(loader, finished_at=finished, counters={"pages": 1}, dropped={"no title": 2})
        )).outputs
    cleaned, raw_file = (tmp_path / version("r1")).read_bytes(), (tmp_path / raw("r1")).read_bytes()
    assert json.loads((tmp_path / MANIFEST).read_bytes()) == {
        "protocol": 2,
        "schema_version": schema.SCHEMA_VERSION,
        "run_id": "r1",
        "trend_date": "2026-11-25",
        "feed": {"media_type": "movie", "time_window": "day"},
        "started_at": NOW.isoformat(),
        "finished_at": finished.isoformat(),
        "rows": 40,
        "format": "csv",
        "layout": "monthly",
        "objects": {
            "cleaned": {
                "key": SEED,
                "version_key": version("r1"),
                "bytes": len(cleaned),
                "sha256": hashlib.sha256(cleaned).hexdigest(),
                "content_type": "text/csv; charset=utf-8",
            },
            "raw": {
                "key": raw("r1"),
                "bytes": len(raw_file),
                "sha256": hashlib.sha256(raw_file).hexdigest(),
                "content_type": "application/gzip",
            },
        },
        "built_by": {"transformer": "", "pipeline_version": ""},
        "counters": {"pages": 1},
        "dropped": {"no title": 2},
    }
    assert written == {
        "cleaned": str(tmp_path / SEED),
        "raw": str(tmp_path / raw("r1")),
        "manifest": str(tmp_path / MANIFEST),
    }


async def test_a_committed_day_is_over_writes_are_refused_and_abort_does_nothing(tmp_path: Path) -> None:
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r1")
    loader_day = await loader.begin(FEED)
    await loader_day.write(rows(TREND_DATE, range(1, 41)))
    committed = await loader_day.commit(commit_info(loader))
    assert committed.outcome == "2026-11-25 was committed by run r1"
    before = {name: (tmp_path / name).read_bytes() for name in files(tmp_path)}
    with pytest.raises(LoadError, match="this day was already committed or aborted"):
        await loader_day.write(rows(TREND_DATE, range(1, 3)))
    assert await loader_day.abort() == "2026-11-25 was committed by run r1"
    assert {name: (tmp_path / name).read_bytes() for name in files(tmp_path)} == before


async def test_a_day_is_refused_exactly_below_its_share_of_the_previous_rows(tmp_path: Path) -> None:
    await commit(tmp_path, "r1")  # 40 rows; the default min_row_ratio is 0.5
    smaller = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r2")
    smaller_day = await smaller.begin(FEED)
    await smaller_day.write(rows(TREND_DATE, range(1, 20)))
    with pytest.raises(RegressionRefused, match=r"refusing to replace 2026-11-25 \(40 rows, run r1\) with 19 rows"):
        await smaller_day.commit(commit_info(smaller))
    await smaller_day.abort()
    await commit(tmp_path, "r3", range(1, 21))
    assert json.loads((tmp_path / MANIFEST).read_bytes())["rows"] == 20


async def test_a_run_refused_for_a_held_lock_is_told_who_holds_it(tmp_path: Path) -> None:
    holder = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r1")
    holder_day = await holder.begin(FEED)
    loser = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r2")
    with pytest.raises(CommitConflict, match=rf": run r1 on {socket.gethostname()} \(pid {os.getpid()}\) since 20"):
        await loser.begin(FEED)
    await holder_day.abort()


# -- races: another run acts between a listing and what follows it ----------------------------
class RacingStore(LocalStore):
    """The local store, where another process acts right after a listing: the moment a race needs."""

    after_listing: dict[str, Callable[[], object]]

    async def list_keys(self, prefix: str) -> list[str]:
        keys = await super().list_keys(prefix)
        action = self.after_listing.pop(prefix, None)
        if action is not None:
            action()
        return keys


class RacingLake(LocalLoader):
    """A local loader over a ``RacingStore``."""

    def __init__(self, root: Path, run_id: str) -> None:
        plain = loader_for(root, "csv", "monthly", TREND_DATE, run_id)
        super().__init__(plain.options, plain.context, name=plain.name)
        self.after_listing: dict[str, Callable[[], object]] = {}

    def build_store(self) -> RacingStore:
        store = RacingStore(self.options.root, writer=self.context.run_id, stage=self.name)
        store.after_listing = self.after_listing
        return store


async def test_a_run_that_dies_between_recovery_and_the_claim_is_healed_by_the_claim(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await commit(tmp_path, "r1")
    loader = RacingLake(tmp_path, "r3")

    def r2_dies() -> None:
        (tmp_path / version("r2")).write_bytes(b"half of r2")
        dead_lock(tmp_path, "r2", (version("r2"),), version("r1"))

    loader.after_listing[LOCKS] = r2_dies
    with caplog.at_level(logging.WARNING, logger="pipeline.datalake.loader"):
        loader_day = await loader.begin(FEED)
    assert caplog.messages == ["recovered: 2026-11-25 movies: rolled back run r2, which died before its commit"]
    assert not (tmp_path / version("r2")).exists()
    await loader_day.abort()
    assert not (tmp_path / LOCK).exists()


async def test_a_lock_healed_at_the_claim_is_not_kept_when_the_run_then_fails(tmp_path: Path) -> None:
    await commit(tmp_path, "r1")
    loader = RacingLake(tmp_path, "r1")  # the same run id: refused once the lock is held
    loader.after_listing[LOCKS] = lambda: dead_lock(tmp_path, "r2", (version("r2"),), version("r1"))
    with pytest.raises(LoadError, match="run r1 already committed"):
        await loader.begin(FEED)
    assert not (tmp_path / LOCK).exists(), "healed, so nothing is left for the next run"


async def test_a_heal_at_the_claim_that_fails_keeps_the_dead_runs_record(tmp_path: Path) -> None:
    await commit(tmp_path, "r1")
    loader = RacingLake(tmp_path, "r3")

    def r2_dies_and_the_manifest_is_damaged() -> None:
        dead_lock(tmp_path, "r2", (version("r2"),), version("r1"))
        (tmp_path / MANIFEST).write_bytes(b"{not json")

    loader.after_listing[LOCKS] = r2_dies_and_the_manifest_is_damaged
    with pytest.raises(LoadError, match="is not valid JSON"):
        await loader.begin(FEED)
    record = LockRecord.from_bytes((tmp_path / LOCK).read_bytes())
    assert record is not None and record.run_id == "r2", "kept, so a later run can still undo r2"


async def test_a_heal_during_recovery_that_fails_keeps_the_dead_runs_record(tmp_path: Path) -> None:
    await commit(tmp_path, "r1")
    dead_lock(tmp_path, "r2", (version("r2"),), version("r1"))
    (tmp_path / MANIFEST).write_bytes(b"{not json")
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r3")
    with pytest.raises(LoadError, match="is not valid JSON"):
        await loader.recover()
    record = LockRecord.from_bytes((tmp_path / LOCK).read_bytes())
    assert record is not None and record.run_id == "r2", "kept, so a later run can still undo r2"
    (tmp_path / MANIFEST).unlink()  # once the damage is gone, the next recovery finishes the job
    await loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r4").recover()
    assert not (tmp_path / LOCK).exists()


async def test_repair_says_which_manifest_vanished_while_it_read_the_lake(tmp_path: Path) -> None:
    await commit(tmp_path, "r1")
    loader = RacingLake(tmp_path, "r2")
    loader.after_listing[LAYOUT.root("manifest") + "/"] = (tmp_path / MANIFEST).unlink
    report = await loader.repair()
    assert report.problems[0] == f"{tmp_path / MANIFEST} disappeared while it was read"
    assert report.problems[1:] == [f"{tmp_path / version('r1')}: no readable manifest names it; left alone"]
    assert (tmp_path / version("r1")).exists()


# -- healing odd states ------------------------------------------------------------------------
async def test_an_empty_lock_file_of_a_run_that_died_before_its_record_is_removed_quietly(tmp_path: Path) -> None:
    lock_file = tmp_path / LOCK.removesuffix(".json")
    lock_file = lock_file.with_name(lock_file.name + ".lock")
    lock_file.parent.mkdir(parents=True)
    lock_file.write_bytes(b"")
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r2")
    assert (await loader.repair(check=True)).healthy
    assert lock_file.exists()
    report = await loader.recover()
    assert (report.actions, report.problems) == ([], [])
    assert files(tmp_path) == []


async def test_a_first_run_that_died_after_its_manifest_is_rolled_forward(tmp_path: Path) -> None:
    await commit(tmp_path, "r1")
    (tmp_path / SEED).unlink()  # r1 died before publishing
    dead_lock(tmp_path, "r1", (version("r1"), raw("r1")), None)
    report = await loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r2").recover()
    assert report.actions == ["2026-11-25 movies: rolled forward to run r1, which had committed"]
    assert (tmp_path / SEED).read_bytes() == (tmp_path / version("r1")).read_bytes()


async def test_rolling_back_over_a_manifest_from_before_versions_leaves_its_seed_to_repair(tmp_path: Path) -> None:
    await commit(tmp_path, "r1")
    document = json.loads((tmp_path / MANIFEST).read_bytes())
    del document["objects"]["cleaned"]["version_key"]
    (tmp_path / MANIFEST).write_text(json.dumps(document))
    (tmp_path / version("r1")).unlink()
    (tmp_path / SEED).write_bytes(b"r2 was copying")
    dead_lock(tmp_path, "r2", (version("r2"),), None)
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r3")
    report = await loader.recover()
    assert report.actions == ["2026-11-25 movies: rolled back run r2, which died before its commit"]
    assert (tmp_path / SEED).read_bytes() == b"r2 was copying", "no copy to publish from"
    assert (await loader.repair(check=True)).problems == [
        f"{tmp_path / SEED}: does not match {tmp_path / MANIFEST} and no copy does"
    ]


async def test_repair_check_names_the_lake_for_a_manifest_without_a_seed_key(tmp_path: Path) -> None:
    await commit(tmp_path, "r1")
    document = json.loads((tmp_path / MANIFEST).read_bytes())
    del document["objects"]["cleaned"]["key"]
    (tmp_path / MANIFEST).write_text(json.dumps(document))
    before = files(tmp_path)
    report = await loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r2").repair(check=True)
    assert report.problems == [f"{tmp_path}: not yet published from {tmp_path / version('r1')}"]
    assert files(tmp_path) == before


async def test_a_file_in_the_lock_folder_that_is_not_a_lock_is_left_alone(tmp_path: Path) -> None:
    notes = tmp_path / LOCKS / "notes.txt"
    notes.parent.mkdir(parents=True)
    notes.write_text("not a lock")
    report = await loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r1").recover()
    assert (report.actions, report.problems) == ([], [])
    assert files(tmp_path) == [f"{LOCKS}notes.txt"]


# -- the run's own mistakes --------------------------------------------------------------------
async def test_begin_twice_is_refused_and_the_first_run_goes_on(tmp_path: Path) -> None:
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r1")
    loader_day = await loader.begin(FEED)
    with pytest.raises(CommitConflict, match=r"another run is committing this day .*: run r1 on "):
        await loader.begin(FEED)  # the day's lock is held by the first day, even within one loader
    await loader_day.write(rows(TREND_DATE, range(1, 41)))
    await loader_day.commit(commit_info(loader))
    assert files(tmp_path) == sorted([SEED, MANIFEST, version("r1"), raw("r1")])


async def test_parquet_whose_pyarrow_went_away_is_a_load_error_at_begin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loader = loader_for(tmp_path, "parquet", "monthly", TREND_DATE, "r1")  # validated while pyarrow is there
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(LoadError, match="format 'parquet' needs pyarrow"):
        await loader.begin(FEED)
    assert files(tmp_path) == []


async def test_a_manifest_that_is_json_but_not_an_object_is_a_load_error(tmp_path: Path) -> None:
    await commit(tmp_path, "r1")
    (tmp_path / MANIFEST).write_text("[]")
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r2")
    with pytest.raises(LoadError, match=r"is not a manifest \(not a JSON object\)"):
        await loader.read_day(TREND_DATE, FEED)


async def test_a_day_from_before_versions_is_read_from_its_manifests_key_whatever_the_configured_format(
    tmp_path: Path,
) -> None:
    await commit_parquet(tmp_path, "r1")
    document = json.loads((tmp_path / MANIFEST).read_bytes())
    del document["objects"]["cleaned"]["version_key"]
    (tmp_path / MANIFEST).write_text(json.dumps(document))
    (tmp_path / PARQUET_LAYOUT.run_key("version", TREND_DATE, FEED, "r1")).unlink()
    day = await loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r2").read_day(TREND_DATE, FEED)
    assert day is not None and list(day["id"]) == list(range(1, 41))


async def test_an_empty_day_commits_when_forced(tmp_path: Path) -> None:
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r1", force=True)
    async with loader:
        loader_day = await loader.begin(FEED)
        await loader_day.write(rows(TREND_DATE, range(1, 3)).iloc[:0])
        await loader_day.commit(commit_info(loader))
        day = await loader.read_day(TREND_DATE, FEED)
    assert day is not None and len(day) == 0 and list(day.columns) == list(schema.COLUMN_NAMES)


async def test_narrow_pages_are_encoded_encode_rows_at_a_time(tmp_path: Path) -> None:
    """TMDB pages of 20 rows: nothing is streamed until ``ENCODE_ROWS`` are queued, then they all are at once."""
    page = 20
    pages = [rows(TREND_DATE, range(n, n + page)) for n in range(1, 2 * ENCODE_ROWS + 1, page)]
    assert ENCODE_BYTES / _per_row(pages[0]) > 2 * ENCODE_ROWS, "rows this narrow are batched by count"
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r1")
    loader_day = await loader.begin(FEED)
    sizes = []
    for chunk in pages:
        await loader_day.write(chunk)
        sizes.append(_streamed(tmp_path))
    full = ENCODE_ROWS // page
    assert sizes[: full - 1] == [0] * (full - 1), "nothing is encoded before ENCODE_ROWS rows are queued"
    assert sizes[full - 1] > 0
    assert len(set(sizes[full - 1 : 2 * full - 1])) == 1, "the next batch waits for ENCODE_ROWS rows of its own"
    assert sizes[2 * full - 1] > sizes[full - 1]
    await loader_day.abort()


async def test_wide_rows_not_yet_in_the_schemas_dtypes_are_measured_by_their_text(tmp_path: Path) -> None:
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r1")
    loader_day = await loader.begin(FEED)
    await loader_day.write(rows(TREND_DATE, range(1, 2), title="T" * 1_200_000 + " {id}").astype(object))
    assert _streamed(tmp_path) > 0, "a row over a mebibyte is a batch of its own, whatever its dtypes"
    await loader_day.abort()


async def test_a_batch_is_sized_by_the_rows_own_bytes_not_their_index(tmp_path: Path) -> None:
    """Rows of exactly ENCODE_BYTES / 10 bytes make batches of 10: the index adds nothing."""
    one = rows(TREND_DATE, range(1, 2), title="{id}")
    per_row = int(one.memory_usage(deep=True, index=False).sum())
    title = "T" * (ENCODE_BYTES // 10 - per_row) + "{id}"
    chunks = [rows(TREND_DATE, range(i, i + 1), title=title) for i in range(1, 11)]
    assert ENCODE_BYTES // chunks[0].memory_usage(deep=True, index=False).sum() == 10
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r1")
    loader_day = await loader.begin(FEED)
    for chunk in chunks[:9]:
        await loader_day.write(chunk)
    assert _streamed(tmp_path) == 0
    await loader_day.write(chunks[9])
    assert _streamed(tmp_path) > 0
    await loader_day.abort()
