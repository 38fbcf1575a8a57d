"""``ObjectLakeLoader``: the commit protocol every object-store loader (local folder, S3, ...) shares.

A committed day is a manifest plus the immutable, run-scoped objects it names
(``pipeline.datalake.layout``). The protocol (``docs/lake-protocol.md`` has the state table):
take the day's lock, stream the run's version and raw objects, write the manifest
conditionally (the commit point), publish the version to the cleaned key by copy, delete the
superseded version, release the lock. Readers go through the manifest and verify the
SHA-256 of what they read, so they see the old day or the new one, never a mix. A run that
dies leaves its lock behind; the next run of any day heals it, rolling forward if the
manifest names that run and back otherwise.

Concrete loaders implement a handful of store primitives (``pipeline.datalake.store``: sinks,
get, conditional put, copy, delete, list) and the day lock (an advisory file lock locally,
a conditional write on S3).
"""

from __future__ import annotations

import abc
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import socket
import zlib
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from pipeline.config import PipelineConfig
from pipeline.datalake import formats, rawzone, schema
from pipeline.datalake.layout import Layout, LayoutStyle, run_of
from pipeline.datalake.store import Leftover, LockClaim, LockRecord, ObjectSink, StoredObject
from pipeline.errors import CommitConflict, ConfigError, LoadError, PipelineError, RegressionRefused
from pipeline.options import StageOptions
from pipeline.stage import Batch, CommitInfo, Feed, Loader, OptionsT

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

PROTOCOL = 2
"""Manifests written by this protocol carry ``"protocol": 2``; older ones have no version object."""
ENCODE_ROWS = 2000
"""At most this many rows are queued before the loader encodes and streams them (a TMDB page is 20)."""
ENCODE_BYTES = 1 << 20
"""Rows are also encoded once their in-memory size nears this, so wide rows never pile up."""
RAW_CONTENT_TYPE = "application/gzip"
JSON_CONTENT_TYPE = "application/json"


class LakeFormatOptions(StageOptions):
    """Options every object-store loader inherits: file format, key layout, and the commit's safety limits."""

    format: formats.Format = "csv"
    layout: LayoutStyle = "monthly"
    lock_timeout: float = Field(default=3600.0, gt=0, le=7 * 86400)
    """Seconds after which another host's day lock counts as dead (a run must finish within this)."""
    min_row_ratio: float = Field(default=0.5, ge=0, le=1)
    """Refuse to replace a committed day with one that has fewer than this share of its rows (0 turns it off)."""
    allow_regression: bool = False
    """Commit even when the regression guard would refuse (``--force`` sets it)."""

    @field_validator("format")
    @classmethod
    def _format_is_installed(cls, value: formats.Format) -> formats.Format:
        if value == "parquet":
            try:
                formats.require_pyarrow()
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return value


class _Tracked:
    """A sink plus its running size and SHA-256."""

    def __init__(self, key: str, sink: ObjectSink) -> None:
        self.key = key
        self.sink = sink
        self.bytes = 0
        self.sha256 = hashlib.sha256()
        self.committed = False

    async def write(self, data: bytes) -> None:
        if data:
            self.sha256.update(data)
            self.bytes += len(data)
            await self.sink.write(data)


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
        objects = self.document.get("objects") or {}
        entry = objects.get("cleaned") if isinstance(objects, dict) else None
        return entry if isinstance(entry, dict) else {}

    @property
    def version_key(self) -> str | None:
        """The immutable copy of the cleaned file (protocol 2), or ``None`` for older manifests."""
        key = self.cleaned.get("version_key")
        return str(key) if key else None

    @property
    def rows(self) -> int:
        """Rows the day holds."""
        return int(self.document.get("rows") or 0)


@dataclasses.dataclass
class RepairReport:
    """What ``repair`` found and did (or, with ``check``, would do)."""

    days: int = 0
    actions: list[str] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)

    lake: str = ""

    @property
    def healthy(self) -> bool:
        """Nothing was found that needed healing."""
        return not self.actions and not self.problems


