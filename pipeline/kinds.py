"""The four stage kinds, in run order: the config's sections, the entry-point groups and the stage bases follow them.

Kept apart from ``pipeline.stage`` (which loads pydantic) so that the config and the registry stay light.
"""

from __future__ import annotations

from typing import Literal, get_args

StageKind = Literal["extractor", "transformer", "loader", "reporter"]
KINDS: tuple[StageKind, ...] = get_args(StageKind)


def entry_point_group(kind: StageKind) -> str:
    """The entry-point group of ``kind``'s stages: ``pipeline.extractors``, ..."""
    return f"pipeline.{kind}s"
