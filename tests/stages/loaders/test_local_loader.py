"""The local lake: atomic days, idempotent re-runs, nothing half-written on failure."""

from __future__ import annotations

import dataclasses
import datetime as dt
import fcntl
import gc
import gzip
import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.datalake import Leftover, LockRecord
from pipeline.errors import CommitConflict, ConfigError, ExtractError, LoadError
from pipeline.options import build_options
from pipeline.runner import Stages, run_stages
from pipeline.stage import Check, Feed, RunContext
from stages.loaders.local import LocalLoader, LocalOptions
from stages.loaders.local_store import _FileSink, _prune, _temp_run
from stages.transformers.standardize import StandardizeOptions, StandardizeTransformer
from tests.support.fakes import NOW, TREND_DATE, ListExtractor, batch
from tests.support.lake import files, lock_record

DAY = dt.date(2026, 11, 25)
CSV = Path("cleaned_data/2026/11/2026-11-25_movies.csv")


def stages_for(context: RunContext, root: Path, *, fail_after: int | None = None, pages: int = 3) -> Stages:
    batches = [batch(n, list(range(n * 100, n * 100 + 20))) for n in range(1, pages + 1)]
    return Stages(
        extractor=ListExtractor(context, batches, fail_after=fail_after),
        transformer=StandardizeTransformer(StandardizeOptions(), context),
        loader=LocalLoader(LocalOptions(root=root), context, name="local"),
    )


async def test_a_run_writes_cleaned_raw_and_manifest(context: RunContext, tmp_path: Path) -> None:
    result = await run_stages(stages_for(context, tmp_path), context)
    assert files(tmp_path) == [
        "_manifests/2026/11/2026-11-25_movies.json",
        "_versions/2026/11/2026-11-25_movies.run-testrun00001.csv",
        "cleaned_data/2026/11/2026-11-25_movies.csv",
        "raw_data/2026/11/2026-11-25_movies.run-testrun00001.jsonl.gz",
    ]
    assert result.outputs["cleaned"] == str(tmp_path / CSV)
    manifest = json.loads((tmp_path / "_manifests/2026/11/2026-11-25_movies.json").read_text())
    for zone in ("cleaned", "raw"):
        stored = (tmp_path / manifest["objects"][zone]["key"]).read_bytes()
        assert manifest["objects"][zone]["sha256"] == hashlib.sha256(stored).hexdigest()
        assert manifest["objects"][zone]["bytes"] == len(stored)
    assert manifest["rows"] == 60 and manifest["run_id"] == context.run_id and manifest["schema_version"] == 1
    assert (tmp_path / CSV).read_bytes() == (tmp_path / manifest["objects"]["cleaned"]["version_key"]).read_bytes()
    raw_path = tmp_path / "raw_data/2026/11/2026-11-25_movies.run-testrun00001.jsonl.gz"
    raw_lines = gzip.decompress(raw_path.read_bytes()).splitlines()
    assert [json.loads(line)["page"] for line in raw_lines] == [1, 2, 3]


async def test_failure_after_the_first_chunk_keeps_the_previous_file_and_leaves_no_temp_files(
    context: RunContext, tmp_path: Path
) -> None:
    await run_stages(stages_for(context, tmp_path, pages=2), context)
    before = {name: (tmp_path / name).read_bytes() for name in files(tmp_path)}
    again = dataclasses.replace(context, run_id="failing00001")
    with pytest.raises(ExtractError, match="source went away"):
        await run_stages(stages_for(again, tmp_path, fail_after=1), again)
    after = {name: (tmp_path / name).read_bytes() for name in files(tmp_path)}
    assert after == before, "the previous good day must stay byte-identical, with no temp files beside it"


async def test_failure_on_the_first_run_of_a_day_leaves_nothing(context: RunContext, tmp_path: Path) -> None:
    with pytest.raises(ExtractError):
        await run_stages(stages_for(context, tmp_path, fail_after=2), context)
    assert files(tmp_path) == []


