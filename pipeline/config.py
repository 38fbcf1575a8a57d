"""Reads the YAML config: ``yaml.safe_load``, ``${VAR}`` interpolation, ``--set`` overrides.

Shape::

    extractor:   {type: <entry-point name>, options: {...}}
    transformer: {type: ..., options: {...}}
    loader:      {type: ..., options: {...}}
    reporter:    {type: ..., options: {...}}     # or a list of such sections

Every error is a ``ConfigError`` naming the full key path.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import ConfigError
from pipeline.kinds import KINDS

REQUIRED = ("extractor", "transformer", "loader")
_SECTION_KEYS = {"type", "options"}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_INDEX = re.compile(r"\[(\d+)\]")


@dataclasses.dataclass(frozen=True)
class StageConfig:
    """One stage section: the entry-point name, its raw options, and its key path."""

    type: str
    options: Mapping[str, Any]
    path: str


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """A validated config: one extractor, transformer and loader, any number of reporters."""

    extractor: StageConfig
    transformer: StageConfig
    loader: StageConfig
    reporters: tuple[StageConfig, ...] = ()

    def stages(self) -> list[tuple[str, StageConfig]]:
        """``(kind, section)`` for every stage, in run order."""
        pairs = [("extractor", self.extractor), ("transformer", self.transformer), ("loader", self.loader)]
        return pairs + [("reporter", r) for r in self.reporters]


def load_config(
    source: str | os.PathLike[str] | Mapping[str, Any],
    overrides: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
) -> PipelineConfig:
    """Read a YAML file (or take a mapping), apply ``KEY=VALUE`` overrides, interpolate, validate."""
    env = os.environ if env is None else env
    if isinstance(source, Mapping):
        raw: Any = copy.deepcopy(dict(source))
        name = "<mapping>"
    else:
        raw, name = _read_yaml(Path(source)), str(source)
    if not isinstance(raw, dict):
        raise ConfigError(f"{name}: the top level must be a mapping with {', '.join(KINDS)}")
    for item in overrides:
        apply_override(raw, item)
    raw = _interpolate(raw, "", env)
    return _validate(raw, name)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}:{where}: {problem}") from None


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply one ``dotted.key=value`` override in place; the value is parsed as YAML.

    A list item is named as errors print it, ``reporter[0].options.top``, or as ``reporter.0.options.top``.
    """
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. extractor.options.pages=50")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        raise ConfigError(f"--set {key}: value {text!r} is not valid YAML") from None
    parts = _INDEX.sub(r".\1", key.strip()).split(".")
    node: Any = raw
    for depth, part in enumerate(parts[:-1]):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {'.'.join(parts[:depth]) or 'top level'} is not a mapping")
        node = node.setdefault(part, {})
    if not isinstance(node, dict):
        raise ConfigError(f"--set {key}: {'.'.join(parts[:-1])} is not a mapping")
    node[parts[-1]] = value


def _interpolate(value: Any, path: str, env: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, f"{path}.{k}" if path else str(k), env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, f"{path}[{i}]", env) for i, v in enumerate(value)]
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            var, default = match.group(1), match.group(2)
            if var in env and env[var] != "":
                return env[var]
            if default is not None:
                return default
            raise ConfigError(f"{path}: environment variable {var} is not set (used as ${{{var}}})")

        return _VAR.sub(substitute, value)
    return value


def _validate(raw: dict[str, Any], name: str) -> PipelineConfig:
    unknown = sorted(set(raw) - set(KINDS))
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown section; allowed: {', '.join(KINDS)}")
    for section in REQUIRED:
        if section not in raw:
            raise ConfigError(f"{section}: required section is missing")
    reporters_raw = raw.get("reporter") or []
    reporters: tuple[StageConfig, ...]
    if isinstance(reporters_raw, dict):
        reporters = (_section(reporters_raw, "reporter"),)
    elif isinstance(reporters_raw, list):
        reporters = tuple(_section(r, f"reporter[{i}]") for i, r in enumerate(reporters_raw))
    else:
        raise ConfigError("reporter: expected a section or a list of sections")
    return PipelineConfig(
        extractor=_section(raw["extractor"], "extractor"),
        transformer=_section(raw["transformer"], "transformer"),
        loader=_section(raw["loader"], "loader"),
        reporters=reporters,
    )


def _section(raw: Any, path: str) -> StageConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with 'type' and 'options'")
    unknown = sorted(set(raw) - _SECTION_KEYS)
    if unknown:
        raise ConfigError(f"{path}.{unknown[0]}: unknown key; allowed: options, type")
    stage_type = raw.get("type")
    if not isinstance(stage_type, str) or not stage_type:
        raise ConfigError(f"{path}.type: required (the stage's entry-point name)")
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        raise ConfigError(f"{path}.options: expected a mapping")
    return StageConfig(type=stage_type, options=options, path=path)
