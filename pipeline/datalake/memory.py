"""``MemoryStore``: an ``ObjectStore`` in a dict, for fast contract tests and for trying stages out.

Like httpx's ``MockTransport``: a real implementation of the interface, not a mock of its callers. Objects
get an ETag (their SHA-256 and a write counter), sinks buffer until they commit, locks are held per store
object (a lock record found while no claim holds it belongs to a dead run), and open sinks are leftovers.
"""

from __future__ import annotations

import hashlib
import itertools

from pipeline.datalake.layout import run_of
from pipeline.datalake.store import Leftover, LockClaim, LockRecord, ObjectSink, ObjectStore, StoredObject
from pipeline.errors import CommitConflict, LoadError


class _MemorySink(ObjectSink):
    """Bytes kept aside until ``commit`` puts them, whole."""

    def __init__(self, store: MemoryStore, key: str, handle: str) -> None:
        self._store, self._key, self._handle = store, key, handle
        self._data = bytearray()

    async def write(self, data: bytes) -> None:
        self._data += data

    async def commit(self) -> None:
        self._store.uploads.pop(self._handle, None)
        self._store.objects[self._key] = self._store.stamp(bytes(self._data))

    async def abort(self) -> None:
        self._store.uploads.pop(self._handle, None)


class MemoryStore(ObjectStore):
    """A lake held in memory by this object; ``objects`` maps each key to its stored bytes and ETag."""

    def __init__(self, name: str = "lake") -> None:
        self.name = name
        self.objects: dict[str, StoredObject] = {}
        self.uploads: dict[str, str] = {}
        """Open sinks: handle to key. They are the leftovers of runs that never ended."""
        self._held: set[str] = set()
        self._writes = itertools.count(1)

    def stamp(self, data: bytes) -> StoredObject:
        """``data`` with a fresh ETag: the same bytes written twice get two tokens, as on S3."""
        return StoredObject(data, f"{hashlib.sha256(data).hexdigest()[:16]}-{next(self._writes)}")

    def describe(self) -> str:
        """``memory://name``."""
        return f"memory://{self.name}"

    def locate(self, key: str) -> str:
        """``memory://name/key``."""
        return f"memory://{self.name}/{key}"

    async def __aenter__(self) -> MemoryStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def open_sink(self, key: str, content_type: str) -> ObjectSink:
        """A buffer that appears at ``key`` on commit."""
        handle = f"{key}#{next(self._writes)}"
        self.uploads[handle] = key
        return _MemorySink(self, key, handle)

    async def get_object(self, key: str) -> StoredObject | None:
        """The object, or ``None``."""
        return self.objects.get(key)

    async def put_object(
        self, key: str, data: bytes, content_type: str, *, if_match: str | None = None, if_absent: bool = False
    ) -> str:
        """Write ``key``, conditionally on its ETag or its absence."""
        current = self.objects.get(key)
        if if_absent and current is not None:
            raise CommitConflict(f"{self.locate(key)} appeared")
        if if_match is not None and (current is None or current.etag != if_match):
            raise CommitConflict(f"{self.locate(key)} changed")
        stored = self.stamp(data)
        self.objects[key] = stored
        return stored.etag

    async def copy_object(self, source: str, target: str) -> None:
        """Copy ``source`` over ``target``."""
        stored = self.objects.get(source)
        if stored is None:
            raise LoadError(f"cannot copy {self.locate(source)} to {self.locate(target)}: it is missing")
        self.objects[target] = self.stamp(stored.data)

    async def delete_object(self, key: str) -> None:
        """Forget ``key``."""
        self.objects.pop(key, None)

    async def list_keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix``."""
        return sorted(key for key in self.objects if key.startswith(prefix))

    async def claim_lock(self, key: str) -> LockClaim:
        """Hold ``key``; a record there that no claim holds is a dead run's."""
        stored = self.objects.get(key)
        record = LockRecord.from_bytes(stored.data) if stored else None
        if key in self._held:
            raise CommitConflict(record.describe() if record else f"{self.locate(key)} is held")
        self._held.add(key)
        return LockClaim(key, key, stale=record, stale_unreadable=stored is not None and record is None)

    async def write_lock(self, claim: LockClaim, record: LockRecord) -> None:
        """Store the record."""
        self.objects[claim.key] = self.stamp(record.to_bytes())

    async def release_lock(self, claim: LockClaim, *, keep_record: bool = False) -> None:
        """Let go; the record goes too unless ``keep_record``."""
        self._held.discard(claim.key)
        if not keep_record:
            self.objects.pop(claim.key, None)

    async def leftovers(self) -> list[Leftover]:
        """Sinks opened and never committed nor aborted (a run that died with them open)."""
        return [
            Leftover(handle, f"the unfinished write of {self.locate(key)}", run_of(key), True)
            for handle, key in self.uploads.items()
        ]

    async def remove_leftover(self, leftover: Leftover) -> None:
        """Drop the open sink."""
        self.uploads.pop(leftover.handle, None)
