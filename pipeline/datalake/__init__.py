"""The lake contract shared by loaders: key layout, file formats, cleaned schema, raw zone, atomic files,
``ObjectStore`` and its in-memory implementation, and ``LakeLoader`` with its commit protocol.

Names are imported on first use, so ``from pipeline.datalake import schema`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline._lazy import exports

if TYPE_CHECKING:
    from pipeline.datalake.commit import DayCommit
    from pipeline.datalake.healing import RepairReport
    from pipeline.datalake.layout import LAYOUTS, ZONE_FOLDERS, Layout, LayoutStyle, run_of, validate_prefix
    from pipeline.datalake.loader import LakeFormatOptions, LakeLoader
    from pipeline.datalake.manifest import PROTOCOL, Manifest
    from pipeline.datalake.memory import MemoryStore
    from pipeline.datalake.reads import Lake
    from pipeline.datalake.store import (
        Leftover,
        LockClaim,
        LockRecord,
        ObjectSink,
        ObjectStore,
        StoredObject,
        lock_is_live,
    )

_WHERE = {
    "LAYOUTS": "pipeline.datalake.layout",
    "ZONE_FOLDERS": "pipeline.datalake.layout",
    "Layout": "pipeline.datalake.layout",
    "LayoutStyle": "pipeline.datalake.layout",
    "run_of": "pipeline.datalake.layout",
    "validate_prefix": "pipeline.datalake.layout",
    "DayCommit": "pipeline.datalake.commit",
    "RepairReport": "pipeline.datalake.healing",
    "LakeFormatOptions": "pipeline.datalake.loader",
    "LakeLoader": "pipeline.datalake.loader",
    "PROTOCOL": "pipeline.datalake.manifest",
    "Manifest": "pipeline.datalake.manifest",
    "MemoryStore": "pipeline.datalake.memory",
    "Lake": "pipeline.datalake.reads",
    "ObjectStore": "pipeline.datalake.store",
    "Leftover": "pipeline.datalake.store",
    "LockClaim": "pipeline.datalake.store",
    "LockRecord": "pipeline.datalake.store",
    "ObjectSink": "pipeline.datalake.store",
    "StoredObject": "pipeline.datalake.store",
    "lock_is_live": "pipeline.datalake.store",
}

__all__ = [
    "LAYOUTS",
    "PROTOCOL",
    "ZONE_FOLDERS",
    "DayCommit",
    "Lake",
    "LakeFormatOptions",
    "LakeLoader",
    "Layout",
    "LayoutStyle",
    "Leftover",
    "LockClaim",
    "LockRecord",
    "Manifest",
    "MemoryStore",
    "ObjectSink",
    "ObjectStore",
    "RepairReport",
    "StoredObject",
    "lock_is_live",
    "run_of",
    "validate_prefix",
]


__getattr__ = exports(__name__, globals(), _WHERE)
