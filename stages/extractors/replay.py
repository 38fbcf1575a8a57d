"""``replay`` extractor: re-reads raw TMDB trending pages from disk, offline.

Accepts a folder of page documents (``*.json``, one TMDB response each, replayed in
file-name order; an optional ``_lookups.json`` sorts first) or a raw-zone
file (``.jsonl.gz`` or ``.jsonl``: an optional ``{"lookups": ...}`` line, then one page
per line), so any archived day can be rebuilt without the network.

A raw-zone response record (``pipeline.datalake.rawzone``) replays with the page that was
requested and the time it was fetched, so the cleaned file comes out byte-identical to
the live run's. A legacy line (a bare page document) has neither: its body's own
``page`` is used, and ``extracted_at`` (default: when the replay started).
"""

from __future__ import annotations

import datetime as dt
import gzip
import zlib
from collections.abc import AsyncGenerator, Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import field_validator

from pipeline.datalake import rawzone, schema
from pipeline.errors import ExtractError
from pipeline.options import StageOptions
from pipeline.stage import Batch, Check, Extractor, Feed, Lookups, MediaType, TimeWindow


class ReplayOptions(StageOptions):
    """Options of the ``replay`` extractor."""

    path: Path
    media_type: MediaType = "movie"
    time_window: TimeWindow = "day"
    extracted_at: str | None = None

    @field_validator("extracted_at")
    @classmethod
    def _extracted_at_has_an_offset(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                stamp = dt.datetime.fromisoformat(value)
            except ValueError:
                stamp = None
            if stamp is None or stamp.tzinfo is None:
                raise ValueError(
                    f"expected an ISO 8601 time with a UTC offset, e.g. 2026-11-25T12:00:00+00:00, got {value!r}"
                )
        return value

    @property
    def legacy_extracted_at(self) -> dt.datetime | None:
        """The fetch time for pages archived without one, if set."""
        return None if self.extracted_at is None else dt.datetime.fromisoformat(self.extracted_at)


class ReplayExtractor(Extractor[ReplayOptions]):
    """Yields archived pages in page order, with the lookups recorded beside them."""

    Options = ReplayOptions

    @property
    def feed(self) -> Feed:
        """The feed named in the options."""
        return Feed(self.options.media_type, self.options.time_window)

    async def preflight(self, connect: bool) -> list[Check]:
        """Options valid, and the replay path there: a folder with ``*.json`` pages, or a readable file."""
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
        legacy_extracted_at = self.options.legacy_extracted_at or dt.datetime.now(dt.UTC)
        for where, data, document in self._documents():
            if not isinstance(document, Mapping):
                raise ExtractError(f"{where}: expected a JSON object", stage=self.name)
            found = rawzone.parse_lookups(document)
            if found is not None:
                lookups = found
                continue
            if rawzone.is_record(document):
                try:
                    raw = rawzone.parse_record(document)
                except rawzone.RawRecordError as exc:
                    raise ExtractError(f"{where}: {exc}", stage=self.name) from None
                self.counters["pages"] += 1
                yield Batch(
                    page=raw.page,
                    payload=raw.document,
                    feed=self.feed,
                    extracted_at=raw.fetched_at or legacy_extracted_at,
                    lookups=lookups,
                    body=raw.body,
                    status=raw.status,
                    request=raw.request,
                )
                continue
            page = document.get("page")
            if isinstance(page, bool) or not isinstance(page, int) or page < 1:
                raise ExtractError(f"{where}: missing or invalid 'page' number", stage=self.name)
            self.counters["pages"] += 1
            self.counters["legacy_pages"] += 1
            yield Batch(
                page=page,
                payload=document,
                feed=self.feed,
                extracted_at=legacy_extracted_at,
                lookups=lookups,
                body=data,
            )

    def _documents(self) -> Iterator[tuple[str, bytes, Any]]:
        """``(where, bytes, parsed)`` per document: a file of a folder, or a non-empty line of an archive."""
        path = self.options.path
        if path.is_dir():
            files = sorted(path.glob("*.json"))
            if not files:
                raise ExtractError(f"no *.json page files in {path}", stage=self.name)
            for file in files:
                data = file.read_bytes()
                yield str(file), data, self._parse(data, str(file))
            return
        opener = gzip.open if path.suffix == ".gz" else open
        try:
            with opener(path, "rb") as handle:
                for number, line in enumerate(handle, start=1):
                    if line.strip():
                        where = f"{path}:{number}"
                        data = line.rstrip(b"\r\n")
                        yield where, data, self._parse(data, where)
        except (OSError, EOFError, zlib.error) as exc:
            raise ExtractError(f"cannot read {path}: {exc}", stage=self.name) from exc

    def _parse(self, data: bytes, where: str) -> Any:
        try:
            return schema.parse_json(data)
        except (ValueError, RecursionError) as exc:
            raise ExtractError(f"{where}: invalid JSON ({exc})", stage=self.name) from exc
