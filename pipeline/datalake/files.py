"""Atomic local files: a temp file beside the target, fsynced, then ``os.replace``d over it."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

TEMP_SUFFIX = ".tmp"

T = TypeVar("T")


async def in_thread(function: Callable[..., T], /, *args: object) -> T:
    """``function(*args)`` in a worker thread; a cancellation is raised only once the thread is done.

    A thread cannot be stopped: with a bare ``asyncio.to_thread``, a run cancelled (SIGTERM, Ctrl-C) while a
    thread writes a file cleans up first, and the thread then puts the file in place behind its back (a lock
    record, an object) after the cleanup has looked. Here the cleanup sees whatever the thread did.
    """
    return await uninterrupted(asyncio.to_thread(function, *args))


async def uninterrupted(work: Awaitable[T]) -> T:
    """Await ``work`` to its end even when the caller is cancelled meanwhile; the cancellation is raised after.

    A write whose completion a later step depends on (a manifest, a version, a lock record) must not be split
    from the record that it happened: a cancelled request may still be applied by the store, and a rollback
    that runs before it lands would undo objects that the store then says are committed. ``work`` is run as a
    task of its own, so what it records about itself (``committed = True`` after the write) is recorded
    whatever happens to the caller. A second cancellation while waiting is absorbed: the work still finishes.
    """
    future = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        while not future.done():
            with contextlib.suppress(asyncio.CancelledError):  # cancelled again: the work still has to finish
                await asyncio.wait({future})
        if not future.cancelled():
            future.exception()  # retrieved: the cancellation is what this call reports
        raise


@functools.cache
def shareable_mode() -> int:
    """The mode a plain ``open()`` would give a new file (0o666 less the umask).

    ``mkstemp`` creates files as 0600 and ``os.replace`` keeps that, which would hide the
    lake and the report from every other user and service on the machine.
    """
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def temp_beside(target: Path, run_id: str | None = None) -> tuple[int, Path]:
    """Open a hidden temp file in ``target``'s folder (same file system, so the rename is atomic).

    With ``run_id`` the name carries ``.run-<id>.``, so a lake can tell whose temp file it is.
    """
    tag = f".run-{run_id}." if run_id else "."
    for attempt in (1, 2):
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}{tag}", suffix=TEMP_SUFFIX)
        except FileNotFoundError:  # another process pruned the empty folder in between
            if attempt == 2:
                raise
            continue
        os.fchmod(fd, shareable_mode())
        return fd, Path(name)
    raise AssertionError("unreachable")


def write_bytes_atomic(path: Path, data: bytes, run_id: str | None = None) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    fd, temp = temp_beside(path, run_id)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the platform allows a folder fsync)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
