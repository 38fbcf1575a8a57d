"""pipeline: an async, pluggable ETL from TMDB trending lists into a data lake and a daily report.

The public names below are imported on first use (PEP 562), so ``python -m pipeline --help``
and a plugin's ``import pipeline.stage`` do not pay for the whole library.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pipeline._lazy import exports

if TYPE_CHECKING:
    from pipeline.commands.repair import repair
    from pipeline.commands.reprocess import reprocess
    from pipeline.config import PipelineConfig, load_config
    from pipeline.errors import PipelineError
    from pipeline.runner import run_pipeline
    from pipeline.stage import (
        Batch,
        CommitInfo,
        Committed,
        Extractor,
        Feed,
        FeedResult,
        LakeReader,
        LoadDay,
        Loader,
        Output,
        Reporter,
        RunContext,
        RunLake,
        RunResult,
        Transformer,
    )

logging.getLogger(__name__).addHandler(logging.NullHandler())

_WHERE = {
    "Batch": "pipeline.stage",
    "CommitInfo": "pipeline.stage",
    "Committed": "pipeline.stage",
    "FeedResult": "pipeline.stage",
    "LoadDay": "pipeline.stage",
    "Extractor": "pipeline.stage",
    "Feed": "pipeline.stage",
    "LakeReader": "pipeline.stage",
    "Loader": "pipeline.stage",
    "Reporter": "pipeline.stage",
    "RunContext": "pipeline.stage",
    "RunLake": "pipeline.stage",
    "Output": "pipeline.stage",
    "Transformer": "pipeline.stage",
    "PipelineConfig": "pipeline.config",
    "load_config": "pipeline.config",
    "PipelineError": "pipeline.errors",
    "RunResult": "pipeline.stage",
    "run_pipeline": "pipeline.runner",
    "repair": "pipeline.commands.repair",
    "reprocess": "pipeline.commands.reprocess",
}

__all__ = [
    "Batch",
    "CommitInfo",
    "Committed",
    "Extractor",
    "Feed",
    "FeedResult",
    "LakeReader",
    "LoadDay",
    "Loader",
    "Output",
    "PipelineConfig",
    "PipelineError",
    "Reporter",
    "RunContext",
    "RunLake",
    "RunResult",
    "Transformer",
    "load_config",
    "repair",
    "reprocess",
    "run_pipeline",
]


__getattr__ = exports(__name__, globals(), _WHERE)
