"""pipeline: an async, pluggable ETL from TMDB trending lists into a data lake and a daily report."""

from __future__ import annotations

import logging
from typing import Any

from pipeline.config import PipelineConfig, load_config
from pipeline.errors import PipelineError
from pipeline.result import RunResult
from pipeline.runner import run_pipeline
from pipeline.stage import Batch, CommitInfo, Extractor, Feed, LakeReader, Loader, Reporter, RunContext, Transformer

logging.getLogger(__name__).addHandler(logging.NullHandler())


def __getattr__(name: str) -> Any:
    """``repair`` and ``reprocess`` need the lake (and pandas): imported when first used."""
    if name == "reprocess":
        from pipeline.reprocess import reprocess

        return reprocess
    if name == "repair":
        from pipeline.repair import repair

        return repair
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Batch",
    "CommitInfo",
    "Extractor",
    "Feed",
    "LakeReader",
    "Loader",
    "PipelineConfig",
    "PipelineError",
    "Reporter",
    "RunContext",
    "RunResult",
    "Transformer",
    "load_config",
    "repair",
    "reprocess",
    "run_pipeline",
]
