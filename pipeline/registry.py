"""Finds stages by entry-point name and imports only the ones asked for.

One entry-point group per kind; the built-ins are registered in the same groups that
third-party plugins use (see ``setup.cfg``). Finding (reading metadata) is kept apart
from loading (importing): listing stages imports none of them, and a stage's module (with
its pandas, aiohttp or aioboto3) is imported only when that stage is built.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pipeline.errors import StageLoadError, UnknownStageError
from pipeline.kinds import KINDS, entry_point_group

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from pipeline.stage import Stage

logger = logging.getLogger(__name__)

GROUPS: dict[str, str] = {kind: entry_point_group(kind) for kind in KINDS}


@dataclasses.dataclass(frozen=True)
class StageInfo:
    """A registered stage, known from metadata alone (nothing imported)."""

    kind: str
    name: str
    target: str
    distribution: str


def find(kind: str, eps: Iterable[EntryPoint] | None = None) -> dict[str, EntryPoint]:
    """All entry points of ``kind`` by name; ``eps`` replaces installed metadata in tests."""
    group = GROUPS[kind]
    found = eps if eps is not None else _installed_stages()
    return {ep.name: ep for ep in found if ep.group == group}


@functools.cache
def _installed_stages() -> tuple[EntryPoint, ...]:
    """The installed entry points of every stage group, read once per process.

    A scan reads every installed distribution's metadata (~7 ms here) whatever the group: one scan
    for the four groups, not one per group (a run builds three kinds of stage).
    """
    # importlib.metadata costs ~20 ms to import: only commands that look stages up pay for it.
    from importlib.metadata import entry_points

    installed = entry_points()  # every group (Python 3.11: a SelectableGroups, whose select() we use)
    return tuple(ep for group in GROUPS.values() for ep in installed.select(group=group))


def describe(eps: Iterable[EntryPoint] | None = None) -> list[StageInfo]:
    """Every registered stage of every kind, sorted by kind then name."""
    pool = list(eps) if eps is not None else None
    infos = []
    for kind in GROUPS:
        for name, ep in sorted(find(kind, pool).items()):
            infos.append(StageInfo(kind, name, ep.value, _distribution(ep)))
    return infos


def load(kind: str, name: str, eps: Iterable[EntryPoint] | None = None) -> type[Stage[Any]]:
    """Import and return the stage class registered as ``name`` for ``kind``."""
    if kind not in GROUPS:
        raise ValueError(f"unknown stage kind {kind!r}")
    available = find(kind, eps)
    ep = available.get(name)
    if ep is None:
        raise UnknownStageError(kind, name, list(available))
    try:
        obj = ep.load()
    except Exception as exc:
        raise StageLoadError(kind, name, _distribution(ep), exc) from exc
    base = _bases()[kind]
    if not (isinstance(obj, type) and issubclass(obj, base)):
        cause = TypeError(f"{ep.value} is not a subclass of pipeline.{base.__name__}")
        raise StageLoadError(kind, name, _distribution(ep), cause)
    logger.debug("loaded %s %r from %s", kind, name, ep.value)
    return obj


def distribution_name(kind: str, name: str, eps: Iterable[EntryPoint] | None = None) -> str | None:
    """The name of the distribution that registers ``name`` for ``kind``, or ``None`` if unknown."""
    ep = find(kind, eps).get(name)
    dist = getattr(ep, "dist", None)
    return str(dist.name) if dist is not None else None


def _distribution(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "(unknown distribution)"


def _bases() -> dict[str, type[Stage[Any]]]:
    """The base class each kind must subclass (``pipeline.stage`` loads pydantic: only ``load`` needs it)."""
    from pipeline.stage import BASES

    return BASES
