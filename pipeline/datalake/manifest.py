"""A day's manifest: the commit point. Built by a commit, parsed (and distrusted) by everything that reads one.

A manifest names the objects of one committed day: the published cleaned key, the run's immutable version
of it, and the run's raw pages, each with its size and SHA-256. It is read back from the lake, so it is
untrusted: ``parse`` refuses (``OutsideLake``) a manifest whose keys are not the ones the layout gives its own
day and feed, since those keys are what a rollback deletes and a publish overwrites.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from pipeline.datalake import formats, schema
from pipeline.datalake.layout import Layout, LayoutStyle, run_of
from pipeline.datalake.store import LockRecord, StoredObject
from pipeline.errors import LoadError, OutsideLake
from pipeline.stage import CommitInfo, Feed

PROTOCOL = 2
"""Manifests written by this protocol carry ``"protocol": 2``."""
JSON_CONTENT_TYPE = "application/json"
RAW_CONTENT_TYPE = "application/gzip"


@dataclasses.dataclass(frozen=True)
class ObjectEntry:
    """One object a manifest names: its key, size, SHA-256 and content type."""

    key: str
    bytes: int
    sha256: str
    content_type: str

    def to_dict(self) -> dict[str, Any]:
        """The manifest's JSON entry."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Manifest:
    """A day's manifest as read from the lake, with its version token."""

    document: dict[str, Any]
    etag: str

    @property
    def run_id(self) -> str:
        """The run that committed the day."""
        return str(self.document.get("run_id", ""))

    @property
    def cleaned(self) -> dict[str, Any]:
        """The manifest's entry for the cleaned file."""
        return _entry(self.document, "cleaned")

    @property
    def raw(self) -> dict[str, Any]:
        """The manifest's entry for the run's raw pages (empty when it names none)."""
        return _entry(self.document, "raw")

    @property
    def version_key(self) -> str | None:
        """The immutable copy of the cleaned file."""
        key = self.cleaned.get("version_key")
        return str(key) if key else None

    @property
    def rows(self) -> int:
        """Rows the day holds."""
        rows = self.document.get("rows")
        return rows if isinstance(rows, int) and rows >= 0 else 0


def _entry(document: Mapping[str, Any], name: str) -> dict[str, Any]:
    objects = document.get("objects") or {}
    entry = objects.get(name) if isinstance(objects, dict) else None
    return entry if isinstance(entry, dict) else {}


def build(
    *,
    day: dt.date,
    feed: Feed,
    layout: Layout,
    info: CommitInfo,
    rows: int,
    encoder: formats.ChunkEncoder,
    version: ObjectEntry,
    raw: Mapping[str, Any],
) -> bytes:
    """The manifest of a day a run commits, as the bytes to write."""
    cleaned = {**version.to_dict(), "key": layout.key("cleaned", day, feed), "version_key": version.key}
    document = {
        "protocol": PROTOCOL,
        "schema_version": schema.SCHEMA_VERSION,
        "run_id": info.run_id,
        "trend_date": day.isoformat(),
        "feed": {"media_type": feed.media_type, "time_window": feed.time_window},
        "started_at": info.started_at.isoformat(),
        "finished_at": (info.finished_at or dt.datetime.now(dt.UTC)).isoformat(),
        "rows": rows,
        "format": encoder.format,
        "layout": layout.style,
        "objects": {"cleaned": cleaned, "raw": dict(raw)},
        "built_by": {"transformer": info.transformer, "pipeline_version": info.pipeline_version},
        "counters": dict(info.counters),
        "dropped": dict(info.dropped),
    }
    return json.dumps(document, indent=2, sort_keys=True).encode("utf-8") + b"\n"


def parse(key: str, stored: StoredObject, layout: Layout, where: str, *, stage: str | None = None) -> Manifest:
    """The manifest stored at ``key`` (shown to people as ``where``); ``LoadError`` if it is not one we trust."""
    try:
        document = json.loads(stored.data)
    except ValueError as exc:
        raise LoadError(f"{where} is not valid JSON: {exc}", stage=stage) from exc
    if not isinstance(document, dict):
        raise LoadError(f"{where} is not a manifest (not a JSON object)", stage=stage)
    if document.get("protocol") != PROTOCOL:
        version = document.get("protocol")
        raise LoadError(f"{where} is not a protocol {PROTOCOL} manifest (protocol {version!r})", stage=stage)
    manifest = Manifest(document, stored.etag)
    try:
        confine(key, manifest, layout)
    except OutsideLake as exc:
        raise OutsideLake(f"refusing {where}: {exc}", stage=stage) from None
    return manifest


def confine(key: str, manifest: Manifest, lake: Layout) -> None:
    """Every key the manifest names is one the layout gives its own day and feed; else ``OutsideLake``.

    In either file format: a damaged format field is the reader's error to report, not a way out.
    """
    document = manifest.document
    try:
        feed_entry = document.get("feed") or {}
        day = dt.date.fromisoformat(str(document.get("trend_date")))
        feed = Feed(feed_entry.get("media_type", "movie"), feed_entry.get("time_window", "day"))
        style: LayoutStyle = "hive" if document.get("layout") == "hive" else "monthly"
        layouts = [Layout(lake.prefix, style, fmt) for fmt in formats.FORMATS]
        manifest_key = layouts[0].key("manifest", day, feed)
    except (AttributeError, KeyError, TypeError, ValueError):
        raise OutsideLake("it does not say which day and feed it commits") from None
    if key != manifest_key:
        raise OutsideLake(f"it commits {day} {feed.slug}, which is stored elsewhere")
    named = {"cleaned": manifest.cleaned.get("key"), "version": manifest.version_key, "raw": manifest.raw.get("key")}
    for zone, named_key in named.items():
        if not named_key:
            continue
        run = run_of(layouts[0].confine(named_key, zone))
        allowed = set()
        for layout in layouts:
            if zone != "version":
                allowed.add(layout.key(zone, day, feed))
            if run is not None and zone != "cleaned":
                allowed.add(layout.run_key(zone, day, feed, run))  # type: ignore[arg-type]
        if named_key not in allowed:
            raise OutsideLake(f"{named_key!r} is not a {zone} key of {day} {feed.slug}")


def confine_record(record: LockRecord, layout: Layout, where: str, *, stage: str | None = None) -> None:
    """The objects a lock record names are its own run's, in the version and raw zones; else ``OutsideLake``."""
    try:
        for key in record.objects:
            if run_of(layout.confine(key, "version", "raw")) != record.run_id:
                raise OutsideLake(f"{key!r} is not an object of run {record.run_id}")
        if record.previous_version is not None:
            layout.confine(record.previous_version, "version")
    except OutsideLake as exc:
        message = f"refusing the lock record {where}: {exc}; check it and remove it by hand"
        raise OutsideLake(message, stage=stage) from None