async def test_re_running_a_day_replaces_it(context: RunContext, tmp_path: Path) -> None:
    for pages in (3, 2, 2):
        again = dataclasses.replace(context, run_id=f"rerun{pages}{len(files(tmp_path))}")
        await run_stages(stages_for(again, tmp_path, pages=pages), again)
    names = files(tmp_path)
    assert len(names) == 6, "cleaned, manifest, the last run's version, and three runs' raw pages"
    assert len([n for n in names if n.startswith("raw_data/")]) == 3
    loader = LocalLoader(LocalOptions(root=tmp_path), context)
    frame = await loader.read_day(DAY, Feed())
    assert frame is not None and len(frame) == 40


async def test_read_day_of_a_missing_day_is_none(context: RunContext, tmp_path: Path) -> None:
    loader = LocalLoader(LocalOptions(root=tmp_path), context)
    assert await loader.read_day(dt.date(2020, 1, 1), Feed()) is None


async def test_old_temp_files_nobody_owns_are_cleaned_up(context: RunContext, tmp_path: Path) -> None:
    folder = tmp_path / "_versions/2026/11"
    folder.mkdir(parents=True)
    stale = folder / ".2026-11-25_movies.run-dead00001.csv.run-dead00001.abc123.tmp"
    stale.write_bytes(b"half")
    young = folder / ".2026-11-24_movies.csv.run-other0001.abc123.tmp"
    young.write_bytes(b"half")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    await run_stages(stages_for(context, tmp_path), context)
    assert not stale.exists(), "an hour past lock_timeout with no live lock: a dead run's"
    assert young.exists(), "without a lock naming its run, a young temp file may belong to a run starting up"


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ("/abs", "loader.options.prefix: must not start with '/'"),
        ("a//b", "loader.options.prefix: must not contain empty segments"),
        ("a/../b", "loader.options.prefix: must not contain '.' or '..' segments"),
    ],
)
def test_prefix_is_validated(prefix: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_options(LocalOptions, {"prefix": prefix}, "loader.options")


async def test_prefix_puts_the_lake_under_a_folder(context: RunContext, tmp_path: Path) -> None:
    stages = stages_for(context, tmp_path)
    loader = LocalLoader(build_options(LocalOptions, {"root": str(tmp_path), "prefix": "team/tmdb/"}, "l"), context)
    await run_stages(Stages(stages.extractor, stages.transformer, loader), context)
    assert (tmp_path / "team/tmdb" / CSV).exists()


async def test_lake_files_get_the_mode_a_plain_open_would_give(context: RunContext, tmp_path: Path) -> None:
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    await run_stages(stages_for(context, tmp_path), context)
    modes = {p.stat().st_mode & 0o777 for p in tmp_path.rglob("*") if p.is_file()}
    assert modes == {0o666 & ~mask}


# == the local store's primitives, one by one, on a real folder ==================================================
def loader_on(root: Path, run_id: str = "run-a", **options: object) -> LocalLoader:
    built = build_options(LocalOptions, {"root": str(root), **options}, "loader.options")
    return LocalLoader(built, RunContext(TREND_DATE, run_id, NOW), name="local")


def folders(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir())


def test_a_root_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="exists and is not a folder"):
        loader_on(tmp_path / "file")
    assert loader_on(tmp_path / "missing").options.root == tmp_path / "missing"
    assert loader_on(tmp_path, prefix="a/b/").options.prefix == "a/b"


def test_describe_names_the_lake_folder(tmp_path: Path) -> None:
    assert loader_on(tmp_path).describe() == str(tmp_path)
    assert loader_on(tmp_path, prefix="team/tmdb").describe() == str(tmp_path / "team/tmdb")
    assert loader_on(tmp_path).locate("a/b.csv") == str(tmp_path / "a/b.csv")


# -- the file sink -----------------------------------------------------------------------
async def test_a_sink_shows_nothing_until_it_commits_then_the_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "zone/a/b.csv"
    sink = _FileSink(target, "r1", tmp_path)
    assert _temp_run(sink.temp.name) == "r1" and sink.temp.parent == target.parent
    await sink.write(b"one,")
    await sink.write(b"two\n")
    assert not target.exists()
    await sink.commit()
    assert target.read_bytes() == b"one,two\n"
    assert files(tmp_path) == ["zone/a/b.csv"]
    with pytest.raises(AssertionError, match="write after commit or abort"):
        await sink.write(b"more")
    with pytest.raises(AssertionError, match="commit after commit or abort"):
        await sink.commit()


