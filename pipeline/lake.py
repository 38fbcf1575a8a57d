"""Alias of ``pipeline.datalake``, where the lake contract now lives.

Kept because third-party loaders written against 0.1 subclass ``pipeline.lake.ObjectLakeLoader``
(and use ``Layout``, ``LakeFormatOptions``, ...); new code should import ``pipeline.datalake``.
"""

from __future__ import annotations

from pipeline._lazy import exports
from pipeline.datalake import _WHERE, __all__

__getattr__ = exports(__name__, globals(), _WHERE)
__all__ = list(__all__)
