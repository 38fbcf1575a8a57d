"""A third-party loader: each day's cleaned rows as one JSON Lines file, visible only at commit.

The worked example of ``docs/writing-a-stage.md``: a ``Loader`` is one method, ``begin``, which
returns a ``LoadDay`` with three (``write``, ``commit``, ``abort``); adding ``describe`` and
``read_day`` makes the loader a ``LakeReader`` too, so the built-in reports can read days back from it.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.options import StageOptions
from pipeline.stage import CommitInfo, Committed, Feed, LoadDay, Loader


class JsonLinesOptions(StageOptions):
    """Where the days go."""

    folder: Path


class JsonLinesDay(LoadDay):
    """One day's rows, streamed to a temp file beside ``target`` and renamed over it on commit."""

    def __init__(self, target: Path, day: dt.date) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".tmp")  # same folder: atomic rename
        self._target, self._day, self._temp = target, day, Path(name)
        self._file = os.fdopen(fd, "w", encoding="utf-8")

    async def write(self, chunk: pd.DataFrame) -> None:
        """One JSON object per row."""
        self._file.write(chunk.to_json(orient="records", lines=True, force_ascii=False))

    async def commit(self, info: CommitInfo) -> Committed:
        """Flush to disk and rename over the previous day."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._temp, self._target)
        return Committed({"cleaned": str(self._target)}, f"{self._day} was committed by run {info.run_id}")

    async def abort(self) -> str:
        """Drop the temp file; the previous day stays as it was."""
        self._file.close()
        self._temp.unlink(missing_ok=True)
        return f"nothing was committed; {self._day} keeps its previous data"


class JsonLinesLoader(Loader[JsonLinesOptions]):
    """Writes each day to ``<folder>/<day>_<feed>.jsonl``."""

    Options = JsonLinesOptions

    def _path(self, day: dt.date, feed: Feed) -> Path:
        return self.options.folder / f"{day.isoformat()}_{feed.slug}.jsonl"

    async def begin(self, feed: Feed, *, reuse_raw: Mapping[str, Any] | None = None) -> JsonLinesDay:
        """Start the day (no raw zone here, so ``reuse_raw`` has nothing to reuse)."""
        day = self.context.trend_date
        return JsonLinesDay(self._path(day, feed), day)

    def describe(self) -> str:
        """The folder."""
        return str(self.options.folder)

    async def read_day(self, day: dt.date, feed: Feed) -> pd.DataFrame | None:
        """A committed day, or ``None``."""
        path = self._path(day, feed)
        return pd.read_json(path, lines=True, dtype=False) if path.exists() else None
