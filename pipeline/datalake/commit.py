"""``DayCommit``: one run's write of one day, from the lock taken to the commit point and the clean-up.

``LakeLoader.begin`` returns one, with the day's lock held and the run's version and raw sinks open;
``commit`` and ``abort`` consume it. There is no "called twice" or "write before begin": a day that does
not exist cannot be written, and a consumed one refuses further use.

The commit point is the manifest's conditional write. It, the lock record and the version and raw objects
are the writes a later step depends on: each is awaited through ``uninterrupted``, so that a cancellation
(SIGTERM, ``task.cancel()``) never splits a write from the record that it happened. After an interrupted or
failed manifest write, what the store holds decides: roll back only when its manifest does not name this
run (``docs/lake-protocol.md``).
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pipeline.datalake import formats, manifest, rawzone, schema
from pipeline.datalake.files import uninterrupted
from pipeline.datalake.guard import Guard
from pipeline.datalake.healing import discard, nothing_committed, release_quietly
from pipeline.datalake.manifest import JSON_CONTENT_TYPE, RAW_CONTENT_TYPE, Manifest
from pipeline.datalake.reads import Lake
from pipeline.datalake.store import LockClaim
from pipeline.datalake.tracked import Tracked
from pipeline.errors import CommitConflict, LoadError, PipelineError
from pipeline.stage import Batch, CommitInfo, Committed, Feed, LoadDay, RunContext

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

ENCODE_ROWS = 500
"""At most this many rows are queued before they are encoded and streamed (a TMDB page is 20).