async def test_a_temp_file_of_a_key_that_names_no_run_carries_the_runs_id(tmp_path: Path) -> None:
    """A run also writes the day's cleaned key through a temp file: if it dies there, the leftover says whose."""
    store = loader_on(tmp_path, run_id="r7").store
    sink = await store.open_sink("cleaned_data/2026/11/2026-11-25_movies.csv", "text/csv")
    (leftover,) = await store.leftovers()
    assert leftover.run_id == "r7"
    await sink.abort()


async def test_a_sink_commit_replaces_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "b.csv"
    target.write_bytes(b"old")
    sink = _FileSink(target, "r1", tmp_path)
    await sink.write(b"new")
    await sink.commit()
    assert target.read_bytes() == b"new" and files(tmp_path) == ["b.csv"]


async def test_an_aborted_sink_leaves_no_temp_file_and_no_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "zone").mkdir()
    (tmp_path / "zone/keep.csv").write_text("x")
    sink = _FileSink(tmp_path / "zone/new/deeper/b.csv", "r1", tmp_path)
    await sink.write(b"half")
    await sink.abort()
    assert files(tmp_path) == ["zone/keep.csv"] and folders(tmp_path) == ["zone"]
    assert sink.file is None
    await sink.abort()  # twice is harmless
    with pytest.raises(AssertionError):
        await sink.write(b"more")


def test_prune_stops_at_the_root_and_at_the_first_folder_with_something_in_it(tmp_path: Path) -> None:
    (tmp_path / "a/b/c/d").mkdir(parents=True)
    (tmp_path / "a/keep").write_text("x")
    _prune(tmp_path / "a/b/c/d", tmp_path)
    assert folders(tmp_path) == ["a"]
    _prune(tmp_path / "a", tmp_path / "a")  # the stop folder itself is never removed
    assert folders(tmp_path) == ["a"]
    (tmp_path / "a/keep").unlink()
    _prune(tmp_path / "a", tmp_path)
    assert folders(tmp_path) == [] and tmp_path.is_dir()
    (tmp_path / "elsewhere/x").mkdir(parents=True)
    _prune(tmp_path / "elsewhere/x", tmp_path / "other")  # not under the stop folder: left alone
    assert folders(tmp_path) == ["elsewhere", "elsewhere/x"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (".2026-11-25_movies.run-target1.csv.run-writer1.k2j3.tmp", "writer1"),
        (".2026-11-25_movies.csv.run-writer2.k2j3.tmp", "writer2"),
        (".2026-11-25_movies.csv.k2j3.tmp", None),
    ],
)
def test_a_temp_files_run_is_its_last_run_tag(name: str, expected: str | None) -> None:
    assert _temp_run(name) == expected


# -- preflight -----------------------------------------------------------------------------
def _lake_check(checks: list[Check]) -> Check:
    assert [c.what for c in checks] == ["options", "lake folder"]
    return checks[-1]


async def test_preflight_of_an_existing_folder_says_whether_it_is_writable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    check = _lake_check(await loader_on(tmp_path).preflight(False))
    assert (check.ok, check.detail) == (True, f"{tmp_path} exists and is writable")
    asked: list[tuple[str, int]] = []

    def read_only(path: object, mode: int) -> bool:
        asked.append((str(path), mode))
        return False

    monkeypatch.setattr(os, "access", read_only)
    check = _lake_check(await loader_on(tmp_path).preflight(False))
    assert (check.ok, check.detail) == (False, f"{tmp_path} exists but is not writable")
    assert asked == [(str(tmp_path), os.W_OK | os.X_OK)]


