"""The commit point in-process, on a ``MemoryStore`` whose manifest write is applied and then goes wrong.

The fault harness (``test_commit_faults.py``) does this to real processes and stores; here the same cases run
in milliseconds, so each branch of ``DayCommit``'s settling is pinned on its own: the answer lost after the
write was applied, a cancellation while the write is in flight, a refusal S3 certainly did not apply, and a
store that cannot even be asked afterwards. Then what needs no asking: an abort before the commit point, a
store that goes down once the manifest's write was answered, a ``begin`` that fails after its claim, and the
sinks a dead run left open.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from pipeline.datalake import LakeFormatOptions, LakeLoader, Layout, LockRecord, MemoryStore, ObjectStore
from pipeline.errors import LoadError, TransientLoadError
from pipeline.options import StageOptions
from pipeline.stage import Feed
from tests.support.fakes import commit_info
from tests.support.lake import context_for, rows

DAY = dt.date(2026, 11, 25)
FEED = Feed()
LAYOUT = Layout()
MANIFEST = LAYOUT.key("manifest", DAY, FEED)
LOCK = LAYOUT.lock_key(DAY, FEED)

pytestmark = pytest.mark.timeout(20)


class FlakyStore(MemoryStore):
    """A memory store whose manifest writes (and, when asked, reads) go wrong in a chosen way."""

    def __init__(self) -> None:
        super().__init__()
        self.after_put: str | None = None
        """``lose``: apply, then lose the answer; ``refuse``: refuse, certainly unapplied; ``hang``: apply, wait."""
        self.reads_fail = False
        self.down_after_manifest = False
        """Once the manifest's write is answered, the store answers nothing more (reads, copies, deletes)."""
        self.deletes_fail = False
        self.applied = asyncio.Event()
        self.release = asyncio.Event()

    async def put_object(self, key: str, data: bytes, content_type: str, **condition: Any) -> str:
        if key != MANIFEST or self.after_put is None:
            etag = await super().put_object(key, data, content_type, **condition)
            if key == MANIFEST and self.down_after_manifest:
                self.reads_fail = self.deletes_fail = True
            return etag
        if self.after_put == "refuse":
            refused = TransientLoadError("ServiceUnavailable (injected)")
            refused.applied = False
            raise refused
        etag = await super().put_object(key, data, content_type, **condition)
        self.applied.set()
        if self.after_put == "hang":
            await self.release.wait()
            return etag
        if self.after_put == "oserror":
            raise OSError(5, "injected: the rename was done, its folder's fsync failed")
        raise TransientLoadError("the connection was reset (injected, after the write was applied)")

    async def get_object(self, key: str) -> Any:
        if self.reads_fail and key == MANIFEST:
            raise TransientLoadError("the store does not answer (injected)")
        return await super().get_object(key)

    async def copy_object(self, source: str, target: str) -> None:
        if self.down_after_manifest and self.deletes_fail:
            raise TransientLoadError("the store does not answer (injected)")
        await super().copy_object(source, target)

    async def delete_object(self, key: str) -> None:
        if self.deletes_fail:
            raise TransientLoadError("the store does not answer (injected)")
        await super().delete_object(key)


class MemoryLoader(LakeLoader[LakeFormatOptions]):
    """A lake loader over a given store."""

    Options = LakeFormatOptions

    def __init__(self, store: MemoryStore, run_id: str) -> None:
        super().__init__(LakeFormatOptions(), context_for(DAY, run_id), name="memory")
        self.memory = store

    def build_store(self) -> ObjectStore:
        return self.memory


async def old_day(store: MemoryStore) -> bytes:
    """Commit the old day (run r1); its manifest's bytes."""
    loader = MemoryLoader(store, "r1")
    day = await loader.begin(FEED)
    await day.write(rows(DAY, range(1, 41)))
    await day.commit(commit_info(loader))
    return store.objects[MANIFEST].data


async def new_day(store: MemoryStore) -> tuple[MemoryLoader, Any]:
    loader = MemoryLoader(store, "r2")
    day = await loader.begin(FEED)
    await day.write(rows(DAY, range(101, 141)))
    return loader, day


async def test_a_manifest_write_applied_whose_answer_was_lost_is_a_commit() -> None:
    store = FlakyStore()
    await old_day(store)
    loader, day = await new_day(store)
    store.after_put = "lose"
    committed = await day.commit(commit_info(loader))
    assert committed.outcome == "2026-11-25 was committed by run r2"
    found = await loader.read_committed(DAY, FEED)
    assert found is not None and found[1].run_id == "r2"
    assert LOCK not in store.objects  # published and released: nothing for the next run to settle
    assert not [key for key in store.objects if ".run-r1." in key and key.startswith("_versions/")]


async def test_a_cancellation_while_the_manifest_write_is_in_flight_waits_for_it_and_says_committed() -> None:
    store = FlakyStore()
    await old_day(store)
    loader, day = await new_day(store)
    store.after_put = "hang"
    committing = asyncio.ensure_future(day.commit(commit_info(loader)))
    await store.applied.wait()
    committing.cancel()  # SIGTERM while the PUT's answer is on its way
    await asyncio.sleep(0)
    assert not committing.done(), "the write's answer is awaited, not abandoned"
    store.release.set()
    with pytest.raises(asyncio.CancelledError):
        await committing
    outcome = await day.abort()
    assert outcome.startswith("2026-11-25 was committed by run r2; the next run")
    record = LockRecord.from_bytes(store.objects[LOCK].data)
    assert record is not None and record.run_id == "r2"  # kept, so the next run finishes publishing
    assert all(key in store.objects for key in record.objects)  # nothing the manifest names was deleted
    report = await MemoryLoader(store, "r3").recover()
    assert report.actions == ["2026-11-25 movies: rolled forward to run r2, which had committed"]


