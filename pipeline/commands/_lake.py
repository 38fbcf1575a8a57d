"""The configured lake and feed, built outside a run: what the read-side and maintenance commands work on."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from pipeline.config import PipelineConfig
from pipeline.datalake.loader import LakeLoader
from pipeline.errors import ConfigError
from pipeline.runner import build_stage, select_feeds
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


def selected_feeds(config: PipelineConfig, only: Collection[str | Feed] | None = None) -> tuple[Feed, ...]:
    """The configured feeds ``only`` names, in the config's order (every one without it), as ``run --feed`` picks them.

    A name that is not ``media/window``, or a feed the config does not have, is a ``ConfigError`` (exit 2).
    """
    return tuple(select_feeds(configured_feeds(config), only))
