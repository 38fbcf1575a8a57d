"""The commit protocol's other promises: concurrent runs, signals, leftovers, verified reads, repair.

Runs that must be real processes (two runs racing for a day, a run receiving SIGTERM) are
forked ``python -m pipeline`` children (``tests/support/faults.py``) reading a TMDB stand-in that
this process serves; everything else runs in-process against the local lake and moto.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main
from pipeline.datalake import Layout, LockRecord, ObjectLakeLoader
from pipeline.errors import LoadError
from pipeline.runner import new_context, run_pipeline
from pipeline.stage import Feed
from stages.loaders.local import LocalLoader, LocalOptions
from stages.loaders.s3 import S3Loader, S3Options
from tests.support.cli import error_lines
from tests.support.faults import Child
from tests.support.fixtures_s3 import object_keys, open_uploads
from tests.support.fixtures_tmdb import StandinFactory
from tests.support.sample import record_line, sample_pages

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "tests/data/sample"
FEED = Feed()
TOKEN = "standin-token-for-protocol-tests"
LAYOUT = Layout()


def local_section(root: Path) -> dict[str, Any]:
    return {"type": "local", "options": {"root": str(root)}}


def s3_section(bucket: str, endpoint: str) -> dict[str, Any]:
    return {"type": "s3", "options": {"bucket": bucket, "endpoint_url": endpoint}}


def replay(pages: str, loader: dict[str, Any]) -> dict[str, Any]:
    return {
        "extractor": {"type": "replay", "options": {"path": str(SAMPLE / pages)}},
        "transformer": {"type": "standardize"},
        "loader": loader,
    }


def live(base_url: str, pages: int, loader: dict[str, Any]) -> dict[str, Any]:
    return {
        "extractor": {
            "type": "tmdb-trending",
            "options": {"base_url": base_url, "pages": pages, "concurrency": 1, "enrich": False, "rate_limit": 1000},
        },
        "transformer": {"type": "standardize"},
        "loader": loader,
    }


def write(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    return path


def commit_the_sample_day(tmp_path: Path) -> tuple[Path, Path]:
    """Run the sample's 2026-11-25 through the command line into ``tmp_path/lake``; returns the lake and the config."""
    lake = tmp_path / "lake"
    config = write(tmp_path / "c.yml", replay("2026-11-25", local_section(lake)))
    assert main(["run", "--config", str(config), "--date", "2026-11-25", "-q"]) == 0
    return lake, config


def replaying_one_page(tmp_path: Path, name: str, lake: Path, page: dict[str, Any]) -> Path:
    """A config writing to ``lake`` that replays ``page`` alone (from ``tmp_path/name``) for 2026-11-25."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "page-001.json").write_bytes(record_line(page))
    config = write(tmp_path / f"{name}.yml", replay("2026-11-25", local_section(lake)))
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
def race_lake(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[dict[str, Any], ObjectLakeLoader[Any]]:
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
    race_lake: tuple[dict[str, Any], ObjectLakeLoader[Any]],
    tmp_path: Path,
    tmdb_standin: StandinFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    standin = await tmdb_standin(token=TOKEN)
    monkeypatch.setenv("TMDB_ACCESS_TOKEN", TOKEN)
    today = dt.datetime.now(dt.UTC).date()
    section, loader = race_lake
    argv = {
        pages: ["run", "--config", str(write(tmp_path / f"{pages}.yml", live(standin.base_url, n, section))), "-q"]
        for pages, n in (("three-pages", 3), ("two-pages", 2))
    }
    second = "two-pages" if first == "three-pages" else "three-pages"
    children = {name: Child(argv[name], tmp_path, name=name) for name in (first, second)}
    lock = LAYOUT.lock_key(today, FEED)

    async def locked() -> bool:
        return await loader.get_object(lock) is not None

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
        assert await loader.get_object(lock) is None


async def test_two_runs_started_at_the_same_moment_leave_exactly_one_winner(
    tmp_path: Path, tmdb_standin: StandinFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    standin = await tmdb_standin(token=TOKEN)
    monkeypatch.setenv("TMDB_ACCESS_TOKEN", TOKEN)
    today = dt.datetime.now(dt.UTC).date()
    config = write(tmp_path / "live.yml", live(standin.base_url, 2, local_section(tmp_path / "lake")))
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
    await run_pipeline(replay("2026-11-24", local_section(lake)), trend_date=today)
    before = {p: p.read_bytes() for p in lake.rglob("*") if p.is_file()}
    config = write(tmp_path / "live.yml", live(standin.base_url, 20, local_section(lake)))
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
    await dying.begin(FEED)
    await dying._open["cleaned"].write(os.urandom(6 * 1024 * 1024))  # one part goes up: an upload is open
    await asyncio.sleep(0)
    uploads = await open_uploads(s3_client, s3_bucket)
    assert uploads == [dying._open["cleaned"].key]
    # The process "dies": its lock stays. Age it past lock_timeout, as a dead host's would be.
    lock = LAYOUT.lock_key(day, FEED)
    record = LockRecord.from_bytes((await dying.get_object(lock)).data)  # type: ignore[union-attr]
    assert record is not None
    old = LockRecord(**{**record.__dict__, "started_at": record.started_at - dt.timedelta(hours=2)})
    await s3_client.put_object(Bucket=s3_bucket, Key=lock, Body=old.to_bytes())
    await asyncio.wait([t for t in (dying._open["cleaned"].sink._inflight,) if t])  # type: ignore[attr-defined]

    await run_pipeline(replay("2026-11-25", s3_section(s3_bucket, moto_endpoint)), trend_date=day + dt.timedelta(1))

    assert await open_uploads(s3_client, s3_bucket) == []
    assert not [k for k in await object_keys(s3_client, s3_bucket) if k.startswith("_locks/")]


# -- readers verify what they read --------------------------------------------------------------


async def test_a_reader_never_trusts_a_cleaned_file_that_does_not_match_its_manifest(tmp_path: Path) -> None:
    day = dt.date(2026, 11, 25)
    await run_pipeline(replay("2026-11-25", local_section(tmp_path)), trend_date=day)
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
    await run_pipeline(replay("2026-11-25", local_section(tmp_path)), trend_date=day)
    junk = b"\x00\xffnot a csv\n\"unterminated"
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
    await run_pipeline(replay("2026-11-25", local_section(tmp_path)), trend_date=day)
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