class ObjectLakeLoader(Loader[OptionsT]):
    """A ``Loader`` over an object store: streaming writes, one atomic commit per day, self-healing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._feed: Feed | None = None
        self._table = schema.TITLES
        self._open: dict[str, _Tracked] = {}
        self._rows = 0
        self._raw_gzip: Any = None
        self._encoder: formats.ChunkEncoder | None = None
        self._pending: list[pd.DataFrame] = []
        self._pending_rows = 0
        self._bytes_per_row: float | None = None
        self._raw_started = False
        self._claim: LockClaim | None = None
        self._previous: Manifest | None = None
        self._committed = False
        self._outcome: str | None = None
        self.reuse_raw: dict[str, Any] | None = None
        """Set before ``begin`` to the manifest entry of raw pages already in the lake (``reprocess``):
        the run then stores no raw object, and its manifest names that one."""

    @property
    def layout(self) -> Layout:
        """Keys under the options' ``prefix``, in their ``format`` and ``layout`` (if they have them)."""
        return Layout.for_options(self.options)

    # -- primitives a concrete store implements ------------------------------------
    @abc.abstractmethod
    async def open_sink(self, key: str, content_type: str) -> ObjectSink:
        """Start writing ``key``; nothing is visible until the sink commits."""

    @abc.abstractmethod
    async def get_object(self, key: str) -> StoredObject | None:
        """The object and its version token, or ``None`` when it does not exist."""

    @abc.abstractmethod
    async def put_object(
        self, key: str, data: bytes, content_type: str, *, if_match: str | None = None, if_absent: bool = False
    ) -> str:
        """Write a small object atomically; ``CommitConflict`` when the condition does not hold. Returns its token."""

    @abc.abstractmethod
    async def copy_object(self, source: str, target: str) -> None:
        """Replace ``target`` with a copy of ``source``, atomically."""

    @abc.abstractmethod
    async def delete_object(self, key: str) -> None:
        """Delete ``key``; a missing key is fine."""

    @abc.abstractmethod
    async def list_keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` (a folder key ending in ``/``), sorted; never temporary objects."""

    @abc.abstractmethod
    def locate(self, key: str) -> str:
        """``key`` as a location a human can use (a path or ``s3://bucket/key``)."""

    @abc.abstractmethod
    async def claim_lock(self, key: str) -> LockClaim:
        """Take the day lock ``key``; ``CommitConflict`` while a live run holds it. Reports a dead holder's record."""

    @abc.abstractmethod
    async def write_lock(self, claim: LockClaim, record: LockRecord) -> None:
        """Store this run's record in a claimed lock."""

    @abc.abstractmethod
    async def release_lock(self, claim: LockClaim, *, keep_record: bool = False) -> None:
        """Give the lock up; the record is deleted unless ``keep_record`` (so the next run heals)."""

    @abc.abstractmethod
    async def leftovers(self) -> list[Leftover]:
        """Temp files or uploads that unfinished writes left in the lake's zones."""

    @abc.abstractmethod
    async def remove_leftover(self, leftover: Leftover) -> None:
        """Remove one leftover that ``leftovers`` reported."""

    async def get_bytes(self, key: str) -> bytes | None:
        """The object's bytes, or ``None`` when it does not exist."""
        stored = await self.get_object(key)
        return None if stored is None else stored.data

    # -- Loader: the write side ------------------------------------------------------
    def planned_outputs(self, feed: Feed) -> dict[str, str]:
        """Where a commit for ``feed`` on the run's date would write."""
        keys = self.layout.keys(self.context.trend_date, feed, self.context.run_id)
        return {zone: self.locate(key) for zone, key in keys.items()}

    async def begin(self, feed: Feed) -> None:
        """Heal what dead runs left, take the day's lock, and open the run's version and raw sinks."""
        if self._open or self._claim is not None:
            raise LoadError("begin() called twice without commit or abort", stage=self.name)
        layout, day, run_id = self.layout, self.context.trend_date, self.context.run_id
        try:
            encoder = formats.new_encoder(layout.format, schema.for_feed(feed))
        except ConfigError as exc:
            raise LoadError(str(exc), stage=self.name) from exc
        version_key = layout.run_key("version", day, feed, run_id)
        raw_key = None if self.reuse_raw else layout.run_key("raw", day, feed, run_id)
        self._outcome = self._nothing_committed(True)
        await self.recover()
        claim = await self._claim_day(day, feed)
        try:
            if claim.stale is not None or claim.stale_unreadable:
                logger.warning("recovered: %s", await self._heal(claim))
                claim.stale, claim.stale_unreadable = None, False
            previous = await self.read_manifest_entry(day, feed)
            if previous is not None and previous.run_id == run_id:
                raise LoadError(
                    f"run {run_id} already committed {day} {feed.label}; every run needs a run id of its own",
                    stage=self.name,
                )
            record = LockRecord(
                run_id=run_id,
                trend_date=day,
                feed=feed,
                host=socket.gethostname(),
                pid=os.getpid(),
                started_at=dt.datetime.now(dt.UTC),
                objects=(version_key, raw_key) if raw_key else (version_key,),
                previous_version=previous.version_key if previous else None,
            )
            await self.write_lock(claim, record)
            self._claim, self._previous, self._committed, self._outcome = claim, previous, False, None
            self._feed, self._rows, self._raw_started, self._encoder = feed, 0, False, encoder
            self._table = schema.for_feed(feed)
            self._pending, self._pending_rows, self._bytes_per_row = [], 0, None
            self._raw_gzip = zlib.compressobj(6, zlib.DEFLATED, 31)
            self._open["cleaned"] = _Tracked(version_key, await self.open_sink(version_key, encoder.content_type))
            if raw_key:
                self._open["raw"] = _Tracked(raw_key, await self.open_sink(raw_key, RAW_CONTENT_TYPE))
        except BaseException:
            self._claim = None
            clean = await self._discard(claim, list(self._open.values()))
            self._open = {}
            self._outcome = self._nothing_committed(clean)
            raise

    async def write(self, chunk: pd.DataFrame) -> None:
        """Queue a chunk; about ``ENCODE_BYTES`` at a time are encoded and streamed to the version sink."""
        self._require("cleaned")
        missing = [name for name in self._table.column_names if name not in chunk.columns]
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
            import pandas as pd  # here: the CLI's light commands import this module

            frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
            self._bytes_per_row = _bytes_per_row(frame) or self._bytes_per_row
            data = self._encoder.encode(schema.conform(frame, self._table))
        except ValueError as exc:
            raise LoadError(f"cannot encode a chunk as {self._encoder.format}: {exc}", stage=self.name) from exc
        await tracked.write(data)

    async def write_raw(self, batch: Batch) -> None:
        """Append the page (after the lookups line, on the first page) to the run's raw gzip stream."""
        if self.reuse_raw is not None:
            self._require("cleaned")
            return
        tracked = self._require("raw")
        data = b""
        if not self._raw_started:
            self._raw_started = True
            lookups = rawzone.lookups_document(batch.lookups)
            if lookups is not None:
                data += rawzone.dumps(lookups)
        data += rawzone.page_line(batch)
        await tracked.write(self._raw_gzip.compress(data))

    async def commit(self, info: CommitInfo) -> dict[str, str]:
        """Commit the day: run objects, then the manifest (the commit point), then publish and clean up."""
        cleaned, raw = self._require("cleaned"), self._open.get("raw")
        encoder, layout, claim, feed = self._encoder, self.layout, self._claim, self._feed
        assert encoder is not None and claim is not None and feed is not None
        day = self.context.trend_date
        await self._encode_pending()
        self._check_regression()
        await cleaned.write(encoder.finish())
        if raw is not None:
            await raw.write(self._raw_gzip.flush())
        for tracked in (cleaned, raw):
            if tracked is not None:
                await tracked.sink.commit()
                tracked.committed = True
        raw_entry = dict(self.reuse_raw or {})
        if raw is not None:
            raw_entry = {
                "key": raw.key,
                "bytes": raw.bytes,
                "sha256": raw.sha256.hexdigest(),
                "content_type": RAW_CONTENT_TYPE,
            }
        seed_key, manifest_key = layout.key("cleaned", day, feed), layout.key("manifest", day, feed)
        manifest = {
            "protocol": PROTOCOL,
            "schema_version": schema.SCHEMA_VERSION,
            "run_id": self.context.run_id,
            "trend_date": day.isoformat(),
            "feed": {"media_type": feed.media_type, "time_window": feed.time_window},
            "started_at": info.started_at.isoformat(),
            "finished_at": (info.finished_at or dt.datetime.now(dt.UTC)).isoformat(),
            "rows": self._rows,
            "format": encoder.format,
            "layout": layout.style,
            "objects": {
                "cleaned": {
                    "key": seed_key,
                    "version_key": cleaned.key,
                    "bytes": cleaned.bytes,
                    "sha256": cleaned.sha256.hexdigest(),
                    "content_type": encoder.content_type,
                },
                "raw": raw_entry,
            },
            "built_by": {"transformer": info.transformer, "pipeline_version": info.pipeline_version},
            "counters": dict(info.counters),
            "dropped": dict(info.dropped),
        }
        body = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8") + b"\n"
        previous = self._previous
        try:
            await self.put_object(
                manifest_key,
                body,
                JSON_CONTENT_TYPE,
                if_match=previous.etag if previous else None,
                if_absent=previous is None,
            )
        except CommitConflict:
            raise CommitConflict(
                f"another run is committing this day ({day} {feed.label}): {self.locate(manifest_key)} changed "
                "since this run began",
                stage=self.name,
            ) from None
        self._committed = True  # the day is new from here on; what follows only tidies up
        self._encoder = None
        try:
            await self.copy_object(cleaned.key, seed_key)
            if previous is not None and previous.version_key and previous.version_key != cleaned.key:
                await self.delete_object(previous.version_key)
            await self.release_lock(claim)
        except PipelineError as exc:
            exc.outcome = (
                f"{day} was committed by run {self.context.run_id}, but {self.locate(seed_key)} may still hold the "
                "previous file; the next run (or `python -m pipeline repair`) finishes the commit"
            )
            raise
        self._claim, self._open = None, {}
        logger.info("committed %d rows to %s", self._rows, self.locate(seed_key))
        raw_location = self.locate(str(raw_entry.get("key", "")))
        return {"cleaned": self.locate(seed_key), "raw": raw_location, "manifest": self.locate(manifest_key)}

    def _check_regression(self) -> None:
        """Refuse to replace a good committed day with an empty or much smaller one."""
        options, previous = self.options, self._previous
        if self.context.force or not isinstance(options, LakeFormatOptions) or options.allow_regression:
            return
        before, after = (previous.rows if previous else 0), self._rows
        if after == 0:
            raise RegressionRefused(
                f"refusing to commit 0 rows for {self.context.trend_date}: TMDB sent no usable rows "
                "(an incident, or every record was dropped); if an empty day is right, run again with --force",
                stage=self.name,
            )
        if previous is not None and before > 0 and after < before * options.min_row_ratio:
            raise RegressionRefused(
                f"refusing to replace {self.context.trend_date} ({before} rows, run {previous.run_id}) "
                f"with {after} rows "
                f"(under {options.min_row_ratio:.0%} of them); if the smaller day is right, run again with --force",
                stage=self.name,
            )

    async def abort(self) -> None:
        """Undo the run: abort open sinks, delete what it stored, release the lock; earlier data stays as it was."""
        sinks, self._open, self._encoder = list(self._open.values()), {}, None
        self._pending, self._pending_rows = [], 0
        claim, self._claim = self._claim, None
        if claim is None:
            return
        if self._committed:
            # Past the commit point: the day is new; only the publishing is unfinished. Keep the
            # record so that the next run (or `repair`) rolls it forward.
            await self._release_quietly(claim, keep_record=True)
            self._outcome = (
                f"{self.context.trend_date} was committed by run {self.context.run_id}; the next run "
                "(or `python -m pipeline repair`) finishes publishing it"
            )
            return
        self._outcome = self._nothing_committed(await self._discard(claim, sinks))

    def _nothing_committed(self, clean: bool) -> str:
        day = self.context.trend_date
        if clean:
            return f"nothing was committed; {day} keeps its previous data"
        return f"nothing was committed; {day} keeps its previous data, and the next run removes what this one left"

    def outcome(self) -> str | None:
        """What the last failed run did to the lake, in a few words."""
        return self._outcome

    async def _discard(self, claim: LockClaim, sinks: list[_Tracked]) -> bool:
        """Abort ``sinks``, delete the ones already stored, release ``claim``; ``False`` if something stayed."""
        clean = True
        for tracked in sinks:
            try:
                if tracked.committed:
                    await self.delete_object(tracked.key)
                else:
                    await tracked.sink.abort()
            except Exception as exc:
                clean = False
                # one line by default (the run's own error follows); the traceback only with -v
                logger.warning("could not remove %s: %s", self.locate(tracked.key), exc)
                logger.debug("cleanup failure of %s", self.locate(tracked.key), exc_info=True)
        unhealed = claim.stale is not None or claim.stale_unreadable
        await self._release_quietly(claim, keep_record=unhealed or not clean)
        return clean

    async def _release_quietly(self, claim: LockClaim, *, keep_record: bool) -> None:
        try:
            await self.release_lock(claim, keep_record=keep_record)
        except Exception as exc:
            logger.warning("could not release the lock %s: %s", self.locate(claim.key), exc)

    # -- healing ---------------------------------------------------------------------
    async def _claim_day(self, day: dt.date, feed: Feed) -> LockClaim:
        key = self.layout.lock_key(day, feed)
        try:
            return await self.claim_lock(key)
        except CommitConflict as exc:
            holder = exc.args[0] if exc.args else "unknown"
            raise CommitConflict(
                f"another run is committing this day ({day} {feed.label}): {holder}", stage=self.name
            ) from None

    async def recover(self) -> RepairReport:
        """Heal every day a dead run left unfinished and remove its leftovers; one log line per action."""
        report = RepairReport()
        await self._recover(report, check=False)
        for action in report.actions:
            logger.warning("recovered: %s", action)
        return report

    async def _recover(self, report: RepairReport, *, check: bool) -> set[str]:
        """Heal (or, with ``check``, only report) stale locks and leftovers. Returns the live runs' ids."""
        # Leftovers are listed before the locks are looked at: anything a run leaves is created
        # after its lock record, so a leftover whose run shows no live lock below is dead.
        candidates = await self.leftovers()
        live: set[str] = set()
        keys = await self.list_keys(self.layout.root("lock") + "/")
        # a lock's record is <name>.json; a store may keep a <name>.lock beside it (the local lake does)
        for key in sorted({k[: -len(".lock")] + ".json" if k.endswith(".lock") else k for k in keys}):
            if not key.endswith(".json"):
                continue
            try:
                claim = await self.claim_lock(key)
            except CommitConflict:
                stored = await self.get_object(key)
                record = LockRecord.from_bytes(stored.data) if stored else None
                if record is not None:
                    live.add(record.run_id)
                continue
            settled = False
            try:
                if claim.stale is None and not claim.stale_unreadable:
                    pass  # an empty lock: its run had written nothing yet
                elif check:
                    report.problems.append(f"{self.locate(key)}: left by a dead run; repair heals it")
                else:
                    report.actions.append(await self._heal(claim))
                settled = True
            finally:
                # A heal that failed keeps the dead run's record, so that the next run (or repair) can still finish it.
                await self._release_quietly(claim, keep_record=check or not settled)
        for leftover in candidates:
            if leftover.run_id in live or not leftover.old:
                continue
            if check:
                report.problems.append(f"{leftover.label}: left by an interrupted run")
                continue
            await self.remove_leftover(leftover)
            report.actions.append(f"removed {leftover.label}, left by an interrupted run")
        return live

    async def _heal(self, claim: LockClaim) -> str:
        """Finish or undo the dead run recorded in ``claim``; says what it did."""
        record = claim.stale
        if record is None:
            return f"removed the unreadable lock {self.locate(claim.key)} (its run wrote nothing yet)"
        day, feed = record.trend_date, record.feed
        for leftover in await self.leftovers():
            if leftover.run_id == record.run_id:
                await self.remove_leftover(leftover)
        current = await self.read_manifest_entry(day, feed)
        if current is not None and current.run_id == record.run_id:
            await self._publish(current)
            if record.previous_version and record.previous_version != current.version_key:
                await self.delete_object(record.previous_version)
            return f"{day} {feed.slug}: rolled forward to run {record.run_id}, which had committed"
        for key in record.objects:
            await self.delete_object(key)
        if current is not None:
            await self._publish(current)
        return f"{day} {feed.slug}: rolled back run {record.run_id}, which died before its commit"

    async def _publish(self, manifest: Manifest) -> bool:
        """Make the cleaned key hold the manifest's version; ``True`` if it had to be copied."""
        seed, version = manifest.cleaned.get("key"), manifest.version_key
        if not seed or not version:
            return False
        stored = await self.get_object(str(seed))
        if stored is not None and _sha256(stored.data) == manifest.cleaned.get("sha256"):
            return False
        await self.copy_object(version, str(seed))
        return True

    async def repair(self, *, check: bool = False) -> RepairReport:
        """Heal the whole lake, or with ``check`` only report: stale locks, leftovers, unpublished or orphan files."""
        report = RepairReport(lake=self.describe())
        live = await self._recover(report, check=check)
        layout = self.layout
        referenced: set[str] = set()
        for key in await self.list_keys(layout.root("manifest") + "/"):
            report.days += 1
            manifest = await self._parse_manifest(key)
            version = manifest.version_key
            if version:
                referenced.add(version)
            seed = str(manifest.cleaned.get("key") or "")
            stored = await self.get_object(seed) if seed else None
            if stored is not None and _sha256(stored.data) == manifest.cleaned.get("sha256"):
                continue
            source = await self.get_object(version) if version else None
            if source is None or _sha256(source.data) != manifest.cleaned.get("sha256"):
                report.problems.append(f"{self.locate(seed)}: does not match {self.locate(key)} and no copy does")
            elif check:
                report.problems.append(f"{self.locate(seed)}: not yet published from {self.locate(version or '')}")
            else:
                await self.copy_object(str(version), seed)
                report.actions.append(f"published {self.locate(seed)} from run {manifest.run_id}")
        for key in await self.list_keys(layout.root("version") + "/"):
            if key in referenced or run_of(key) in live:
                continue
            if check:
                report.problems.append(f"{self.locate(key)}: a version no manifest names")
            else:
                await self.delete_object(key)
                report.actions.append(f"removed {self.locate(key)}, a version no manifest names")
        return report

    # -- Loader: the read side -------------------------------------------------------
    async def read_manifest_entry(self, day: dt.date, feed: Feed) -> Manifest | None:
        """The day's manifest with its version token, or ``None`` when the day was never committed."""
        key = self.layout.key("manifest", day, feed)
        stored = await self.get_object(key)
        return None if stored is None else self._manifest_from(key, stored)

    async def _parse_manifest(self, key: str) -> Manifest:
        stored = await self.get_object(key)
        if stored is None:
            raise LoadError(f"{self.locate(key)} disappeared while it was read", stage=self.name)
        return self._manifest_from(key, stored)

    def _manifest_from(self, key: str, stored: StoredObject) -> Manifest:
        try:
            document = json.loads(stored.data)
        except ValueError as exc:
            raise LoadError(f"{self.locate(key)} is not valid JSON: {exc}", stage=self.name) from exc
        if not isinstance(document, dict):
            raise LoadError(f"{self.locate(key)} is not a manifest (not a JSON object)", stage=self.name)
        return Manifest(document, stored.etag)

    async def read_manifest(self, day: dt.date, feed: Feed) -> dict[str, Any] | None:
        """The manifest of a committed day, or ``None``."""
        entry = await self.read_manifest_entry(day, feed)
        return None if entry is None else entry.document

    async def read_committed(self, day: dt.date, feed: Feed) -> tuple[bytes, Manifest] | None:
        """The cleaned bytes the day's manifest vouches for (checked by SHA-256), or ``None`` without a manifest."""
        for _attempt in range(3):
            manifest = await self.read_manifest_entry(day, feed)
            if manifest is None:
                return None
            wanted = manifest.cleaned.get("sha256")
            keys = [str(manifest.cleaned.get("key") or self.layout.key("cleaned", day, feed))]
            if manifest.version_key:
                keys.append(manifest.version_key)
            for key in keys:
                stored = await self.get_object(key)
                if stored is not None and _sha256(stored.data) == wanted:
                    return stored.data, manifest
            # A commit may have replaced the day between the two reads: look at the manifest again.
        where = self.locate(self.layout.key("cleaned", day, feed))
        raise LoadError(
            f"{where} does not match its manifest; run `python -m pipeline repair` to heal the lake", stage=self.name
        )

    async def read_day(self, day: dt.date, feed: Feed) -> pd.DataFrame | None:
        """The cleaned rows of a committed day, or ``None`` when the day is not in the lake."""
        found = await self.read_committed(day, feed)
        if found is None:
            return None
        data, manifest = found
        fmt = str(manifest.document.get("format") or self.layout.format)
        try:
            return formats.decode(fmt, data, schema.for_feed(feed))
        except ConfigError as exc:
            raise LoadError(str(exc), stage=self.name) from exc
        except Exception as exc:  # a damaged or foreign file: name it rather than leak a parser error
            where = self.locate(self.layout.key("cleaned", day, feed))
            raise LoadError(f"cannot read {where} as {fmt}: {exc}", stage=self.name) from exc

    def _require(self, zone: str) -> _Tracked:
        tracked = self._open.get(zone)
        if tracked is None:
            raise LoadError("write before begin(), or after commit/abort", stage=self.name)
        return tracked


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _bytes_per_row(frame: pd.DataFrame) -> float:
    """The frame's in-memory size per row (0 for an empty frame)."""
    return float(frame.memory_usage(deep=True, index=False).sum()) / len(frame) if len(frame) else 0.0


def lake_reader(config: PipelineConfig) -> ObjectLakeLoader[Any]:
    """The configured loader as a reader (and healer) of its lake, built outside a run; not opened."""
    from pipeline.runner import build_stage

    loader = build_stage("loader", config.loader)
    if not isinstance(loader, ObjectLakeLoader):
        raise ConfigError(f"loader {config.loader.type!r} does not keep an object-store lake that can be read back")
    return loader


def configured_feed(config: PipelineConfig) -> Feed:
    """The feed the configured extractor produces, asked of the extractor itself (built outside a run)."""
    from pipeline.runner import build_stage

    feed: Feed = build_stage("extractor", config.extractor).feed
    return feed
