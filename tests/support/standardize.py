"""The real ``standardize`` transformer over TMDB page documents, as the transformer tests call it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from pipeline.stage import Batch, Feed, Lookups, RunContext
from stages.transformers.standardize import StandardizeOptions, StandardizeTransformer

FETCHED = dt.datetime(2026, 11, 25, 12, 0, 3, tzinfo=dt.UTC)
MOVIES = Feed()
NO_LOOKUPS = Lookups()


async def clean(
    context: RunContext, pages: list[dict[str, Any]], feed: Feed = MOVIES, lookups: Lookups = NO_LOOKUPS
) -> tuple[pd.DataFrame, StandardizeTransformer]:
    """The cleaned rows of ``pages`` (each fetched at ``FETCHED``), and the transformer that made them."""
    transformer = StandardizeTransformer(StandardizeOptions(), context)
    chunks = [await transformer.transform(Batch(p["page"], p, feed, FETCHED, lookups)) for p in pages]
    return pd.concat(chunks, ignore_index=True), transformer
