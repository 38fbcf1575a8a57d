"""Lake semantics shared by every object-store loader (local folder, S3, ...).

A day is three objects, written in this order and each made visible atomically. With the
default ``monthly`` layout::

    cleaned_data/YYYY/MM/YYYY-MM-DD_<feed>.csv       the cleaned rows (or .parquet)
    raw_data/YYYY/MM/YYYY-MM-DD_<feed>.jsonl.gz      every raw page, as received
    _manifests/YYYY/MM/YYYY-MM-DD_<feed>.json        written last: its presence means "complete"

and with the ``hive`` layout, which query engines read as partitions::

    cleaned_data/media_type=movie/time_window=day/year=YYYY/month=MM/day=DD/part-0.csv
    raw_data/media_type=movie/time_window=day/year=YYYY/month=MM/day=DD/part-0.jsonl.gz
    _manifests/media_type=movie/time_window=day/year=YYYY/month=MM/day=DD/manifest.json

Concrete loaders implement three primitives: open a sink that becomes visible only on
``commit``, get an object's bytes, and render a key as a location for humans. They get
the formats and layouts by deriving their options from ``LakeFormatOptions``.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import zlib
from collections.abc import Mapping
from typing import Any, Literal

import pandas as pd

from pipeline import formats, rawzone, schema
from pipeline.errors import ConfigError, LoadError
from pipeline.options import OptionError
from pipeline.stage import Batch, Feed, Loader, OptionsT

logger = logging.getLogger(__name__)

LayoutStyle = Literal["monthly", "hive"]
LAYOUTS: tuple[LayoutStyle, ...] = ("monthly", "hive")
ZONE_FOLDERS: dict[str, str] = {"cleaned": "cleaned_data", "raw": "raw_data", "manifest": "_manifests"}
ENCODE_ROWS = 2000
"""At most this many rows are queued before the loader encodes and streams them (a TMDB page is 20)."""
ENCODE_BYTES = 1 << 20
"""Rows are also encoded once their in-memory size nears this, so wide rows never pile up."""

# The content types of the default (CSV) lake; a Parquet cleaned zone uses formats.CONTENT_TYPES.
CONTENT_TYPES = {
    "cleaned": "text/csv; charset=utf-8",
    "raw": "application/gzip",
    "manifest": "application/json",
}


def validate_prefix(prefix: str, key: str = "prefix") -> str:
    """Check a lake prefix: no leading ``/``, no ``..``, no empty segments. Returns it without a trailing ``/``."""
    if not prefix:
        return ""
    if prefix.startswith("/"):
        raise OptionError(key, f"must not start with '/': {prefix!r}")
    trimmed = prefix[:-1] if prefix.endswith("/") else prefix
    segments = trimmed.split("/")
    if any(s == "" for s in segments):
        raise OptionError(key, f"must not contain empty segments: {prefix!r}")
    if any(s in (".", "..") for s in segments):
        raise OptionError(key, f"must not contain '.' or '..' segments: {prefix!r}")
    return trimmed


@dataclasses.dataclass(frozen=True, kw_only=True)
class LakeFormatOptions:
    """Options every object-store loader inherits: the cleaned file format and the key layout."""

    format: formats.Format = "csv"
    layout: LayoutStyle = "monthly"

    def __post_init__(self) -> None:
        if self.format == "parquet":
            try:
                formats.require_pyarrow()
            except ConfigError as exc:
                raise OptionError("format", str(exc)) from None


@dataclasses.dataclass(frozen=True)
class Layout:
    """Maps a day and feed to the keys of its three objects."""

    prefix: str = ""
    style: LayoutStyle = "monthly"
    format: formats.Format = "csv"

    @classmethod
    def for_options(cls, options: object) -> Layout:
        """The layout a loader's options ask for (``prefix``, and ``format``/``layout`` if it has them)."""
        prefix = getattr(options, "prefix", "") or ""
        if isinstance(options, LakeFormatOptions):
            return cls(prefix, options.layout, options.format)
        return cls(prefix)

    def root(self, zone: str) -> str:
        """The folder key that holds every object of ``zone``, without a trailing ``/``."""
        folder = ZONE_FOLDERS[zone]
        return f"{self.prefix}/{folder}" if self.prefix else folder

    def key(self, zone: str, day: dt.date, feed: Feed) -> str:
        """The key of ``zone`` (``cleaned``, ``raw`` or ``manifest``) for ``day`` and ``feed``."""
        suffix = {"cleaned": formats.EXTENSIONS[self.format], "raw": ".jsonl.gz", "manifest": ".json"}[zone]
        if self.style == "hive":
            partition = (
                f"media_type={feed.media_type}/time_window={feed.time_window}/year={day:%Y}/month={day:%m}/day={day:%d}"
            )
            name = "manifest.json" if zone == "manifest" else f"part-0{suffix}"
            return f"{self.root(zone)}/{partition}/{name}"
        return f"{self.root(zone)}/{day:%Y}/{day:%m}/{day.isoformat()}_{feed.slug}{suffix}"

    def keys(self, day: dt.date, feed: Feed) -> dict[str, str]:
        """All three keys, in commit order."""
        return {zone: self.key(zone, day, feed) for zone in ("cleaned", "raw", "manifest")}


