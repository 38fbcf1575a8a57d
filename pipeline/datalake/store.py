"""``ObjectStore``: the narrow interface the commit protocol needs from a store, and what it hands back.

A store is the lake's bytes and nothing more: objects with version tokens, streaming sinks, conditional
writes, day locks and the leftovers of unfinished writes. It knows no days, manifests or rollbacks; the
protocol (``pipeline.datalake.commit``, ``healing``, ``reads``) is written once against this interface, and
``LocalStore``, ``S3Store`` and ``MemoryStore`` implement it, as httpx's transports implement theirs.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime as dt
import json
import os
import socket
from typing import Any, Protocol

from pipeline.stage import Feed


@dataclasses.dataclass(frozen=True)
class StoredObject:
    """An object's bytes and the store's version token for conditional writes."""

    data: bytes
    etag: str


@dataclasses.dataclass(frozen=True)
class LockRecord:
    """What a run writing a day leaves in its lock: enough for anyone to finish or undo it."""

    run_id: str
    trend_date: dt.date
    feed: Feed
    host: str
    pid: int
    started_at: dt.datetime
    objects: tuple[str, ...]
    previous_version: str | None = None

    def to_bytes(self) -> bytes:
        """The record as JSON."""
        document = {
            "run_id": self.run_id,
            "trend_date": self.trend_date.isoformat(),
            "feed": {"media_type": self.feed.media_type, "time_window": self.feed.time_window},
            "host": self.host,
            "pid": self.pid,
            "started_at": self.started_at.isoformat(),
            "objects": list(self.objects),
            "previous_version": self.previous_version,
        }
        return json.dumps(document, indent=2, sort_keys=True).encode("utf-8") + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes) -> LockRecord | None:
        """The record, or ``None`` when ``data`` is not one (a write cut short)."""
        try:
            document = json.loads(data)
            feed = document["feed"]
            return cls(
                run_id=str(document["run_id"]),
                trend_date=dt.date.fromisoformat(document["trend_date"]),
                feed=Feed(feed["media_type"], feed["time_window"]),
                host=str(document["host"]),
                pid=int(document["pid"]),
                started_at=dt.datetime.fromisoformat(document["started_at"]),
                objects=tuple(str(k) for k in document["objects"]),
                previous_version=document.get("previous_version"),
            )
        except (ValueError, KeyError, TypeError):
            return None

    def describe(self) -> str:
        """``run <id> on <host> (pid <n>) since <time>``."""
        return f"run {self.run_id} on {self.host} (pid {self.pid}) since {self.started_at:%Y-%m-%d %H:%M:%S}Z"


@dataclasses.dataclass(frozen=True)
class Leftover:
    """Something an unfinished write left: a temp file, an open multipart upload."""

    handle: str
    """What the store needs to remove it."""
    label: str
    """What a human reads: ``the temp file lake/…`` or ``the upload of s3://…``."""
    run_id: str | None
    old: bool
    """Old enough to remove even when no lock says whose it is."""


@dataclasses.dataclass
class LockClaim:
    """A day lock this process holds, plus the dead run's record it found there (if any)."""

    key: str
    token: Any
    stale: LockRecord | None = None
    stale_unreadable: bool = False


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


def lock_is_live(record: LockRecord, timeout: float, *, now: dt.datetime | None = None) -> bool:
    """Whether the run that wrote ``record`` may still be running.

    On this host the process table answers; elsewhere, a lock older than ``timeout`` seconds is dead.
    """
    age = ((now or dt.datetime.now(dt.UTC)) - record.started_at).total_seconds()
    if age > timeout:
        return False
    if record.host != socket.gethostname():
        return True
    try:
        os.kill(record.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ObjectStore(Protocol):
    """The store primitives of a lake; opened and closed by whoever creates it (``async with``)."""

    def describe(self) -> str:
        """Where the lake is, without credentials (``./lake`` or ``s3://bucket/prefix``)."""
        ...

    def locate(self, key: str) -> str:
        """``key`` as a location a human can use (a path or ``s3://bucket/key``)."""
        ...

    async def __aenter__(self) -> ObjectStore:
        """Open what the store needs (a client); returns the store."""
        ...

    async def __aexit__(self, *exc_info: object) -> None:
        """Close what ``__aenter__`` opened."""
        ...

    async def open_sink(self, key: str, content_type: str) -> ObjectSink:
        """Start writing ``key``; nothing is visible until the sink commits."""
        ...

    async def get_object(self, key: str) -> StoredObject | None:
        """The object and its version token, or ``None`` when it does not exist."""
        ...

    async def put_object(
        self, key: str, data: bytes, content_type: str, *, if_match: str | None = None, if_absent: bool = False
    ) -> str:
        """Write a small object atomically; ``CommitConflict`` when the condition does not hold. Returns its token."""
        ...

    async def copy_object(self, source: str, target: str) -> None:
        """Replace ``target`` with a copy of ``source``, atomically."""
        ...

    async def delete_object(self, key: str) -> None:
        """Delete ``key``; a missing key is fine."""
        ...

    async def list_keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` (a folder key ending in ``/``), sorted; never temporary objects."""
        ...

    async def claim_lock(self, key: str) -> LockClaim:
        """Take the day lock ``key``; ``CommitConflict`` while a live run holds it. Reports a dead holder's record."""
        ...

    async def write_lock(self, claim: LockClaim, record: LockRecord) -> None:
        """Store this run's record in a claimed lock."""
        ...

    async def release_lock(self, claim: LockClaim, *, keep_record: bool = False) -> None:
        """Give the lock up; the record is deleted unless ``keep_record`` (so the next run heals)."""
        ...

    async def leftovers(self) -> list[Leftover]:
        """Temp files or uploads that unfinished writes left in the lake's zones."""
        ...

    async def remove_leftover(self, leftover: Leftover) -> None:
        """Remove one leftover that ``leftovers`` reported."""
        ...