async def test_preflight_of_a_missing_folder_names_the_nearest_existing_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "a/b/lake"
    check = _lake_check(await loader_on(root).preflight(False))
    assert (check.ok, check.detail) == (True, f"{root} does not exist yet; the first run creates it in {tmp_path}")
    assert not (tmp_path / "a").exists(), "preflight creates nothing"

    (tmp_path / "file").write_text("x")
    under_a_file = tmp_path / "file/lake"
    check = _lake_check(await loader_on(under_a_file).preflight(False))
    detail = f"{under_a_file} does not exist and cannot be created: {tmp_path / 'file'} is not a writable folder"
    assert (check.ok, check.detail) == (False, detail)

    monkeypatch.setattr(os, "access", lambda path, mode: False)
    check = _lake_check(await loader_on(root).preflight(False))
    assert (check.ok, check.detail) == (
        False,
        f"{root} does not exist and cannot be created: {tmp_path} is not a writable folder",
    )


# -- objects -------------------------------------------------------------------------------
async def test_get_object_gives_the_bytes_and_their_sha256_or_none(tmp_path: Path) -> None:
    loader = loader_on(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "a/x.json").write_bytes(b"{}")
    stored = await loader.store.get_object("a/x.json")
    assert stored is not None
    assert (stored.data, stored.etag) == (b"{}", hashlib.sha256(b"{}").hexdigest())
    assert await loader.store.get_object("a/missing.json") is None
    assert await loader.store.get_object("a/x.json/under-a-file.json") is None


async def test_put_object_honours_its_conditions(tmp_path: Path) -> None:
    loader = loader_on(tmp_path)
    etag = await loader.store.put_object("m/day.json", b"v1", "application/json", if_absent=True)
    assert etag == hashlib.sha256(b"v1").hexdigest()
    assert (tmp_path / "m/day.json").read_bytes() == b"v1"
    with pytest.raises(CommitConflict, match=r"day\.json appeared"):
        await loader.store.put_object("m/day.json", b"v2", "application/json", if_absent=True)
    with pytest.raises(CommitConflict, match=r"day\.json changed"):
        await loader.store.put_object("m/day.json", b"v2", "application/json", if_match="not-the-etag")
    with pytest.raises(CommitConflict, match=r"other\.json changed"):
        await loader.store.put_object("m/other.json", b"v2", "application/json", if_match=etag)
    assert (tmp_path / "m/day.json").read_bytes() == b"v1" and files(tmp_path) == ["m/day.json"]
    second = await loader.store.put_object("m/day.json", b"v2", "application/json", if_match=etag)
    assert second == hashlib.sha256(b"v2").hexdigest()
    await loader.store.put_object("m/day.json", b"v3", "application/json")
    assert (tmp_path / "m/day.json").read_bytes() == b"v3" and files(tmp_path) == ["m/day.json"]


async def test_copy_object_replaces_the_target_with_the_source(tmp_path: Path) -> None:
    loader = loader_on(tmp_path)
    (tmp_path / "v").mkdir()
    big = os.urandom(3 << 20)  # more than one copy buffer
    (tmp_path / "v/a.csv").write_bytes(big)
    (tmp_path / "c").mkdir()
    (tmp_path / "c/a.csv").write_bytes(b"old")
    await loader.store.copy_object("v/a.csv", "c/a.csv")
    assert (tmp_path / "c/a.csv").read_bytes() == big
    await loader.store.copy_object("v/a.csv", "new/folder/a.csv")
    assert (tmp_path / "new/folder/a.csv").read_bytes() == big
    assert files(tmp_path) == ["c/a.csv", "new/folder/a.csv", "v/a.csv"]


async def test_copying_a_missing_or_unreadable_source_fails_and_leaves_no_temp_file(tmp_path: Path) -> None:
    loader = loader_on(tmp_path)
    (tmp_path / "c").mkdir()
    (tmp_path / "c/a.csv").write_bytes(b"old")
    with pytest.raises(LoadError, match=r"cannot copy .*v/gone\.csv to .*c/a\.csv: .*v/gone\.csv is missing"):
        await loader.store.copy_object("v/gone.csv", "c/a.csv")
    (tmp_path / "v/folder").mkdir(parents=True)
    with pytest.raises(IsADirectoryError):
        await loader.store.copy_object("v/folder", "c/a.csv")
    assert (tmp_path / "c/a.csv").read_bytes() == b"old"
    assert files(tmp_path) == ["c/a.csv"]


