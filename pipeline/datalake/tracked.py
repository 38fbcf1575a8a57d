"""``Tracked``: one object a day is writing, with its running size and SHA-256, and whether its commit began."""

from __future__ import annotations

import hashlib

from pipeline.datalake.manifest import ObjectEntry
from pipeline.datalake.store import ObjectSink


class Tracked:
    """A sink plus its running size and SHA-256, and whether its commit started and finished."""

    def __init__(self, key: str, sink: ObjectSink, content_type: str) -> None:
        self.key, self.sink, self.content_type = key, sink, content_type
        self.bytes = 0
        self.sha256 = hashlib.sha256()
        self.committing = False
        """The commit was started: the object may be in the store even if the commit raised."""
        self.committed = False

    async def write(self, data: bytes) -> None:
        """Stream ``data`` to the sink."""
        if data:
            self.sha256.update(data)
            self.bytes += len(data)
            await self.sink.write(data)

    async def commit(self) -> None:
        """Make the object visible; ``committed`` is recorded even if the caller is cancelled meanwhile."""
        self.committing = True
        await self.sink.commit()
        self.committed = True

    def entry(self) -> ObjectEntry:
        """What the manifest says of this object."""
        return ObjectEntry(self.key, self.bytes, self.sha256.hexdigest(), self.content_type)