pandas costs about 5 ms a call whatever the size, so pages are encoded 25 at a time. More would
save a little CPU while the pages arrive (idle time: the extractor is rate-limited) and cost
time at the end: the last batch is encoded after the last page, before the commit (2,000 rows
took about 60 ms there, 500 take about 20 ms)."""
ENCODE_BYTES = 1 << 20
"""Rows are also encoded once their in-memory size nears this, so wide rows never pile up."""


class DayCommit(LoadDay):
    """One run's write of one day; ``commit`` or ``abort`` ends it."""

    def __init__(
        self,
        lake: Lake,
        context: RunContext,
        feed: Feed,
        claim: LockClaim,
        previous: Manifest | None,
        guard: Guard,
        *,
        reuse_raw: Mapping[str, Any] | None = None,
    ) -> None:
        self._lake, self._context, self._feed, self._claim = lake, context, feed, claim
        self._previous, self._guard, self._reuse_raw = previous, guard, reuse_raw
        self._table = schema.for_feed(feed)
        self._encoder = formats.new_encoder(lake.layout.format, self._table)
        self._sinks: dict[str, Tracked] = {}
        self._rows = 0
        self._pending: list[pd.DataFrame] = []
        self._pending_rows = 0
        self._bytes_per_row: float | None = None
        self._raw_gzip = zlib.compressobj(6, zlib.DEFLATED, 31)
        self._raw_started = False
        self._manifest_sent = False
        """The manifest's write was started: until the store is asked, the day may be committed."""
        self._committed = False
        self._done = False

    async def open_sinks(self) -> None:
        """Open the run's version sink (and raw sink, unless raw pages are reused)."""
        layout, day, run_id = self._lake.layout, self._context.trend_date, self._context.run_id
        version = layout.run_key("version", day, self._feed, run_id)
        content_type = self._encoder.content_type
        self._sinks["cleaned"] = Tracked(version, await self._lake.store.open_sink(version, content_type), content_type)
        if self._reuse_raw is None:
            raw = layout.run_key("raw", day, self._feed, run_id)
            sink = await self._lake.store.open_sink(raw, RAW_CONTENT_TYPE)
            self._sinks["raw"] = Tracked(raw, sink, RAW_CONTENT_TYPE)

    @property
    def sinks(self) -> list[Tracked]:
        """The sinks opened so far."""
        return list(self._sinks.values())

    @property
    def objects(self) -> tuple[str, ...]:
        """The run-scoped keys this day may leave in the store (what its lock record names)."""
        layout, day, run_id = self._lake.layout, self._context.trend_date, self._context.run_id
        version = layout.run_key("version", day, self._feed, run_id)
        if self._reuse_raw is not None:
            return (version,)
        return version, layout.run_key("raw", day, self._feed, run_id)

    # -- writing -------------------------------------------------------------------------
    async def write(self, chunk: pd.DataFrame) -> None:
        """Queue a chunk; about ``ENCODE_BYTES`` at a time are encoded and streamed to the version sink."""
        self._live()
        missing = [name for name in self._table.column_names if name not in chunk.columns]
        if missing:
            raise LoadError(f"chunk lacks schema columns: {', '.join(missing)}", stage=self._lake.stage)
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
        if not self._pending:
            return
        frames, self._pending, self._pending_rows = self._pending, [], 0
        # In a worker thread: 500 rows take about 20 ms of pandas, which on the event loop would hold back the
        # requests it paces. Writes are awaited one at a time, so the encoder is never used by two threads at once.
        data = await asyncio.to_thread(self._encode, frames)
        await self._sinks["cleaned"].write(data)

    def _encode(self, frames: list[pd.DataFrame]) -> bytes:
        try:
            import pandas as pd  # here: the CLI's light commands import this module

            frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
            self._bytes_per_row = _bytes_per_row(frame) or self._bytes_per_row
            return self._encoder.encode(schema.conform(frame, self._table))
        except ValueError as exc:
            message = f"cannot encode a chunk as {self._encoder.format}: {exc}"
            raise LoadError(message, stage=self._lake.stage) from exc

    async def write_raw(self, batch: Batch) -> None:
        """Append the page (after the lookups line, on the first page) to the run's raw gzip stream."""
        self._live()
        raw = self._sinks.get("raw")
        if raw is None:  # raw pages reused from the lake (``reprocess``)
            return
        data = b""
        if not self._raw_started:
            self._raw_started = True
            lookups = rawzone.lookups_document(batch.lookups)
            if lookups is not None:
                data += rawzone.dumps(lookups)
        data += rawzone.page_line(batch)
        await raw.write(self._raw_gzip.compress(data))

    # -- the commit ------------------------------------------------------------------------
    async def commit(self, info: CommitInfo) -> Committed:
        """Commit the day: run objects, then the manifest (the commit point), then publish and clean up."""
        self._live()
        lake, day, feed = self._lake, self._context.trend_date, self._feed
        cleaned, raw = self._sinks["cleaned"], self._sinks.get("raw")
        await self._encode_pending()
        self._guard.check(self._context, self._previous, self._rows, lake.stage)
        await cleaned.write(self._encoder.finish())
        if raw is not None:
            await raw.write(self._raw_gzip.flush())
        for tracked in (cleaned, raw):
            if tracked is not None:
                await uninterrupted(tracked.commit())
        raw_entry = raw.entry().to_dict() if raw is not None else dict(self._reuse_raw or {})
        body = manifest.build(
            day=day,
            feed=feed,
            layout=lake.layout,
            info=info,
            rows=self._rows,
            encoder=self._encoder,
            version=cleaned.entry(),
            raw=raw_entry,
        )
        manifest_key, seed_key = lake.layout.key("manifest", day, feed), lake.layout.key("cleaned", day, feed)
        try:
            await uninterrupted(self._write_manifest(manifest_key, body))
        except PipelineError as exc:
            # The answer is lost, not necessarily the write: a PUT applied by S3 whose answer never came, then
            # retried into a 412, or a rename done before its error. What the store holds decides.
            if not self._manifest_sent or not await self._settled_quietly():
                if isinstance(exc, CommitConflict):
                    raise CommitConflict(
                        f"another run is committing this day ({day} {feed.label}): {lake.locate(manifest_key)} "
                        "changed since this run began",
                        stage=lake.stage,
                    ) from None
                raise
        previous = self._previous
        try:
            await lake.store.copy_object(cleaned.key, seed_key)
            if previous is not None and previous.version_key and previous.version_key != cleaned.key:
                await lake.store.delete_object(previous.version_key)
            await lake.store.release_lock(self._claim)
        except PipelineError as exc:
            exc.outcome = (
                f"{day} was committed by run {self._context.run_id}, but {lake.locate(seed_key)} may still hold the "
                "previous file; the next run (or `python -m pipeline repair`) finishes the commit"
            )
            raise
        self._done = True
        logger.info("committed %d rows to %s", self._rows, lake.locate(seed_key))
        outputs = {
            "cleaned": lake.locate(seed_key),
            "raw": lake.locate(str(raw_entry.get("key", ""))),
            "manifest": lake.locate(manifest_key),
        }
        return Committed(outputs, f"{day} was committed by run {self._context.run_id}")

    async def _write_manifest(self, key: str, body: bytes) -> None:
        """The commit point: the conditional write of the manifest, and the record that it happened."""
        previous = self._previous
        self._manifest_sent = True
        try:
            await self._lake.store.put_object(
                key, body, JSON_CONTENT_TYPE, if_match=previous.etag if previous else None, if_absent=previous is None
            )
        except LoadError as exc:
            self._manifest_sent = exc.applied is not False  # certainly refused: as if never sent
            raise
        self._committed = True  # the day is new from here on; what follows only tidies up

    async def _settle(self) -> bool:
        """After the manifest's write was interrupted or failed: whether the store's manifest names this run.

        ``True`` records the day as committed. Raises when the store cannot be asked: then nobody knows yet,
        and nothing may be rolled back.
        """
        if not self._committed:
            current = await self._lake.manifest(self._context.trend_date, self._feed)
            if current is not None and current.run_id == self._context.run_id:
                logger.warning(
                    "the manifest's write reported a failure, but the store's manifest names run %s: committed",
                    self._context.run_id,
                )
                self._committed = True
        return self._committed

    async def _settled_quietly(self) -> bool:
        """``_settle``, with a store that cannot be asked counted as "not known to be committed" (abort asks again)."""
        try:
            return await self._settle()
        except Exception as exc:
            logger.warning("could not read back the manifest after its write failed: %s", exc)
            return False

    # -- the abort --------------------------------------------------------------------------
    async def abort(self) -> str:
        """Undo the run: abort open sinks, delete what it stored, release the lock. Says what the lake holds."""
        if self._done:
            return f"{self._context.trend_date} was committed by run {self._context.run_id}"
        self._done = True
        self._pending, self._pending_rows = [], 0
        day, run_id = self._context.trend_date, self._context.run_id
        if self._manifest_sent and not self._committed:
            # Cut short at the commit point: until the store answers, the day may be old or new; the lock
            # record keeps what the next run needs to settle it.
            try:
                await self._settle()
            except Exception as exc:
                logger.warning("could not read back the manifest of %s: %s", day, exc)
                await release_quietly(self._lake, self._claim, keep_record=True)
                return (
                    f"whether run {run_id} committed {day} is not known (the store did not answer); "
                    "the next run (or `python -m pipeline repair`) settles it"
                )
        if self._committed:
            # Past the commit point: the day is new; only the publishing is unfinished. Keep the
            # record so that the next run (or `repair`) rolls it forward.
            await release_quietly(self._lake, self._claim, keep_record=True)
            return (
                f"{day} was committed by run {run_id}; the next run (or `python -m pipeline repair`) finishes "
                "publishing it"
            )
        clean = await discard(self._lake, self._claim, list(self._sinks.values()))
        return nothing_committed(day, clean)

    def _live(self) -> None:
        if self._done:
            raise LoadError("this day was already committed or aborted", stage=self._lake.stage)


def _bytes_per_row(frame: pd.DataFrame) -> float:
    """The frame's in-memory size per row (0 for an empty frame)."""
    return float(frame.memory_usage(deep=True, index=False).sum()) / len(frame) if len(frame) else 0.0
