"""Atomic local files: a temp file beside the target, fsynced, then ``os.replace``d over it."""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path


@functools.cache
def shareable_mode() -> int:
    """The mode a plain ``open()`` would give a new file (0o666 less the umask).

    ``mkstemp`` creates files as 0600 and ``os.replace`` keeps that, which would hide the
    lake and the report from every other user and service on the machine.
    """
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def temp_beside(target: Path) -> tuple[int, Path]:
    """Open a hidden temp file in ``target``'s folder (same file system, so the rename is atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.fchmod(fd, shareable_mode())
    return fd, Path(name)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never half."""
    fd, temp = temp_beside(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
