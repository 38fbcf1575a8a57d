"""The commit protocol's healing, repair and edge cases on the local lake (docs/testing.md, mutation testing).

States a crash would leave are forged on the real file system (a lock record of a dead run, a
seed file that lags its manifest), then the next run or ``repair`` must heal them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pipeline.datalake import Layout, LockRecord, Manifest
from pipeline.datalake.loader import ENCODE_BYTES
from pipeline.errors import CommitConflict, LoadError
from pipeline.stage import Feed, Lookups
from stages.loaders.local import LocalLoader
from stages.loaders.s3 import S3Loader, S3Options
from tests.stages.loaders.test_s3_policy import iam_user
from tests.support.fakes import NOW, TREND_DATE, batch, commit_info
from tests.support.fixtures_s3 import moto_checks_auth, object_keys
from tests.support.lake import context_for, loader_for, rows

FEED = Feed()
LAYOUT = Layout()
SEED = LAYOUT.key("cleaned", TREND_DATE, FEED)
MANIFEST = LAYOUT.key("manifest", TREND_DATE, FEED)
LOCK = LAYOUT.lock_key(TREND_DATE, FEED)


def version(run_id: str) -> str:
    return LAYOUT.run_key("version", TREND_DATE, FEED, run_id)


def raw(run_id: str) -> str:
    return LAYOUT.run_key("raw", TREND_DATE, FEED, run_id)


def files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


async def commit(root: Path, run_id: str, ids: range = range(1, 41), **facts: object) -> LocalLoader:
    """Commit ``TREND_DATE`` through a fresh local loader; returns it (closed)."""
    loader = loader_for(root, "csv", "monthly", TREND_DATE, run_id)
    async with loader:
        await loader.begin(FEED)
        await loader.write_raw(batch(1, list(ids)))
        await loader.write(rows(TREND_DATE, ids))
        await loader.commit(commit_info(loader, **facts))
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
    claim = await holder.claim_lock(LOCK)
    loser = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r3")
    with pytest.raises(
        CommitConflict, match=r"another run is committing this day \(2026-11-25 trending movies, today\)"
    ):
        await loser.begin(FEED)
    assert loser.outcome() == "nothing was committed; 2026-11-25 keeps its previous data"
    await loser.abort()  # what the runner does next: nothing left to undo
    assert loser.outcome() == "nothing was committed; 2026-11-25 keeps its previous data"
    await holder.release_lock(claim)
    assert files(tmp_path) == before


async def test_a_manifest_changed_since_begin_is_a_conflict_and_the_day_stays_as_it_was(tmp_path: Path) -> None:
    await commit(tmp_path, "r1")
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r2")
    await loader.begin(FEED)
    await loader.write(rows(TREND_DATE, range(101, 141)))
    meddled = json.loads((tmp_path / MANIFEST).read_bytes())
    meddled["note"] = "another writer"
    (tmp_path / MANIFEST).write_text(json.dumps(meddled))
    with pytest.raises(CommitConflict, match=r"another run is committing this day .* changed since this run began"):
        await loader.commit(commit_info(loader))
    await loader.abort()
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
    await loader.begin(FEED)
    await loader.write(rows(TREND_DATE, range(101, 141)))
    with pytest.raises(OSError):
        await loader.commit(commit_info(loader))
    await loader.abort()
    assert loader.outcome() == (
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
        await loader.begin(FEED)
        for number in (1, 2):
            await loader.write_raw(dataclasses.replace(batch(number, [number]), lookups=lookups))
            await loader.write(rows(TREND_DATE, range(number, number + 1)))
        await loader.commit(commit_info(loader))
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
    day = pd.concat([head, rows(TREND_DATE, range(2, 31), title="T" * rest + " {id}")], ignore_index=True)
    one_by_one = [day.iloc[[i]] for i in range(len(day))]
    n1 = max(1, int(ENCODE_BYTES / _per_row(one_by_one[0])))
    assert n1 == (first_batch or n1) and n1 < 15
    n2 = max(1, int(ENCODE_BYTES / _per_row(day.iloc[:n1])))
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r1")
    await loader.begin(FEED)
    sizes = []
    for chunk in one_by_one[: n1 + n2]:
        await loader.write(chunk)
        sizes.append(_streamed(tmp_path))
    assert sizes[: n1 - 1] == [0] * (n1 - 1), "nothing is encoded before a batch is full"
    assert sizes[n1 - 1] > 0
    assert len(set(sizes[n1 - 1 : n1 + n2 - 1])) == 1, "the second batch waits for its own size"
    assert sizes[n1 + n2 - 1] > sizes[n1 - 1]
    await loader.abort()


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
            await s3.begin(FEED)
            await s3.write(rows(TREND_DATE, range(1, 41)))
            with pytest.raises(LoadError, match="AccessDenied") as caught:
                await s3.commit(commit_info(s3))
            await s3.abort()
    assert caught.value.outcome == (
        f"2026-11-25 was committed by run r1, but s3://{s3_bucket}/{SEED} may still hold the previous file; "
        "the next run (or `python -m pipeline repair`) finishes the commit"
    )
    assert await object_keys(s3_client, s3_bucket) == sorted([LOCK, MANIFEST, version("r1"), raw("r1")])


async def test_an_empty_chunk_first_is_fine(tmp_path: Path) -> None:
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r1")
    day = rows(TREND_DATE, range(1, 41))
    async with loader:
        await loader.begin(FEED)
        await loader.write(day.iloc[:0])
        await loader.write(day)
        await loader.commit(commit_info(loader))
        back = await loader.read_day(TREND_DATE, FEED)
    assert back is not None and list(back["id"]) == list(range(1, 41))


async def test_a_parquet_day_read_without_pyarrow_is_a_load_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loader = loader_for(tmp_path, "parquet", "monthly", TREND_DATE, "r1")
    async with loader:
        await loader.begin(FEED)
        await loader.write(rows(TREND_DATE, range(1, 41)))
        await loader.commit(commit_info(loader))
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(LoadError, match="format 'parquet' needs pyarrow"):
        await loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r2").read_day(TREND_DATE, FEED)


async def test_an_abort_that_cannot_remove_its_files_says_the_next_run_will(tmp_path: Path) -> None:
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r1")
    await loader.begin(FEED)
    await loader.write(rows(TREND_DATE, range(1, 41)))
    (temp,) = (tmp_path / "_versions").rglob(".*.tmp")
    temp.unlink()
    (temp / "in-the-way").mkdir(parents=True)  # the temp file's name now holds a folder that unlink refuses
    await loader.abort()
    assert loader.outcome() == (
        "nothing was committed; 2026-11-25 keeps its previous data, and the next run removes what this one left"
    )
    record = LockRecord.from_bytes((tmp_path / LOCK).read_bytes())
    assert record is not None and record.run_id == "r1", "the record stays, so the next run knows whose files they are"