async def test_delete_object_removes_the_file_and_its_empty_folders(tmp_path: Path) -> None:
    loader = loader_on(tmp_path)
    (tmp_path / "z/2026/11").mkdir(parents=True)
    (tmp_path / "z/2026/11/a.csv").write_text("a")
    (tmp_path / "z/keep.csv").write_text("k")
    await loader.store.delete_object("z/2026/11/a.csv")
    assert files(tmp_path) == ["z/keep.csv"] and folders(tmp_path) == ["z"]
    await loader.store.delete_object("z/2026/11/a.csv")  # a missing key is fine


async def test_list_keys_lists_files_under_a_prefix_but_not_temp_files(tmp_path: Path) -> None:
    loader = loader_on(tmp_path)
    assert await loader.store.list_keys("z/") == []
    (tmp_path / "z/a").mkdir(parents=True)
    for name in ("a/x.csv", "a/.x.csv.run-r.abc.tmp", "a/.hidden", "a/plain.tmp", "b.json"):
        (tmp_path / "z" / name).write_text("x")
    (tmp_path / "other.csv").write_text("x")
    assert await loader.store.list_keys("z/") == ["z/a/.hidden", "z/a/plain.tmp", "z/a/x.csv", "z/b.json"]
    assert await loader.store.list_keys("z/a/") == ["z/a/.hidden", "z/a/plain.tmp", "z/a/x.csv"]
    assert await loader.store.list_keys("z/b.json") == []


# -- the day lock ----------------------------------------------------------------------------
LOCK = "_locks/2026-11-25_movie_day.json"


def host_x_record(run_id: str) -> LockRecord:
    """``run_id``'s lock record, taken on host-x by process 12."""
    return lock_record(run_id, host="host-x", pid=12, started_at=NOW, objects=("_versions/a.csv",))


async def test_a_claimed_lock_keeps_others_out_until_it_is_released(tmp_path: Path) -> None:
    first, second = loader_on(tmp_path, "run-a"), loader_on(tmp_path, "run-b")
    claim = await first.store.claim_lock(LOCK)
    assert (claim.key, claim.stale, claim.stale_unreadable) == (LOCK, None, False)
    with pytest.raises(CommitConflict, match=r"_locks/2026-11-25_movie_day\.lock is locked"):
        await second.store.claim_lock(LOCK)
    await first.store.write_lock(claim, host_x_record("run-a"))
    assert LockRecord.from_bytes((tmp_path / LOCK).read_bytes()) == host_x_record("run-a")
    with pytest.raises(CommitConflict, match=r"'local': run run-a on host-x \(pid 12\)"):
        await second.store.claim_lock(LOCK)
    await first.store.release_lock(claim)
    assert files(tmp_path) == [] and folders(tmp_path) == []
    again = await second.store.claim_lock(LOCK)
    assert again.stale is None
    await second.store.release_lock(again)


async def test_a_record_left_by_a_dead_run_comes_with_the_claim(tmp_path: Path) -> None:
    loader = loader_on(tmp_path)
    claim = await loader.store.claim_lock(LOCK)
    await loader.store.write_lock(claim, host_x_record("dead"))
    await loader.store.release_lock(claim, keep_record=True)
    assert files(tmp_path) == [LOCK, LOCK.replace(".json", ".lock")]
    claim = await loader.store.claim_lock(LOCK)
    assert (claim.stale, claim.stale_unreadable) == (host_x_record("dead"), False)
    await loader.store.release_lock(claim)

    (tmp_path / "_locks").mkdir()
    (tmp_path / LOCK).write_bytes(b'{"run_id": "cut sh')
    claim = await loader.store.claim_lock(LOCK)
    assert (claim.stale, claim.stale_unreadable) == (None, True)
    await loader.store.release_lock(claim)
    assert files(tmp_path) == []