class ObjectSink(abc.ABC):
    """One object being written; invisible to readers until ``commit``."""

    @abc.abstractmethod
    async def write(self, data: bytes) -> None:
        """Append bytes."""

    @abc.abstractmethod
    async def commit(self) -> None:
        """Make the object visible atomically, replacing any previous version."""

    @abc.abstractmethod
    async def abort(self) -> None:
        """Discard what was written; the previous version stays intact."""


class _Tracked:
    """A sink plus its running size and SHA-256."""

    def __init__(self, key: str, sink: ObjectSink) -> None:
        self.key = key
        self.sink = sink
        self.bytes = 0
        self.sha256 = hashlib.sha256()

    async def write(self, data: bytes) -> None:
        if data:
            self.sha256.update(data)
            self.bytes += len(data)
            await self.sink.write(data)


class ObjectLakeLoader(Loader[OptionsT]):
    """A ``Loader`` over an object store: streaming writes, atomic commits, manifest last."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._feed: Feed | None = None
        self._open: dict[str, _Tracked] = {}
        self._rows = 0
        self._raw_gzip: Any = None
        self._encoder: formats.ChunkEncoder | None = None
        self._pending: list[pd.DataFrame] = []
        self._pending_rows = 0
        self._bytes_per_row: float | None = None
        self._raw_started = False

    @property
    def layout(self) -> Layout:
        """Keys under the options' ``prefix``, in their ``format`` and ``layout`` (if they have them)."""
        return Layout.for_options(self.options)

    # -- primitives a concrete store implements ------------------------------------
    @abc.abstractmethod
    async def open_sink(self, key: str, content_type: str) -> ObjectSink:
        """Start writing ``key``; nothing is visible until the sink commits."""

    @abc.abstractmethod
    async def get_bytes(self, key: str) -> bytes | None:
        """The object's bytes, or ``None`` when it does not exist."""

    @abc.abstractmethod
    def locate(self, key: str) -> str:
        """``key`` as a location a human can use (a path or ``s3://bucket/key``)."""

    # -- Loader --------------------------------------------------------------------
    def planned_outputs(self, feed: Feed) -> dict[str, str]:
        """Where a commit for ``feed`` on the run's date would write."""
        return {zone: self.locate(key) for zone, key in self.layout.keys(self.context.trend_date, feed).items()}

    async def begin(self, feed: Feed) -> None:
        """Open the cleaned and raw sinks for the run's day."""
        if self._open:
            raise LoadError("begin() called twice without commit or abort", stage=self.name)
        layout = self.layout
        try:
            encoder = formats.new_encoder(layout.format)
        except ConfigError as exc:
            raise LoadError(str(exc), stage=self.name) from exc
        self._feed, self._rows, self._raw_started, self._encoder = feed, 0, False, encoder
        self._pending, self._pending_rows, self._bytes_per_row = [], 0, None
        self._raw_gzip = zlib.compressobj(6, zlib.DEFLATED, 31)
        keys = layout.keys(self.context.trend_date, feed)
        content_types = {"cleaned": encoder.content_type, "raw": CONTENT_TYPES["raw"]}
        for zone in ("cleaned", "raw"):
            self._open[zone] = _Tracked(keys[zone], await self.open_sink(keys[zone], content_types[zone]))

    async def write(self, chunk: pd.DataFrame) -> None:
        """Queue a chunk; about ``ENCODE_BYTES`` at a time are encoded and streamed to the cleaned sink."""
        self._require("cleaned")
        missing = [name for name in schema.COLUMN_NAMES if name not in chunk.columns]
        if missing:
            raise LoadError(f"chunk lacks schema columns: {', '.join(missing)}", stage=self.name)
        if self._bytes_per_row is None and len(chunk):
            self._bytes_per_row = _bytes_per_row(chunk)
        self._pending.append(chunk)
        self._pending_rows += len(chunk)
        self._rows += len(chunk)
        if self._pending_rows >= self._encode_rows():
            await self._encode_pending()

    def _encode_rows(self) -> int:
        # A TMDB page is 20 rows and pandas' fixed cost per call dwarfs that, so pages are
        # encoded together: up to ENCODE_ROWS rows, fewer when rows are wide, so what is
        # queued stays near ENCODE_BYTES whatever the data.
        if not self._bytes_per_row:
            return 1
        return max(1, min(ENCODE_ROWS, int(ENCODE_BYTES / self._bytes_per_row)))

    async def _encode_pending(self) -> None:
        tracked = self._require("cleaned")
        assert self._encoder is not None
        if not self._pending:
            return
        frames, self._pending, self._pending_rows = self._pending, [], 0
        try:
            frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
            self._bytes_per_row = _bytes_per_row(frame) or self._bytes_per_row
            data = self._encoder.encode(schema.conform(frame))
        except ValueError as exc:
            raise LoadError(f"cannot encode a chunk as {self._encoder.format}: {exc}", stage=self.name) from exc
        await tracked.write(data)

    async def write_raw(self, batch: Batch) -> None:
        """Append the page (after the lookups line, on the first page) to the gzip stream."""
        tracked = self._require("raw")
        data = b""
        if not self._raw_started:
            self._raw_started = True
            lookups = rawzone.lookups_document(batch.lookups)
            if lookups is not None:
                data += rawzone.dumps(lookups)
        data += rawzone.page_line(batch)
        await tracked.write(self._raw_gzip.compress(data))

    async def commit(self, summary: Mapping[str, Any]) -> dict[str, str]:
        """Commit cleaned, then raw, then the manifest that says the day is complete."""
        cleaned, raw = self._require("cleaned"), self._require("raw")
        encoder, layout = self._encoder, self.layout
        assert encoder is not None
        await self._encode_pending()
        await cleaned.write(encoder.finish())
        await raw.write(self._raw_gzip.flush())
        for zone in ("cleaned", "raw"):
            await self._open[zone].sink.commit()
        committed = {zone: self._open.pop(zone) for zone in ("cleaned", "raw")}
        assert self._feed is not None
        manifest_key = layout.key("manifest", self.context.trend_date, self._feed)
        self._encoder = None
        manifest = {
            "schema_version": schema.SCHEMA_VERSION,
            "run_id": summary.get("run_id", self.context.run_id),
            "trend_date": self.context.trend_date.isoformat(),
            "feed": {"media_type": self._feed.media_type, "time_window": self._feed.time_window},
            "started_at": summary.get("started_at"),
            "finished_at": summary.get("finished_at") or dt.datetime.now(dt.UTC).isoformat(),
            "rows": self._rows,
            "format": encoder.format,
            "layout": layout.style,
            "objects": {
                zone: {
                    "key": t.key,
                    "bytes": t.bytes,
                    "sha256": t.sha256.hexdigest(),
                    "content_type": encoder.content_type if zone == "cleaned" else CONTENT_TYPES[zone],
                }
                for zone, t in committed.items()
            },
            "counters": dict(summary.get("counters") or {}),
            "dropped": dict(summary.get("dropped") or {}),
        }
        body = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8") + b"\n"
        sink = await self.open_sink(manifest_key, CONTENT_TYPES["manifest"])
        try:
            await sink.write(body)
            await sink.commit()
        except BaseException:
            await sink.abort()
            raise
        logger.info("committed %d rows to %s", self._rows, self.locate(committed["cleaned"].key))
        outputs = {zone: self.locate(t.key) for zone, t in committed.items()}
        outputs["manifest"] = self.locate(manifest_key)
        return outputs

    async def abort(self) -> None:
        """Abort every open sink; what was committed before stays as it was."""
        sinks, self._open, self._encoder = self._open, {}, None
        self._pending, self._pending_rows = [], 0
        for tracked in sinks.values():
            try:
                await tracked.sink.abort()
            except Exception as exc:
                # one line by default (the run's own error follows); the traceback only with -v
                logger.warning("could not abort the upload of %s: %s", self.locate(tracked.key), exc)
                logger.debug("abort failure of %s", self.locate(tracked.key), exc_info=True)

    async def read_day(self, day: dt.date, feed: Feed) -> pd.DataFrame | None:
        """The cleaned rows of a committed day, or ``None`` when the day is not in the lake."""
        layout = self.layout
        data = await self.get_bytes(layout.key("cleaned", day, feed))
        if data is None:
            return None
        try:
            return formats.decode(layout.format, data)
        except ConfigError as exc:
            raise LoadError(str(exc), stage=self.name) from exc
        except Exception as exc:  # a damaged or foreign file: name it rather than leak a parser error
            where = self.locate(layout.key("cleaned", day, feed))
            raise LoadError(f"cannot read {where} as {layout.format}: {exc}", stage=self.name) from exc

    async def read_manifest(self, day: dt.date, feed: Feed) -> dict[str, Any] | None:
        """The manifest of a committed day, or ``None``."""
        data = await self.get_bytes(self.layout.key("manifest", day, feed))
        return None if data is None else dict(json.loads(data))

    def _require(self, zone: str) -> _Tracked:
        tracked = self._open.get(zone)
        if tracked is None:
            raise LoadError("write before begin(), or after commit/abort", stage=self.name)
        return tracked


def _bytes_per_row(frame: pd.DataFrame) -> float:
    """The frame's in-memory size per row (0 for an empty frame)."""
    return float(frame.memory_usage(deep=True, index=False).sum()) / len(frame) if len(frame) else 0.0
