"""``LakeLoader``: the one loader over an ``ObjectStore``; the ``local`` and ``s3`` stages only build a store.

A committed day is a manifest plus the immutable, run-scoped objects it names
(``pipeline.datalake.layout``). ``begin`` heals what dead runs left, takes the day's lock and returns a
``DayCommit`` (``pipeline.datalake.commit``) that streams the run's version and raw objects and commits at
the manifest. Reads go through the manifest and verify SHA-256 (``pipeline.datalake.reads``); healing and
``repair`` are in ``pipeline.datalake.healing``. ``docs/lake-protocol.md`` has the state table.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from abc import abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from pipeline.datalake import formats, healing
from pipeline.datalake.commit import DayCommit
from pipeline.datalake.files import uninterrupted
from pipeline.datalake.guard import Guard
from pipeline.datalake.healing import RepairReport, discard, nothing_committed
from pipeline.datalake.layout import Layout, LayoutStyle
from pipeline.datalake.manifest import Manifest
from pipeline.datalake.reads import Lake
from pipeline.datalake.store import LockClaim, LockRecord, ObjectStore
from pipeline.errors import CommitConflict, ConfigError, LoadError, PipelineError
from pipeline.options import StageOptions
from pipeline.stage import Feed, Loader, OptionsT

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)


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


class LakeLoader(Loader[OptionsT]):
    """A ``Loader`` over an object store: streaming writes, one atomic commit per day, self-healing reads."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._store: ObjectStore | None = None

    @abstractmethod
    def build_store(self) -> ObjectStore:
        """The store of this loader's options (not yet opened)."""

    @property
    def store(self) -> ObjectStore:
        """The store (built on first use; opened between ``open`` and ``aclose``)."""
        if self._store is None:
            self._store = self.build_store()
        return self._store

    @property
    def layout(self) -> Layout:
        """Keys under the options' ``prefix``, in their ``format`` and ``layout``."""
        return Layout.for_options(self.options)

    @property
    def lake(self) -> Lake:
        """The store seen through the layout: verified reads, and what healing works on."""
        return Lake(self.store, self.layout, self.name)

    async def open(self) -> None:
        """Open the store."""
        await self.store.__aenter__()

    async def aclose(self) -> None:
        """Close the store."""
        if self._store is not None:
            await self._store.__aexit__(None, None, None)

    def describe(self) -> str:
        """Where the lake is, without credentials."""
        return self.store.describe()

    def locate(self, key: str) -> str:
        """``key`` as a location a human can use."""
        return self.store.locate(key)

    def planned_outputs(self, feed: Feed) -> dict[str, str]:
        """Where a commit for ``feed`` on the run's date would write."""
        keys = self.layout.keys(self.context.trend_date, feed, self.context.run_id)
        return {zone: self.locate(key) for zone, key in keys.items()}

    # -- the write side -------------------------------------------------------------------
    async def begin(self, feed: Feed, *, reuse_raw: Mapping[str, Any] | None = None) -> DayCommit:
        """Heal what dead runs left, take the day's lock, and open the run's version and raw sinks."""
        lake, day, run_id = self.lake, self.context.trend_date, self.context.run_id
        try:
            formats.new_encoder(lake.layout.format)
        except ConfigError as exc:
            raise LoadError(str(exc), stage=self.name) from exc
        try:
            await healing.recover(lake)
            claim = await self._claim_day(day, feed)
        except PipelineError as exc:
            exc.outcome = exc.outcome or nothing_committed(day, True)
            raise
        commit: DayCommit | None = None
        try:
            if claim.stale is not None or claim.stale_unreadable:
                logger.warning("recovered: %s", await healing.heal(lake, claim))
                claim.stale, claim.stale_unreadable = None, False
            previous = await lake.manifest(day, feed)
            if previous is not None and previous.run_id == run_id:
                raise LoadError(
                    f"run {run_id} already committed {day} {feed.label}; every run needs a run id of its own",
                    stage=self.name,
                )
            commit = DayCommit(lake, self.context, feed, claim, previous, self._guard(), reuse_raw=reuse_raw)
            record = LockRecord(
                run_id=run_id,
                trend_date=day,
                feed=feed,
                host=socket.gethostname(),
                pid=os.getpid(),
                started_at=dt.datetime.now(dt.UTC),
                objects=commit.objects,
                previous_version=previous.version_key if previous else None,
            )
            await uninterrupted(self.store.write_lock(claim, record))
            await commit.open_sinks()
        except BaseException as exc:
            clean = await discard(lake, claim, list(commit.sinks) if commit is not None else [])
            if isinstance(exc, PipelineError) and exc.outcome is None:
                exc.outcome = nothing_committed(day, clean)
            raise
        return commit

    def _guard(self) -> Guard:
        options = self.options
        if isinstance(options, LakeFormatOptions):
            return Guard(options.min_row_ratio, options.allow_regression)
        return Guard(0.0, True)

    async def _claim_day(self, day: dt.date, feed: Feed) -> LockClaim:
        key = self.layout.lock_key(day, feed)
        try:
            return await self.store.claim_lock(key)
        except CommitConflict as exc:
            holder = exc.args[0] if exc.args else "unknown"
            raise CommitConflict(
                f"another run is committing this day ({day} {feed.label}): {holder}", stage=self.name
            ) from None

    # -- healing --------------------------------------------------------------------------
    async def recover(self) -> RepairReport:
        """Heal every day a dead run left unfinished and remove its leftovers; one log line per action."""
        return await healing.recover(self.lake)

    async def repair(self, *, check: bool = False) -> RepairReport:
        """Heal the whole lake, or with ``check`` only report: stale locks, leftovers, unpublished or orphan files."""
        return await healing.repair(self.lake, check=check)

    # -- the read side --------------------------------------------------------------------
    async def read_manifest_entry(self, day: dt.date, feed: Feed) -> Manifest | None:
        """The day's manifest with its version token, or ``None`` when the day was never committed."""
        return await self.lake.manifest(day, feed)

    async def read_manifest(self, day: dt.date, feed: Feed) -> dict[str, Any] | None:
        """The manifest of a committed day, or ``None``."""
        entry = await self.lake.manifest(day, feed)
        return None if entry is None else entry.document

    async def read_committed(self, day: dt.date, feed: Feed) -> tuple[bytes, Manifest] | None:
        """The cleaned bytes the day's manifest vouches for (checked by SHA-256), or ``None`` without a manifest."""
        return await self.lake.committed(day, feed)

    async def read_day(self, day: dt.date, feed: Feed) -> pd.DataFrame | None:
        """The cleaned rows of a committed day, or ``None`` when the day is not in the lake."""
        return await self.lake.day(day, feed)