async def test_releasing_removes_a_record_write_cut_short_but_not_other_days(tmp_path: Path) -> None:
    loader = loader_on(tmp_path)
    claim = await loader.store.claim_lock(LOCK)
    cut = tmp_path / "_locks/.2026-11-25_movie_day.json.run-run-a.x1.tmp"
    cut.write_bytes(b"{")
    other = tmp_path / "_locks/.2026-11-24_movie_day.json.run-run-z.x1.tmp"
    other.write_bytes(b"{")
    await loader.store.release_lock(claim)
    assert files(tmp_path) == ["_locks/.2026-11-24_movie_day.json.run-run-z.x1.tmp"]
    with pytest.raises(OSError):
        os.fstat(claim.token)  # the lock's descriptor is closed (nothing else was opened since)


def open_fds() -> int:
    """How many file descriptors this process has open."""
    return len(os.listdir("/proc/self/fd"))


def _flock_that(monkeypatch: pytest.MonkeyPatch, before: Callable[[int], None]) -> list[int]:
    """``fcntl.flock`` that first lets ``before`` play the lock's previous holder; returns the calls."""
    real = fcntl.flock
    calls: list[int] = []

    def flock(fd: int, operation: int) -> None:
        calls.append(fd)
        before(len(calls))
        real(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock)
    return calls


async def test_a_lock_file_replaced_while_it_was_claimed_is_claimed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock_file = tmp_path / LOCK.replace(".json", ".lock")

    def replace_first(call: int) -> None:
        if call == 1:  # its holder released it (removing the file) and another run made a new one
            lock_file.unlink()
            lock_file.write_bytes(b"")

    calls = _flock_that(monkeypatch, replace_first)
    before = open_fds()
    claim = await loader_on(tmp_path).store.claim_lock(LOCK)
    assert len(calls) == 2
    assert os.fstat(claim.token).st_ino == lock_file.stat().st_ino
    assert open_fds() == before + 1, "the first descriptor was closed"
    os.close(claim.token)


async def test_a_lock_file_removed_while_it_was_claimed_is_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock_file = tmp_path / LOCK.replace(".json", ".lock")
    calls = _flock_that(monkeypatch, lambda call: lock_file.unlink() if call == 1 else None)
    before = open_fds()
    claim = await loader_on(tmp_path).store.claim_lock(LOCK)
    assert len(calls) == 2 and os.fstat(claim.token).st_ino == lock_file.stat().st_ino
    assert open_fds() == before + 1
    os.close(claim.token)


async def test_a_lock_file_that_keeps_changing_hands_is_a_conflict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock_file = tmp_path / LOCK.replace(".json", ".lock")

    def replace(call: int) -> None:
        lock_file.unlink()
        lock_file.write_bytes(b"")

    calls = _flock_that(monkeypatch, replace)
    before = open_fds()
    with pytest.raises(CommitConflict, match="keeps changing hands"):
        await loader_on(tmp_path).store.claim_lock(LOCK)
    assert len(calls) == 5
    assert open_fds() == before


async def test_a_held_lock_closes_the_losers_descriptor(tmp_path: Path) -> None:
    winner = await loader_on(tmp_path, "run-a").store.claim_lock(LOCK)
    before = open_fds()
    with pytest.raises(CommitConflict):
        await loader_on(tmp_path, "run-b").store.claim_lock(LOCK)
    assert open_fds() == before
    os.close(winner.token)


# -- leftovers ------------------------------------------------------------------------------
def _temp(root: Path, relative: str, *, age: float = 0.0) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"half")
    if age:
        os.utime(path, (time.time() - age, time.time() - age))
    return path


async def test_leftovers_are_the_temp_files_in_the_lakes_zones(tmp_path: Path) -> None:
    loader = loader_on(tmp_path, prefix="p", lock_timeout=60)
    old = _temp(tmp_path, "p/_versions/2026/11/.a.csv.run-r1.x.tmp", age=120)
    young = _temp(tmp_path, "p/cleaned_data/2026/.b.csv.run-r2.x.tmp")
    _temp(tmp_path, "p/elsewhere/.c.csv.run-r3.x.tmp", age=120)
    _temp(tmp_path, "_versions/.d.csv.run-r4.x.tmp", age=120)  # outside the prefix
    _temp(tmp_path, "p/_versions/not-hidden.tmp", age=120)
    found = sorted(await loader.store.leftovers(), key=lambda leftover: leftover.handle)
    assert found == [
        Leftover("p/_versions/2026/11/.a.csv.run-r1.x.tmp", f"the temp file {old}", "r1", True),
        Leftover("p/cleaned_data/2026/.b.csv.run-r2.x.tmp", f"the temp file {young}", "r2", False),
    ]
    await loader.store.remove_leftover(found[0])
    assert not old.exists() and not (tmp_path / "p/_versions/2026").exists()
    assert (tmp_path / "p/_versions").is_dir()


