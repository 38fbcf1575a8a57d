"""Whether this Python has what the project and its configured stages need.

Every command that reads a config calls ``require_core`` first: on an interpreter without the
project's dependencies (a system Python, a venv that missed ``make run``) it stops at once with
one line, not late with ``ModuleNotFoundError``. ``check`` also imports, for each configured
stage, every module its distribution requires (``dependency_check``).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import re
from typing import TYPE_CHECKING

from pipeline.errors import DependencyError

if TYPE_CHECKING:
    from pipeline.stage import Check

CORE_MODULES = ("yaml", "pydantic", "pandas")
"""What every config-reading command needs: its absence means the wrong Python, not a bad stage."""
FOUND_ONLY = frozenset({"pandas"})
"""Core modules that are looked up, not imported: a run imports pandas (0.5 s or more) off the event
loop, while its first pages are already in flight, not before its first request."""
NOT_INSTALLED = "the project's dependencies are not installed in this Python"
HOW_TO_FIX = "run `make run` or use `.venv/bin/python`"
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def require_core(modules: tuple[str, ...] = CORE_MODULES) -> None:
    """Import ``modules`` (look up those of ``FOUND_ONLY``); ``DependencyError`` with the line to print if one fails."""
    for module in modules:
        try:
            if module not in FOUND_ONLY:
                importlib.import_module(module)
            elif importlib.util.find_spec(module) is None:
                raise ModuleNotFoundError(f"No module named {module!r}", name=module)
        except ImportError as exc:
            raise DependencyError(f"{NOT_INSTALLED} ({exc}); {HOW_TO_FIX}") from None


def requirement_modules(distribution: str) -> dict[str, tuple[str, ...]]:
    """``distribution``'s unconditional requirements, each with the top-level modules it installs.

    A requirement that is not installed maps to ``()``.
    """
    from importlib.metadata import PackageNotFoundError, requires

    try:
        wanted = requires(distribution) or []
    except PackageNotFoundError:
        return {}
    modules = _modules_by_distribution()
    found: dict[str, tuple[str, ...]] = {}
    for requirement in wanted:
        marker = requirement.partition(";")[2]
        match = _NAME.match(requirement)
        if match is None or "extra" in marker:
            continue  # an extra's requirement is needed only with that extra
        name = match.group(1)
        found[name] = modules.get(_normalise(name), ())
    return found


def dependency_check(kind: str, stage: str, distribution: str | None) -> Check:
    """Import every module ``distribution`` requires: one check of the stage ``stage``."""
    from pipeline.stage import Check

    if distribution is None:
        return Check(kind, stage, "dependencies", True, "(distribution unknown: not checked)")
    imported, problems = [], []
    for requirement, modules in requirement_modules(distribution).items():
        if not modules:
            problems.append(f"{requirement} is not installed")
        for module in modules:
            try:
                importlib.import_module(module)
            except Exception as exc:  # ImportError, or a broken package's own error at import
                problems.append(f"{module}: {type(exc).__name__}: {exc}")
            else:
                imported.append(module)
    if problems:
        return Check(kind, stage, "dependencies", False, f"{'; '.join(problems)}; {HOW_TO_FIX}")
    return Check(kind, stage, "dependencies", True, f"{', '.join(imported) or 'none'} ({distribution})")


@functools.cache
def _modules_by_distribution() -> dict[str, tuple[str, ...]]:
    from importlib.metadata import packages_distributions

    reverse: dict[str, set[str]] = {}
    for module, distributions in packages_distributions().items():
        if module.isidentifier() and not module.startswith("_"):
            for name in distributions:
                reverse.setdefault(_normalise(name), set()).add(module)
    return {name: tuple(sorted(modules)) for name, modules in reverse.items()}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