async def test_a_refusal_the_store_certainly_did_not_apply_rolls_back_without_asking() -> None:
    store = FlakyStore()
    old = await old_day(store)
    loader, day = await new_day(store)
    store.after_put, store.reads_fail = "refuse", True  # no read-back is needed, so none may happen
    with pytest.raises(TransientLoadError, match="injected"):
        await day.commit(commit_info(loader))
    assert await day.abort() == "nothing was committed; 2026-11-25 keeps its previous data"
    assert store.objects[MANIFEST].data == old
    assert not [key for key in store.objects if ".run-r2." in key] and LOCK not in store.objects


async def test_a_lost_answer_and_a_store_that_cannot_be_asked_decide_nothing() -> None:
    store = FlakyStore()
    await old_day(store)
    loader, day = await new_day(store)
    store.after_put, store.reads_fail = "lose", True
    with pytest.raises(LoadError, match="reset"):
        await day.commit(commit_info(loader))
    outcome = await day.abort()
    assert outcome.startswith("whether run r2 committed 2026-11-25 is not known (the store did not answer)")
    record = LockRecord.from_bytes(store.objects[LOCK].data)
    assert record is not None and all(key in store.objects for key in record.objects)  # nothing deleted
    store.reads_fail = False
    report = await MemoryLoader(store, "r3").recover()  # the next run settles it from what the store holds
    assert report.actions == ["2026-11-25 movies: rolled forward to run r2, which had committed"]
    found = await MemoryLoader(store, "r3").read_committed(DAY, FEED)
    assert found is not None and found[1].run_id == "r2"


async def test_an_os_error_after_the_manifest_landed_is_settled_by_reading_the_store() -> None:
    """Not our error type (a file system's ``OSError``): the abort still asks the store before undoing anything."""
    store = FlakyStore()
    await old_day(store)
    loader, day = await new_day(store)
    store.after_put = "oserror"
    with pytest.raises(OSError, match="injected"):
        await day.commit(commit_info(loader))
    assert (await day.abort()).startswith("2026-11-25 was committed by run r2; the next run")
    record = LockRecord.from_bytes(store.objects[LOCK].data)
    assert record is not None and all(key in store.objects for key in record.objects)


async def test_a_store_that_goes_down_once_the_manifest_write_was_answered_leaves_a_day_known_committed() -> None:
    store = FlakyStore()
    await old_day(store)
    loader, day = await new_day(store)
    store.down_after_manifest = True
    with pytest.raises(TransientLoadError, match="does not answer") as caught:
        await day.commit(commit_info(loader))
    assert str(caught.value.outcome).startswith("2026-11-25 was committed by run r2, but ")
    # The write was answered: the abort knows the day is new without asking the store (which could not say).
    assert (await day.abort()).startswith("2026-11-25 was committed by run r2; the next run")
    record = LockRecord.from_bytes(store.objects[LOCK].data)
    assert record is not None and all(key in store.objects for key in record.objects)
    store.down_after_manifest = store.reads_fail = store.deletes_fail = False
    report = await MemoryLoader(store, "r3").recover()
    assert report.actions == ["2026-11-25 movies: rolled forward to run r2, which had committed"]


async def test_an_abort_before_the_commit_point_neither_reads_nor_deletes() -> None:
    """Nothing was stored yet: a store that can neither say which manifest it holds nor delete leaves the day clean."""
    store = FlakyStore()
    old = await old_day(store)
    _loader, day = await new_day(store)
    store.reads_fail = store.deletes_fail = True
    assert await day.abort() == "nothing was committed; 2026-11-25 keeps its previous data"
    assert store.objects[MANIFEST].data == old
    assert not [key for key in store.objects if ".run-r2." in key] and LOCK not in store.objects


async def test_a_begin_that_fails_after_its_claim_says_nothing_was_committed_and_lets_the_day_go() -> None:
    store = FlakyStore()
    await old_day(store)
    with pytest.raises(LoadError, match="run r1 already committed 2026-11-25 trending movies, today") as caught:
        await MemoryLoader(store, "r1").begin(FEED)
    assert caught.value.outcome == "nothing was committed; 2026-11-25 keeps its previous data"
    assert LOCK not in store.objects and not store.uploads


async def test_the_sinks_a_dead_run_left_open_are_removed_by_the_next_runs_recovery() -> None:
    store = MemoryStore()
    sink = await store.open_sink(LAYOUT.run_key("version", DAY, FEED, "dead1"), "text/csv")
    await sink.write(b"half a day")  # the run died here: no lock holds its run any more
    report = await MemoryLoader(store, "r3").recover()
    assert report.actions == [
        "removed the unfinished write of memory://lake/_versions/2026/11/2026-11-25_movies.run-dead1.csv, "
        "left by an interrupted run"
    ]
    assert await store.leftovers() == []


class PlainLoader(LakeLoader[StageOptions]):
    """A third-party lake loader whose options are not ``LakeFormatOptions`` (no regression-guard settings)."""

    Options = StageOptions

    def __init__(self, store: MemoryStore) -> None:
        super().__init__(StageOptions(), context_for(DAY, "plain1"), name="plain")
        self.memory = store

    def build_store(self) -> ObjectStore:
        return self.memory


async def test_a_lake_loader_without_guard_options_commits_even_an_empty_day() -> None:
    store = MemoryStore()
    loader = PlainLoader(store)
    day = await loader.begin(FEED)
    committed = await day.commit(commit_info(loader))
    assert committed.outcome == "2026-11-25 was committed by run plain1"
    found = await loader.read_day(DAY, FEED)
    assert found is not None and found.empty