async def test_leftovers_without_a_prefix_and_in_an_empty_lake(tmp_path: Path) -> None:
    loader = loader_on(tmp_path, lock_timeout=3600)
    assert await loader.store.leftovers() == []
    _temp(tmp_path, "raw_data/.r.jsonl.gz.run-r5.x.tmp", age=1800)
    assert await loader.store.leftovers() == [
        Leftover("raw_data/.r.jsonl.gz.run-r5.x.tmp", f"the temp file {tmp_path}/raw_data/.r.jsonl.gz.run-r5.x.tmp",
                 "r5", False)
    ]  # fmt: skip


async def test_a_temp_file_gone_while_leftovers_are_listed_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loader = loader_on(tmp_path)
    gone = _temp(tmp_path, "_versions/.a.csv.run-r1.x.tmp")
    kept = _temp(tmp_path, "_versions/.b.csv.run-r2.x.tmp")
    real_stat = Path.stat

    def stat(self: Path, **kwargs: bool) -> os.stat_result:
        if self == gone:
            raise FileNotFoundError(self)
        return real_stat(self, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)
    assert [leftover.handle for leftover in await loader.store.leftovers()] == [kept.relative_to(tmp_path).as_posix()]


def test_a_lock_timeout_decides_which_temp_files_are_old(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="lock_timeout"):
        loader_on(tmp_path, lock_timeout=0)
    assert loader_on(tmp_path, lock_timeout=5).options.lock_timeout == 5
    assert dt.timedelta(seconds=loader_on(tmp_path).options.lock_timeout) == dt.timedelta(hours=1)


async def test_a_sink_closes_its_file_on_commit_and_on_abort(tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        committed = _FileSink(tmp_path / "a.csv", "r1", tmp_path)
        await committed.write(b"x")
        await committed.commit()
        aborted = _FileSink(tmp_path / "b.csv", "r1", tmp_path)
        await aborted.write(b"x")
        await aborted.abort()
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


async def test_removing_what_is_already_gone_is_fine(tmp_path: Path) -> None:
    """Two healers may race for the same leftover, and a lock file may be gone before its release."""
    loader = loader_on(tmp_path)
    temp = _temp(tmp_path, "_versions/.a.csv.run-r1.x.tmp", age=7200)
    (leftover,) = await loader.store.leftovers()
    temp.unlink()
    await loader.store.remove_leftover(leftover)
    claim = await loader.store.claim_lock(LOCK)
    (tmp_path / LOCK.replace(".json", ".lock")).unlink()
    await loader.store.release_lock(claim)
    assert files(tmp_path) == []


async def test_the_lock_file_is_readable_by_others(tmp_path: Path) -> None:
    mask = os.umask(0o022)
    os.umask(mask)
    claim = await loader_on(tmp_path).store.claim_lock(LOCK)
    assert (tmp_path / LOCK.replace(".json", ".lock")).stat().st_mode & 0o777 == 0o644 & ~mask
    os.close(claim.token)


async def test_a_temp_file_exactly_lock_timeout_old_is_not_yet_old(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loader = loader_on(tmp_path, lock_timeout=60)
    boundary = _temp(tmp_path, "_versions/.a.csv.run-r1.x.tmp")
    older = _temp(tmp_path, "_versions/.b.csv.run-r2.x.tmp")
    os.utime(boundary, (999_940, 999_940))
    os.utime(older, (999_939, 999_939))
    monkeypatch.setattr(time, "time", lambda: 1_000_000.0)
    found = {leftover.run_id: leftover.old for leftover in await loader.store.leftovers()}
    assert found == {"r1": False, "r2": True}
