"""The lake contract shared by loaders: key layout, file formats, cleaned schema, raw zone, atomic files,
and ``ObjectLakeLoader`` with its commit protocol.

Names are imported on first use, so ``from pipeline.datalake import schema`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline._lazy import exports

if TYPE_CHECKING:
    from pipeline.datalake.layout import LAYOUTS, ZONE_FOLDERS, Layout, LayoutStyle, run_of, validate_prefix
    from pipeline.datalake.loader import (
        PROTOCOL,
        LakeFormatOptions,
        Manifest,
        ObjectLakeLoader,
        RepairReport,
    )
    from pipeline.datalake.store import Leftover, LockClaim, LockRecord, ObjectSink, StoredObject, lock_is_live

_WHERE = {
    "LAYOUTS": "pipeline.datalake.layout",
    "ZONE_FOLDERS": "pipeline.datalake.layout",
    "Layout": "pipeline.datalake.layout",
    "LayoutStyle": "pipeline.datalake.layout",
    "run_of": "pipeline.datalake.layout",
    "validate_prefix": "pipeline.datalake.layout",
    "PROTOCOL": "pipeline.datalake.loader",
    "LakeFormatOptions": "pipeline.datalake.loader",
    "Manifest": "pipeline.datalake.loader",
    "ObjectLakeLoader": "pipeline.datalake.loader",
    "RepairReport": "pipeline.datalake.loader",
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
    "lock_is_live",
    "run_of",
    "validate_prefix",
]


__getattr__ = exports(__name__, globals(), _WHERE)
