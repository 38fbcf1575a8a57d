"""The configured lake and feed, built outside a run: what the read-side and maintenance commands work on."""

from __future__ import annotations

from typing import Any

from pipeline.config import PipelineConfig
from pipeline.datalake.loader import LakeLoader
from pipeline.errors import ConfigError
from pipeline.runner import build_stage
from pipeline.stage import Feed


def lake_reader(config: PipelineConfig) -> LakeLoader[Any]:
    """The configured loader as a reader (and healer) of its lake, built outside a run; not opened."""
    loader = build_stage("loader", config.loader)
    if not isinstance(loader, LakeLoader):
        raise ConfigError(f"loader {config.loader.type!r} does not keep an object-store lake that can be read back")
    return loader


def configured_feed(config: PipelineConfig) -> Feed:
    """The feed the configured extractor produces, asked of the extractor itself (built outside a run)."""
    feed: Feed = build_stage("extractor", config.extractor).feed
    return feed


def configured_feeds(config: PipelineConfig) -> tuple[Feed, ...]:
    """Every feed the configured extractor produces in a run (built outside a run)."""
    feeds: tuple[Feed, ...] = tuple(build_stage("extractor", config.extractor).feeds)
    return feeds
