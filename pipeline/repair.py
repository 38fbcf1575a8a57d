"""``repair``: heal a lake on demand, or with ``check`` only report what needs healing.

Every write run already heals what dead runs left (``ObjectLakeLoader.recover``); this
command does the same, plus a full check of every committed day against its manifest.
"""

from __future__ import annotations

from pipeline.config import PipelineConfig
from pipeline.errors import ConfigError
from pipeline.lake import ObjectLakeLoader, RepairReport
from pipeline.runner import build_stage, new_context


def lake_loader(config: PipelineConfig) -> ObjectLakeLoader[object]:
    """The configured loader, built without a run; it must keep an object-store lake."""
    loader = build_stage("loader", config.loader, new_context())
    if not isinstance(loader, ObjectLakeLoader):
        raise ConfigError(f"loader {config.loader.type!r} does not keep an object-store lake that repair can heal")
    return loader


async def repair(config: PipelineConfig, *, check: bool = False) -> RepairReport:
    """Heal the configured lake (or, with ``check``, only report); returns what was found and done."""
    async with lake_loader(config) as loader:
        return await loader.repair(check=check)
