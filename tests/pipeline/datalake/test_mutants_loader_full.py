"""The commit protocol's quieter promises, on the local lake (docs/testing.md, ``loader.py`` in full).

What a run says (its outcome, its log), what its lock records, and what ``repair``, ``recover``
and the readers do with odd but possible lake states, forged on the real file system.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.commands._lake import configured_feed, lake_reader
from pipeline.config import load_config
from pipeline.datalake import Layout, LockRecord, schema
from pipeline.datalake.loader import ENCODE_BYTES
from pipeline.errors import CommitConflict, ConfigError, LoadError, RegressionRefused
from pipeline.stage import Feed
from stages.loaders.local import LocalLoader
from tests.pipeline.datalake.test_mutants_loader import (
    FEED,
    LAYOUT,
    LOCK,
    MANIFEST,
    SEED,
    _streamed,
    commit,
    dead_lock,
    files,
    raw,
    version,
)
from tests.support.fakes import NOW, TREND_DATE, batch, commit_info
from tests.support.lake import loader_for, rows

LOCKS = LAYOUT.root("lock") + "/"
PARQUET_LAYOUT = Layout(format="parquet")


async def commit_parquet(root: Path, run_id: str) -> None:
    loader = loader_for(root, "parquet", "monthly", TREND_DATE, run_id)
    async with loader:
        await loader.begin(FEED)
        await loader.write(rows(TREND_DATE, range(1, 41)))
        await loader.commit(commit_info(loader))


async def test_a_loader_that_never_began_has_no_outcome(tmp_path: Path) -> None:
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r1")
    assert loader.outcome() is None
    await loader.abort()
    assert loader.outcome() is None


async def test_a_run_on_a_healthy_lake_logs_no_recovery(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    await commit(tmp_path, "r1")
    with caplog.at_level(logging.WARNING, logger="pipeline.datalake.loader"):
        await commit(tmp_path, "r2", range(101, 141))
    assert caplog.records == []


async def test_a_run_that_reuses_raw_pages_locks_only_its_version(tmp_path: Path) -> None:
    await commit(tmp_path, "r1")
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r2")
    entry = {"key": raw("r1"), "bytes": 1, "sha256": "ab", "content_type": "application/gzip"}
    loader.reuse_raw = entry
    await loader.begin(FEED)
    record = LockRecord.from_bytes((tmp_path / LOCK).read_bytes())
    assert record is not None and record.objects == (version("r2"),)
    await loader.write(rows(TREND_DATE, range(1, 41)))
    await loader.commit(commit_info(loader))
    assert loader.reuse_raw == entry


async def test_the_lock_record_names_the_runs_objects_and_the_version_it_replaces(tmp_path: Path) -> None:
    await commit(tmp_path, "r1")
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r2")
    await loader.begin(FEED)
    record = LockRecord.from_bytes((tmp_path / LOCK).read_bytes())
    assert record is not None
    assert (record.run_id, record.objects, record.previous_version) == ("r2", (version("r2"), raw("r2")), version("r1"))
    await loader.abort()


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


async def test_writing_outside_begin_and_commit_is_refused(tmp_path: Path) -> None:
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r1")
    with pytest.raises(LoadError, match=r"write before begin\(\), or after commit/abort"):
        await loader.write(rows(TREND_DATE, range(1, 3)))
    loader.reuse_raw = {"key": raw("r0")}
    with pytest.raises(LoadError, match=r"write before begin\(\)"):
        await loader.write_raw(batch(1, [1]))
    assert files(tmp_path) == []


async def test_a_chunk_without_the_schemas_columns_is_refused_as_it_is_written(tmp_path: Path) -> None:
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r1")
    await loader.begin(FEED)
    with pytest.raises(LoadError, match="chunk lacks schema columns: title, genres"):
        await loader.write(rows(TREND_DATE, range(1, 3)).drop(columns=["genres", "title"]))
    await loader.abort()


async def test_a_begin_that_cannot_open_its_sinks_leaves_nothing_and_can_be_tried_again(tmp_path: Path) -> None:
    (tmp_path / "raw_data").write_bytes(b"a file where the raw zone's folder goes")
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r1")
    with pytest.raises(OSError):
        await loader.begin(FEED)
    assert loader.outcome() == "nothing was committed; 2026-11-25 keeps its previous data"
    assert files(tmp_path) == ["raw_data"]
    (tmp_path / "raw_data").unlink()
    await loader.begin(FEED)
    await loader.write(rows(TREND_DATE, range(1, 41)))
    await loader.commit(commit_info(loader))
    assert files(tmp_path) == sorted([SEED, MANIFEST, version("r1"), raw("r1")])


async def test_each_run_measures_its_own_rows_to_size_its_batches(tmp_path: Path) -> None:
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r1")
    await loader.begin(FEED)
    await loader.write(rows(TREND_DATE, range(1, 2), title="T" * 1_200_000 + " {id}"))
    assert _streamed(tmp_path) > 0, "a row over a mebibyte is a batch of its own"
    await loader.abort()
    await loader.begin(FEED)
    await loader.write(rows(TREND_DATE, range(1, 2), title="T" * 200_000 + " {id}"))
    assert _streamed(tmp_path) == 0, "a row a fifth of a mebibyte wide waits for the next ones"
    await loader.abort()


async def test_the_manifest_holds_every_fact_of_the_commit(tmp_path: Path) -> None:
    finished = NOW + dt.timedelta(minutes=3)
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r1")
    async with loader:
        await loader.begin(FEED)
        await loader.write_raw(batch(1, list(range(1, 41))))
        await loader.write(rows(TREND_DATE, range(1, 41)))
        written = await loader.commit(
            commit_info(loader, finished_at=finished, counters={"pages": 1}, dropped={"no title": 2})
        )
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


async def test_a_committed_run_is_over_writes_are_refused_and_abort_does_nothing(tmp_path: Path) -> None:
    loader = await commit(tmp_path, "r1")
    before = {name: (tmp_path / name).read_bytes() for name in files(tmp_path)}
    with pytest.raises(LoadError, match=r"after commit/abort"):
        await loader.write(rows(TREND_DATE, range(1, 3)))
    await loader.abort()
    assert loader.outcome() is None
    assert {name: (tmp_path / name).read_bytes() for name in files(tmp_path)} == before


async def test_a_day_is_refused_exactly_below_its_share_of_the_previous_rows(tmp_path: Path) -> None:
    await commit(tmp_path, "r1")  # 40 rows; the default min_row_ratio is 0.5
    smaller = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r2")
    await smaller.begin(FEED)
    await smaller.write(rows(TREND_DATE, range(1, 20)))
    with pytest.raises(RegressionRefused, match=r"refusing to replace 2026-11-25 \(40 rows, run r1\) with 19 rows"):
        await smaller.commit(commit_info(smaller))
    await smaller.abort()
    await commit(tmp_path, "r3", range(1, 21))
    assert json.loads((tmp_path / MANIFEST).read_bytes())["rows"] == 20


async def test_a_run_refused_for_a_held_lock_is_told_who_holds_it(tmp_path: Path) -> None:
    holder = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r1")
    await holder.begin(FEED)
    loser = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r2")
    with pytest.raises(CommitConflict, match=rf": run r1 on {socket.gethostname()} \(pid {os.getpid()}\) since 20"):
        await loser.begin(FEED)
    await holder.abort()


# -- races: another run acts between a listing and what follows it ----------------------------
class RacingLake(LocalLoader):
    """The local lake, where another process acts right after a listing: the moment a race needs."""

    def __init__(self, root: Path, run_id: str) -> None:
        plain = loader_for(root, "csv", "monthly", TREND_DATE, run_id)
        super().__init__(plain.options, plain.context, name=plain.name)
        self.after_listing: dict[str, Callable[[], object]] = {}

    async def list_keys(self, prefix: str) -> list[str]:
        keys = await super().list_keys(prefix)
        action = self.after_listing.pop(prefix, None)
        if action is not None:
            action()
        return keys


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
        await loader.begin(FEED)
    assert caplog.messages == ["recovered: 2026-11-25 movies: rolled back run r2, which died before its commit"]
    assert not (tmp_path / version("r2")).exists()
    await loader.abort()
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
    with pytest.raises(LoadError, match=f"{tmp_path / MANIFEST} disappeared while it was read"):
        await loader.repair()


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
    await loader.begin(FEED)
    with pytest.raises(LoadError, match=r"begin\(\) called twice without commit or abort"):
        await loader.begin(FEED)
    await loader.write(rows(TREND_DATE, range(1, 41)))
    await loader.commit(commit_info(loader))
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
        await loader.begin(FEED)
        await loader.write(rows(TREND_DATE, range(1, 3)).iloc[:0])
        await loader.commit(commit_info(loader))
        day = await loader.read_day(TREND_DATE, FEED)
    assert day is not None and len(day) == 0 and list(day.columns) == list(schema.COLUMN_NAMES)


async def test_wide_rows_not_yet_in_the_schemas_dtypes_are_measured_by_their_text(tmp_path: Path) -> None:
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r1")
    await loader.begin(FEED)
    await loader.write(rows(TREND_DATE, range(1, 2), title="T" * 1_200_000 + " {id}").astype(object))
    assert _streamed(tmp_path) > 0, "a row over a mebibyte is a batch of its own, whatever its dtypes"
    await loader.abort()


async def test_a_batch_is_sized_by_the_rows_own_bytes_not_their_index(tmp_path: Path) -> None:
    """Rows of exactly ENCODE_BYTES / 10 bytes make batches of 10: the index adds nothing."""
    one = rows(TREND_DATE, range(1, 2), title="{id}")
    per_row = int(one.memory_usage(deep=True, index=False).sum())
    title = "T" * (ENCODE_BYTES // 10 - per_row) + "{id}"
    chunks = [rows(TREND_DATE, range(i, i + 1), title=title) for i in range(1, 11)]
    assert ENCODE_BYTES // chunks[0].memory_usage(deep=True, index=False).sum() == 10
    loader = loader_for(tmp_path, "csv", "monthly", TREND_DATE, "r1")
    await loader.begin(FEED)
    for chunk in chunks[:9]:
        await loader.write(chunk)
    assert _streamed(tmp_path) == 0
    await loader.write(chunks[9])
    assert _streamed(tmp_path) > 0
    await loader.abort()
