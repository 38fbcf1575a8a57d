"""``local`` loader: the lake in a folder on disk (the embedded default).

Each object is streamed to a hidden temporary file in its final folder, then fsynced
and ``os.replace``d into place, so readers see the old file or the new one, never half.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from pathlib import Path
from typing import IO

from pipeline.files import temp_beside
from pipeline.lake import LakeFormatOptions, ObjectLakeLoader, ObjectSink, validate_prefix
from pipeline.options import OptionError

logger = logging.getLogger(__name__)

_TEMP_SUFFIX = ".tmp"


@dataclasses.dataclass(frozen=True)
class LocalOptions(LakeFormatOptions):
    """Options of the ``local`` loader (plus ``format`` and ``layout`` from ``LakeFormatOptions``)."""

    root: Path = Path("lake")
    prefix: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "prefix", validate_prefix(self.prefix))
        if self.root.exists() and not self.root.is_dir():
            raise OptionError("root", f"{self.root} exists and is not a folder")


class _FileSink(ObjectSink):
    """A temp file beside the target, renamed over it on commit."""

    def __init__(self, target: Path) -> None:
        self.target = target
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(target)
        fd, self.temp = temp_beside(target)
        self.file: IO[bytes] | None = os.fdopen(fd, "wb")

    async def write(self, data: bytes) -> None:
        assert self.file is not None, "write after commit or abort"
        self.file.write(data)

    async def commit(self) -> None:
        assert self.file is not None, "commit after commit or abort"
        await asyncio.to_thread(self._sync_and_replace)

    def _sync_and_replace(self) -> None:
        assert self.file is not None
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        self.file = None
        os.replace(self.temp, self.target)
        with contextlib.suppress(OSError):  # directory fsync is not possible everywhere
            dir_fd = os.open(self.target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    async def abort(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        with contextlib.suppress(FileNotFoundError):
            self.temp.unlink()


def _remove_stale_temps(target: Path) -> None:
    """Remove temp files a killed earlier run left for the same target."""
    for stale in target.parent.glob(f".{target.name}.*{_TEMP_SUFFIX}"):
        logger.info("removing a temp file left by an interrupted run: %s", stale)
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()


class LocalLoader(ObjectLakeLoader[LocalOptions]):
    """Writes the lake under ``root`` with the same key layout as the S3 lake."""

    Options = LocalOptions

    def describe(self) -> str:
        """The lake's folder."""
        return str(self.options.root / self.options.prefix) if self.options.prefix else str(self.options.root)

    def locate(self, key: str) -> str:
        """The file path of ``key``."""
        return str(self.options.root / key)

    async def open_sink(self, key: str, content_type: str) -> ObjectSink:
        """A temp file beside the final path."""
        return _FileSink(self.options.root / key)

    async def get_bytes(self, key: str) -> bytes | None:
        """The file's bytes, or ``None`` if it is not there."""
        try:
            return (self.options.root / key).read_bytes()
        except FileNotFoundError:
            return None
