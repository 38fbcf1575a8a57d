"""``replay`` extractor: re-reads raw TMDB trending pages from disk, offline.

Accepts a folder of page documents (``*.json``, one TMDB response each, replayed in
file-name order; an optional ``_lookups.json`` sorts first) or a raw-zone
file (``.jsonl.gz`` or ``.jsonl``: an optional ``{"lookups": ...}`` line, then one page
per line), so any archived day can be rebuilt without the network.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import json
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

from pipeline import rawzone
from pipeline.errors import ExtractError
from pipeline.stage import Batch, Extractor, Feed, Lookups, MediaType, TimeWindow

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ReplayOptions:
    """Options of the ``replay`` extractor."""

    path: Path
    media_type: MediaType = "movie"
    time_window: TimeWindow = "day"


class ReplayExtractor(Extractor[ReplayOptions]):
    """Yields archived pages in page order, with the lookups recorded beside them."""

    Options = ReplayOptions

    @property
    def feed(self) -> Feed:
        """The feed named in the options."""
        return Feed(self.options.media_type, self.options.time_window)

    async def open(self) -> None:
        """Fail early, with the path, when there is nothing to replay."""
        if not self.options.path.exists():
            raise ExtractError(f"replay path not found: {self.options.path}", stage=self.name)

    async def batches(self) -> AsyncIterator[Batch]:
        """Pages in file order (files by name in a folder); a lookups line applies to the pages after it."""
        lookups = Lookups()
        extracted_at = dt.datetime.now(dt.UTC)
        for where, document in self._documents():
            if not isinstance(document, Mapping):
                raise ExtractError(f"{where}: expected a JSON object", stage=self.name)
            found = rawzone.parse_lookups(document)
            if found is not None:
                lookups = found
                continue
            page = document.get("page")
            if isinstance(page, bool) or not isinstance(page, int) or page < 1:
                raise ExtractError(f"{where}: missing or invalid 'page' number", stage=self.name)
            self.counters["pages"] += 1
            yield Batch(page=page, payload=document, feed=self.feed, extracted_at=extracted_at, lookups=lookups)

    def _documents(self) -> Iterator[tuple[str, Any]]:
        path = self.options.path
        if path.is_dir():
            files = sorted(path.glob("*.json"))
            if not files:
                raise ExtractError(f"no *.json page files in {path}", stage=self.name)
            for file in files:
                yield str(file), self._parse(file.read_bytes(), str(file))
            return
        opener = gzip.open if path.suffix == ".gz" else open
        try:
            with opener(path, "rb") as handle:
                for number, line in enumerate(handle, start=1):
                    if line.strip():
                        where = f"{path}:{number}"
                        yield where, self._parse(line, where)
        except (OSError, EOFError) as exc:
            raise ExtractError(f"cannot read {path}: {exc}", stage=self.name) from exc

    def _parse(self, data: bytes, where: str) -> Any:
        try:
            return json.loads(data)
        except ValueError as exc:
            raise ExtractError(f"{where}: invalid JSON ({exc})", stage=self.name) from exc
