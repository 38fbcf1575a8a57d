"""``replay`` extractor: re-reads raw TMDB trending pages from disk, offline.

Accepts a folder of raw-zone documents (``*.json``, one response record each, replayed in
file-name order; an optional ``_lookups.json`` sorts first) or a raw-zone
file (``.jsonl.gz`` or ``.jsonl``: an optional ``{"lookups": ...}`` line, then one response
record per line), so any archived day can be rebuilt without the network.

A response record (``pipeline.datalake.rawzone``) replays with the page that was
requested and the time it was fetched, so the cleaned file comes out byte-identical to
the live run's.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncGenerator, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pipeline.datalake import rawzone, schema
from pipeline.errors import ExtractError
from pipeline.options import StageOptions
from pipeline.stage import Batch, Check, Extractor, Feed, Lookups, MediaType, RunContext, TimeWindow


class ReplayOptions(StageOptions):
    """Options of the ``replay`` extractor."""

    path: Path
    media_type: MediaType = "movie"
    time_window: TimeWindow = "day"


class ReplayExtractor(Extractor[ReplayOptions]):
    """Yields archived pages in page order, with the lookups recorded beside them."""

    Options = ReplayOptions

    def __init__(self, options: ReplayOptions, context: RunContext | None = None, *, name: str | None = None) -> None:
        super().__init__(options, context, name=name)
        self._pages = 0

    @property
    def feed(self) -> Feed:
        """The feed named in the options."""
        return Feed(self.options.media_type, self.options.time_window)

    def statistics(self, feed: Feed | None = None) -> Mapping[str, float]:
        """``pages``: how many pages were replayed so far."""
        return MappingProxyType({"pages": self._pages})

    async def preflight(self, connect: bool) -> list[Check]:
        """Options valid, and the replay path there: a folder with ``*.json`` records, or a readable file."""
        checks = await super().preflight(connect)
        path = self.options.path
        if not path.exists():
            return [*checks, self.preflight_check("path", f"replay path not found: {path}", ok=False)]
        if path.is_dir():
            pages = len(list(path.glob("*.json")))
            if not pages:
                return [*checks, self.preflight_check("path", f"no *.json page files in {path}", ok=False)]
            return [*checks, self.preflight_check("path", f"{path}: {pages} JSON file(s)")]
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            return [*checks, self.preflight_check("path", f"cannot read {path}: {exc.strerror or exc}", ok=False)]
        return [*checks, self.preflight_check("path", f"{path}: readable archive")]

    async def open(self) -> None:
        """Fail early, with the path, when there is nothing to replay."""
        if not self.options.path.exists():
            raise ExtractError(f"replay path not found: {self.options.path}", stage=self.name)

    async def batches(self) -> AsyncGenerator[Batch, None]:
        """Pages in file order (files by name in a folder); a lookups line applies to the pages after it."""
        lookups = Lookups()
        for where, document in self._documents():
            if not isinstance(document, Mapping):
                raise ExtractError(f"{where}: expected a JSON object", stage=self.name)
            found = rawzone.parse_lookups(document)
            if found is not None:
                lookups = found
                continue
            if not rawzone.is_record(document):
                raise ExtractError(f"{where}: not a raw-zone response record or lookups line", stage=self.name)
            try:
                raw = rawzone.parse_record(document)
            except rawzone.RawRecordError as exc:
                raise ExtractError(f"{where}: {exc}", stage=self.name) from None
            self._pages += 1
            yield Batch(
                page=raw.page,
                payload=raw.document,
                feed=self.feed,
                extracted_at=raw.fetched_at,
                lookups=lookups,
                body=raw.body,
                status=raw.status,
                request=raw.request,
            )

    def _documents(self) -> Iterator[tuple[str, Any]]:
        """``(where, parsed)`` per document: a file of a folder, or a non-empty line of an archive."""
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
                        yield where, self._parse(line.rstrip(b"\r\n"), where)
        except (OSError, EOFError, zlib.error) as exc:
            raise ExtractError(f"cannot read {path}: {exc}", stage=self.name) from exc

    def _parse(self, data: bytes, where: str) -> Any:
        try:
            return schema.parse_json(data)
        except (ValueError, RecursionError) as exc:
            raise ExtractError(f"{where}: invalid JSON ({exc})", stage=self.name) from exc
