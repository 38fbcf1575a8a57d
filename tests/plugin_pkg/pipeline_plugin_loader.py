"""A third-party loader: each day's cleaned rows as one JSON Lines file, visible only at commit.

The worked example of ``docs/writing-a-stage.md``: a ``Loader`` is four methods (``begin``,
``write``, ``commit``, ``abort``); adding ``describe`` and ``read_day`` makes it a
``LakeReader`` too, so the built-in reports can read days back from it.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path
from typing import IO

import pandas as pd

from pipeline import CommitInfo, Feed, Loader
from pipeline.options import StageOptions


class JsonLinesOptions(StageOptions):
    """Where the days go."""

    folder: Path


class JsonLinesLoader(Loader[JsonLinesOptions]):
    """Streams rows to a temp file beside ``<folder>/<day>_<feed>.jsonl`` and renames it on commit."""

    Options = JsonLinesOptions
    _file: IO[str] | None = None

    def _path(self, day: dt.date, feed: Feed) -> Path:
        return self.options.folder / f"{day.isoformat()}_{feed.slug}.jsonl"

    async def begin(self, feed: Feed) -> None:
        """Open a temp file in the target's folder, so the rename is atomic."""
        self._target = self._path(self.context.trend_date, feed)
        self._target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self._target.parent, prefix=".", suffix=".tmp")
        self._file, self._temp = os.fdopen(fd, "w", encoding="utf-8"), Path(name)

    async def write(self, chunk: pd.DataFrame) -> None:
        """One JSON object per row."""
        assert self._file is not None, "write before begin"
        self._file.write(chunk.to_json(orient="records", lines=True, force_ascii=False))

    async def commit(self, info: CommitInfo) -> dict[str, str]:
        """Flush to disk and rename over the previous day."""
        assert self._file is not None, "commit before begin"
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        os.replace(self._temp, self._target)
        return {"cleaned": str(self._target)}

    async def abort(self) -> None:
        """Drop the temp file; the previous day stays as it was."""
        if self._file is not None:
            self._file.close()
            self._file = None
            self._temp.unlink(missing_ok=True)

    def describe(self) -> str:
        """The folder."""
        return str(self.options.folder)

    async def read_day(self, day: dt.date, feed: Feed) -> pd.DataFrame | None:
        """A committed day, or ``None``."""
        path = self._path(day, feed)
        return pd.read_json(path, lines=True, dtype=False) if path.exists() else None
