"""Atomic local files, edge by edge, on a real folder."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.datalake.files import (
    fsync_folder,
    in_thread,
    shareable_mode,
    temp_beside,
    uninterrupted,
    write_bytes_atomic,
    write_text_atomic,
)


@pytest.fixture
def umask() -> Iterator[Any]:
    """Set the process umask for one test; ``shareable_mode``'s cache is cleared on both sides."""
    original = os.umask(0o022)
    os.umask(original)

    def set_to(mask: int) -> None:
        os.umask(mask)
        shareable_mode.cache_clear()

    yield set_to
    os.umask(original)
    shareable_mode.cache_clear()


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_the_shareable_mode_follows_the_umask_and_leaves_it_as_it_was(umask: Any, mask: int, expected: int) -> None:
    umask(mask)
    assert shareable_mode() == expected
    assert _current_umask() == mask


def test_an_atomic_file_gets_the_mode_a_plain_open_would(umask: Any, tmp_path: Path) -> None:
    umask(0o027)
    write_bytes_atomic(tmp_path / "a.csv", b"x")
    assert (tmp_path / "a.csv").stat().st_mode & 0o777 == 0o640


def _temp_name(target: Path, run_id: str | None) -> str:
    fd, temp = temp_beside(target, run_id)
    os.close(fd)
    assert temp.parent == target.parent and temp.exists()
    return temp.name


def test_a_temp_file_is_hidden_beside_its_target_and_named_after_it(tmp_path: Path) -> None:
    assert re.fullmatch(r"\.day\.csv\.[A-Za-z0-9_]+\.tmp", _temp_name(tmp_path / "day.csv", None))
    assert re.fullmatch(r"\.day\.csv\.run-r7\.[A-Za-z0-9_]+\.tmp", _temp_name(tmp_path / "day.csv", "r7"))


def test_a_temp_file_creates_missing_folders_and_reuses_existing_ones(tmp_path: Path) -> None:
    nested = tmp_path / "a" / "b" / "day.csv"
    _temp_name(nested, "r1")
    _temp_name(nested, "r2")
    assert len(list(nested.parent.iterdir())) == 2


def _pruning_mkstemp(monkeypatch: pytest.MonkeyPatch, times: int) -> list[str]:
    """``mkstemp`` that first removes its (empty) folder, as a concurrent prune would, ``times`` times."""
    real = tempfile.mkstemp
    calls: list[str] = []

    def mkstemp(*args: Any, **kwargs: Any) -> tuple[int, str]:
        calls.append(str(kwargs["dir"]))
        if len(calls) <= times:
            os.rmdir(kwargs["dir"])
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    return calls


def test_a_folder_pruned_once_between_mkdir_and_mkstemp_is_made_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = _pruning_mkstemp(monkeypatch, times=1)
    target = tmp_path / "day" / "a.csv"
    write_bytes_atomic(target, b"rows")
    assert target.read_bytes() == b"rows"
    assert len(calls) == 2


def test_a_folder_pruned_twice_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = _pruning_mkstemp(monkeypatch, times=2)
    with pytest.raises(FileNotFoundError):
        temp_beside(tmp_path / "day" / "a.csv")
    assert len(calls) == 2


def test_an_atomic_write_replaces_the_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "a.csv"
    target.write_bytes(b"old and longer")
    write_bytes_atomic(target, b"new", run_id="r1")
    write_text_atomic(tmp_path / "b.md", "é\n")
    assert target.read_bytes() == b"new"
    assert (tmp_path / "b.md").read_bytes() == "é\n".encode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.md"]


def test_a_failed_replace_raises_and_leaves_no_temp_file(tmp_path: Path) -> None:
    (tmp_path / "a.csv").mkdir()  # os.replace cannot put a file over a folder
    with pytest.raises(OSError):
        write_bytes_atomic(tmp_path / "a.csv", b"rows")
    assert [p.name for p in tmp_path.iterdir()] == ["a.csv"]
    assert (tmp_path / "a.csv").is_dir()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_a_folder_fsync_closes_what_it_opened_and_skips_a_missing_folder(tmp_path: Path) -> None:
    before = _open_fds()
    for _ in range(3):
        fsync_folder(tmp_path)
    fsync_folder(tmp_path / "missing")
    assert _open_fds() == before


# -- a file operation in a thread, and a cancellation --------------------------------------------------------
async def test_a_cancelled_file_operation_finishes_before_the_cancellation_is_raised(tmp_path: Path) -> None:
    """What SIGTERM does to a run: the cleanup that follows must see the file the thread was writing."""
    started, go_on = threading.Event(), threading.Event()
    target = tmp_path / "record.json"

    def write() -> str:
        started.set()
        assert go_on.wait(10)
        write_bytes_atomic(target, b"written")
        return "done"

    task = asyncio.ensure_future(in_thread(write))
    assert await asyncio.to_thread(started.wait, 10)
    task.cancel()
    for _ in range(3):
        await asyncio.sleep(0)
    task.cancel()  # again, while it waits for the thread, as a second Ctrl-C would
    for _ in range(3):
        await asyncio.sleep(0)
    assert not task.done(), "the cancellation waits for the thread"
    go_on.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert target.read_bytes() == b"written"


async def test_a_file_operation_in_a_thread_returns_its_result_or_raises_its_error(tmp_path: Path) -> None:
    assert await in_thread(write_bytes_atomic, tmp_path / "a", b"1") is None
    assert await in_thread(max, 3, 7) == 7
    with pytest.raises(FileNotFoundError):
        await in_thread(os.stat, tmp_path / "missing")


async def test_a_thread_that_fails_after_a_cancellation_still_reports_the_cancellation(tmp_path: Path) -> None:
    started, go_on = threading.Event(), threading.Event()

    def fail() -> None:
        started.set()
        assert go_on.wait(10)
        raise OSError("disk gone")

    task = asyncio.ensure_future(in_thread(fail))
    assert await asyncio.to_thread(started.wait, 10)
    task.cancel()
    await asyncio.sleep(0)
    go_on.set()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_the_error_of_work_a_cancellation_waited_for_is_retrieved() -> None:
    """Else asyncio logs "exception was never retrieved" once the work is collected, after the run has ended.

    The work is a future of the test's own, so the flag asyncio logs by is read directly: the cancelled caller's
    traceback keeps the work alive past any ``gc.collect()`` here, so the log itself never comes in time.
    """
    work: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waiting = asyncio.ensure_future(uninterrupted(work))
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.sleep(0)
    assert not waiting.done(), "the cancellation waits for the work"
    work.set_exception(OSError("disk gone"))
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert not work._log_traceback
