"""The lake contract shared by loaders: key layout, file formats, cleaned schema, raw zone, atomic files,
and ``ObjectLakeLoader`` with its commit protocol.

Names are imported on first use, so ``from pipeline.lake import schema`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline._lazy import exports

if TYPE_CHECKING:
    from pipeline.lake.layout import LAYOUTS, ZONE_FOLDERS, Layout, LayoutStyle, run_of, validate_prefix
    from pipeline.lake.loader import (
        PROTOCOL,
        LakeFormatOptions,
        Manifest,
        ObjectLakeLoader,
        RepairReport,
        configured_feed,
        lake_reader,
    )
    from pipeline.lake.store import Leftover, LockClaim, LockRecord, ObjectSink, StoredObject, lock_is_live

_WHERE = {
    "LAYOUTS": "pipeline.lake.layout",
    "ZONE_FOLDERS": "pipeline.lake.layout",
    "Layout": "pipeline.lake.layout",
    "LayoutStyle": "pipeline.lake.layout",
    "run_of": "pipeline.lake.layout",
    "validate_prefix": "pipeline.lake.layout",
    "PROTOCOL": "pipeline.lake.loader",
    "LakeFormatOptions": "pipeline.lake.loader",
    "Manifest": "pipeline.lake.loader",
    "ObjectLakeLoader": "pipeline.lake.loader",
    "RepairReport": "pipeline.lake.loader",
    "configured_feed": "pipeline.lake.loader",
    "lake_reader": "pipeline.lake.loader",
    "Leftover": "pipeline.lake.store",
    "LockClaim": "pipeline.lake.store",
    "LockRecord": "pipeline.lake.store",
    "ObjectSink": "pipeline.lake.store",
    "StoredObject": "pipeline.lake.store",
    "lock_is_live": "pipeline.lake.store",
}

__all__ = [
    "LAYOUTS",
    "PROTOCOL",
    "ZONE_FOLDERS",
    "LakeFormatOptions",
    "Layout",
    "LayoutStyle",
    "Leftover",
    "LockClaim",
    "LockRecord",
    "Manifest",
    "ObjectLakeLoader",
    "ObjectSink",
    "RepairReport",
    "StoredObject",
    "configured_feed",
    "lake_reader",
    "lock_is_live",
    "run_of",
    "validate_prefix",
]


__getattr__ = exports(__name__, globals(), _WHERE)
