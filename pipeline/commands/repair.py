"""``repair``: heal a lake on demand, or with ``check`` only report what needs healing.

Every write run already heals what dead runs left (``LakeLoader.recover``); this
command does the same, plus a full check of every committed day against its manifest.
"""

from __future__ import annotations

from pipeline.commands._lake import lake_reader
from pipeline.config import PipelineConfig
from pipeline.datalake import RepairReport


async def repair(config: PipelineConfig, *, check: bool = False) -> RepairReport:
    """Heal the configured lake (or, with ``check``, only report); returns what was found and done."""
    async with lake_reader(config) as loader:
        return await loader.repair(check=check)
