"""The ``ObjectStore`` contract, run against every implementation: memory, a local folder, S3 (moto's server).

The commit protocol is written once against this interface, so each store must answer it the same way:
conditional writes, sinks that appear whole or not at all, atomic copies, locks that a live run holds and
a dead run's record handed to the next claimer.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.datalake import LockRecord, MemoryStore, ObjectStore
from pipeline.errors import CommitConflict, LoadError
from pipeline.stage import Feed
from stages.loaders.local_store import LocalStore
from stages.loaders.s3 import S3Options
from stages.loaders.s3_store import S3Store

DEAD_PID = 2**22 + 1  # above the kernel's pid_max: never a live process
KEY = "_versions/2026/11/2026-11-25_movies.run-abc.csv"
LOCK = "_locks/2026-11-25_movie_day.json"

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(params=["memory", "local", "s3"])
def built_store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """Each implementation, not yet opened."""
    if request.param == "memory":
        return MemoryStore()
    if request.param == "local":
        return LocalStore(tmp_path / "lake", writer="abc")
    client: Any = request.getfixturevalue("s3_client")
    bucket: str = request.getfixturevalue("s3_bucket")
    return S3Store(S3Options(bucket=bucket, endpoint_url=request.getfixturevalue("moto_endpoint")), client=client)


@pytest.fixture
async def store(built_store: ObjectStore) -> AsyncIterator[ObjectStore]:
    """The store, opened as its creator opens it: ``async with`` gives the store itself."""
    async with built_store as opened:
        yield opened


def record(pid: int = DEAD_PID, run_id: str = "abc") -> LockRecord:
    return LockRecord(
        run_id=run_id,
        trend_date=dt.date(2026, 11, 25),
        feed=Feed(),
        host=socket.gethostname(),
        pid=pid,
        started_at=dt.datetime.now(dt.UTC),
        objects=(KEY,),
    )


async def test_a_missing_object_is_none_and_a_written_one_comes_back_whole(store: ObjectStore) -> None:
    assert await store.get_object(KEY) is None
    first = await store.put_object(KEY, b"one", "text/csv")
    stored = await store.get_object(KEY)
    assert stored is not None and stored.data == b"one" and stored.etag == first
    second = await store.put_object(KEY, b"two", "text/csv")
    assert second != first
    assert (await store.get_object(KEY)) == type(stored)(b"two", second)


async def test_conditional_writes_hold_only_while_their_condition_does(store: ObjectStore) -> None:
    etag = await store.put_object(KEY, b"one", "application/json", if_absent=True)
    with pytest.raises(CommitConflict):
        await store.put_object(KEY, b"two", "application/json", if_absent=True)
    with pytest.raises(CommitConflict):
        await store.put_object(KEY, b"two", "application/json", if_match="not-the-etag")
    newer = await store.put_object(KEY, b"two", "application/json", if_match=etag)
    with pytest.raises(CommitConflict):
        await store.put_object(KEY, b"three", "application/json", if_match=etag)  # a stale token
    stored = await store.get_object(KEY)
    assert stored is not None and (stored.data, stored.etag) == (b"two", newer)


async def test_a_sink_appears_whole_on_commit_and_never_on_abort(store: ObjectStore) -> None:
    await store.put_object(KEY, b"previous", "text/csv")
    aborted = await store.open_sink(KEY, "text/csv")
    await aborted.write(b"half")
    await aborted.abort()
    sink = await store.open_sink(KEY, "text/csv")
    await sink.write(b"new ")
    await sink.write(b"day")
    stored = await store.get_object(KEY)
    assert stored is not None and stored.data == b"previous"
    await sink.commit()
    stored = await store.get_object(KEY)
    assert stored is not None and stored.data == b"new day"
    assert await store.leftovers() == [] or all(not leftover.old for leftover in await store.leftovers())


async def test_copy_replaces_the_target_and_delete_forgets_even_a_missing_key(store: ObjectStore) -> None:
    target = "cleaned_data/2026/11/2026-11-25_movies.csv"
    await store.put_object(KEY, b"version", "text/csv")
    await store.put_object(target, b"old", "text/csv")
    await store.copy_object(KEY, target)
    stored = await store.get_object(target)
    assert stored is not None and stored.data == b"version"
    await store.delete_object(KEY)
    await store.delete_object(KEY)
    assert await store.get_object(KEY) is None
    with pytest.raises(LoadError):
        await store.copy_object(KEY, target)
    stored = await store.get_object(target)
    assert stored is not None and stored.data == b"version"


async def test_a_listing_is_sorted_and_holds_only_what_is_under_the_prefix(store: ObjectStore) -> None:
    keys = ["_versions/2026/11/b.csv", "_versions/2026/10/a.csv", "cleaned_data/2026/11/c.csv"]
    for key in keys:
        await store.put_object(key, b"x", "text/csv")
    assert await store.list_keys("_versions/") == ["_versions/2026/10/a.csv", "_versions/2026/11/b.csv"]
    assert await store.list_keys("raw_data/") == []


async def test_a_held_lock_is_a_conflict_and_a_dead_runs_record_goes_to_the_next_claimer(store: ObjectStore) -> None:
    claim = await store.claim_lock(LOCK)
    assert claim.stale is None and not claim.stale_unreadable
    await store.write_lock(claim, record(pid=os.getpid()))
    with pytest.raises(CommitConflict, match=re.escape(f"run abc on {socket.gethostname()} (pid {os.getpid()})")):
        await store.claim_lock(LOCK)
    await store.release_lock(claim)
    assert await store.get_object(LOCK) is None

    dying = await store.claim_lock(LOCK)
    await store.write_lock(dying, record(pid=DEAD_PID, run_id="dead"))
    await store.release_lock(dying, keep_record=True)  # as a run that died holding it leaves it
    healer = await store.claim_lock(LOCK)
    assert healer.stale is not None and healer.stale.run_id == "dead" and healer.stale.objects == (KEY,)
    await store.release_lock(healer)
    assert await store.get_object(LOCK) is None


async def test_a_lock_record_cut_short_is_handed_to_the_next_claimer_as_unreadable(store: ObjectStore) -> None:
    await store.put_object(LOCK, b'{"run_id": "abc", "trend_da', "application/json")
    claim = await store.claim_lock(LOCK)
    assert claim.stale is None and claim.stale_unreadable
    await store.release_lock(claim)
    assert await store.get_object(LOCK) is None


@pytest.mark.parametrize("built_store", ["memory", "local"], indirect=True)
async def test_a_lock_held_before_its_record_is_written_is_named_by_its_key(store: ObjectStore) -> None:
    """Only stores whose claim itself holds the lock: on S3 the lock is its record, created by a conditional PUT."""
    claim = await store.claim_lock(LOCK)
    with pytest.raises(CommitConflict, match=re.escape(store.locate(LOCK).removesuffix(".json"))):
        await store.claim_lock(LOCK)
    await store.release_lock(claim)
    await store.release_lock(await store.claim_lock(LOCK))  # free again


async def test_a_store_says_where_a_key_is_without_credentials(store: ObjectStore) -> None:
    where = store.locate(KEY)
    assert where.endswith(KEY) and where.startswith(store.describe().rstrip("/").split("/")[0])
    assert "secret" not in where.lower() and "@" not in where
