"""pipeline: an async, pluggable ETL from TMDB trending lists into a data lake and a daily report."""

from __future__ import annotations

import logging

from pipeline.config import PipelineConfig, load_config
from pipeline.errors import PipelineError
from pipeline.result import RunResult
from pipeline.runner import run_pipeline
from pipeline.stage import Batch, Extractor, Feed, Loader, Reporter, RunContext, Transformer

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "Batch",
    "Extractor",
    "Feed",
    "Loader",
    "PipelineConfig",
    "PipelineError",
    "Reporter",
    "RunContext",
    "RunResult",
    "Transformer",
    "load_config",
    "run_pipeline",
]
