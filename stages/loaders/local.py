"""``local`` loader: the lake in a folder on disk (the embedded default); its store is ``LocalStore``."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import field_validator

from pipeline.datalake import LakeFormatOptions, LakeLoader, validate_prefix
from pipeline.stage import Check
from stages.loaders.local_store import LocalStore


class LocalOptions(LakeFormatOptions):
    """Options of the ``local`` loader (plus format, layout and the commit limits from ``LakeFormatOptions``)."""

    root: Path = Path("lake")
    prefix: str = ""

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return validate_prefix(value)

    @field_validator("root")
    @classmethod
    def _root_is_a_folder(cls, value: Path) -> Path:
        if value.exists() and not value.is_dir():
            raise ValueError(f"{value} exists and is not a folder")
        return value


class LocalLoader(LakeLoader[LocalOptions]):
    """Writes the lake under ``root`` with the same key layout as the S3 lake."""

    Options = LocalOptions

    def build_store(self) -> LocalStore:
        """A ``LocalStore`` on ``root``; temp files carry this run's id (none outside a run: ``repair``)."""
        options = self.options
        writer = self._context.run_id if self._context is not None else None
        return LocalStore(
            options.root, options.prefix, lock_timeout=options.lock_timeout, writer=writer, stage=self.name
        )

    async def preflight(self, connect: bool) -> list[Check]:
        """Options valid, and the lake folder writable (or creatable: the first run makes it); creates nothing."""
        checks = await super().preflight(connect)
        root = self.options.root
        if root.is_dir():
            ok = os.access(root, os.W_OK | os.X_OK)
            detail = f"{root} exists and is writable" if ok else f"{root} exists but is not writable"
            return [*checks, self.preflight_check("lake folder", detail, ok=ok)]
        parent = root.absolute().parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        ok = parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)
        detail = (
            f"{root} does not exist yet; the first run creates it in {parent}"
            if ok
            else f"{root} does not exist and cannot be created: {parent} is not a writable folder"
        )
        return [*checks, self.preflight_check("lake folder", detail, ok=ok)]
