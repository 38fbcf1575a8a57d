"""Verified reads: a day is read through its manifest, and its bytes are checked against the manifest's SHA-256.

Readers never glob files: they see the old day or the new one, never a mix, and a damaged or hand-edited
file is an error that names it, not a silently different day.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from typing import TYPE_CHECKING

from pipeline.datalake import formats, manifest, schema
from pipeline.datalake.layout import Layout
from pipeline.datalake.manifest import Manifest
from pipeline.datalake.store import ObjectStore
from pipeline.errors import ConfigError, LoadError
from pipeline.stage import Feed

if TYPE_CHECKING:
    import pandas as pd

READ_ATTEMPTS = 3
"""A commit may replace the day between reading its manifest and its file: read the manifest again."""


@dataclasses.dataclass(frozen=True)
class Lake:
    """A store seen through a layout: where each day's objects are, and their verified reads.

    ``stage`` names the loader in error messages.
    """

    store: ObjectStore
    layout: Layout
    stage: str | None = None

    def locate(self, key: str) -> str:
        """``key`` as a location a human can use."""
        return self.store.locate(key)

    async def get_bytes(self, key: str) -> bytes | None:
        """The object's bytes, or ``None`` when it does not exist."""
        stored = await self.store.get_object(key)
        return None if stored is None else stored.data

    async def manifest(self, day: dt.date, feed: Feed) -> Manifest | None:
        """The day's manifest with its version token, or ``None`` when the day was never committed."""
        key = self.layout.key("manifest", day, feed)
        stored = await self.store.get_object(key)
        return None if stored is None else manifest.parse(key, stored, self.layout, self.locate(key), stage=self.stage)

    async def manifest_at(self, key: str) -> Manifest:
        """The manifest stored at ``key`` (found by listing); ``LoadError`` if it vanished meanwhile."""
        stored = await self.store.get_object(key)
        if stored is None:
            raise LoadError(f"{self.locate(key)} disappeared while it was read", stage=self.stage)
        return manifest.parse(key, stored, self.layout, self.locate(key), stage=self.stage)

    async def committed(self, day: dt.date, feed: Feed) -> tuple[bytes, Manifest] | None:
        """The cleaned bytes the day's manifest vouches for (checked by SHA-256), or ``None`` without a manifest."""
        for _attempt in range(READ_ATTEMPTS):
            found = await self.manifest(day, feed)
            if found is None:
                return None
            wanted = found.cleaned.get("sha256")
            keys = [str(found.cleaned.get("key") or self.layout.key("cleaned", day, feed))]
            if found.version_key:
                keys.append(found.version_key)
            for key in keys:
                stored = await self.store.get_object(key)
                if stored is not None and sha256(stored.data) == wanted:
                    return stored.data, found
        where = self.locate(self.layout.key("cleaned", day, feed))
        raise LoadError(
            f"{where} does not match its manifest; run `python -m pipeline repair` to heal the lake", stage=self.stage
        )

    async def day(self, day: dt.date, feed: Feed) -> pd.DataFrame | None:
        """The cleaned rows of a committed day, or ``None`` when the day is not in the lake."""
        found = await self.committed(day, feed)
        if found is None:
            return None
        data, entry = found
        fmt = str(entry.document.get("format") or self.layout.format)
        try:
            return formats.decode(fmt, data, schema.for_feed(feed))
        except ConfigError as exc:
            raise LoadError(str(exc), stage=self.stage) from exc
        except Exception as exc:  # a damaged or foreign file: name it rather than leak a parser error
            where = self.locate(self.layout.key("cleaned", day, feed))
            raise LoadError(f"cannot read {where} as {fmt}: {exc}", stage=self.stage) from exc

    async def publish(self, entry: Manifest) -> None:
        """Make the cleaned key hold the manifest's version (copied only when its SHA-256 differs)."""
        seed, version = entry.cleaned.get("key"), entry.version_key
        if not seed or not version:
            return
        stored = await self.store.get_object(str(seed))
        if stored is None or sha256(stored.data) != entry.cleaned.get("sha256"):
            await self.store.copy_object(version, str(seed))


def sha256(data: bytes) -> str:
    """The hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()
