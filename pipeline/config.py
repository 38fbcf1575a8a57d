"""Reads the YAML config: ``yaml.safe_load``, ``${VAR}`` interpolation, ``--set`` overrides.

Shape::

    extractor:   {type: <entry-point name>, options: {...}}
    transformer: {type: ..., options: {...}}
    loader:      {type: ..., options: {...}}
    reporter:    {type: ..., options: {...}}     # or a list of such sections

Every error is a ``ConfigError`` naming the full key path. The YAML is read with a
``yaml.SafeLoader`` in two steps: the node graph first, checked (no duplicate key, at most
``MAX_NODES`` nodes once every alias is expanded, no alias that contains itself), then the
Python objects. A ~700-byte alias bomb therefore fails at once instead of being expanded.
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
MAX_NODES = 10_000
"""Nodes a config may hold with every alias expanded; a real one holds under 200."""
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclasses.dataclass(frozen=True)
class StageConfig:
    """One stage section: the entry-point name, its raw options, and its key path."""

    type: str
    options: Mapping[str, Any]
    path: str
    retyped: bool = False
    """``--set <path>.type=...`` changed the stage but kept the section's options (they may not fit)."""


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
    retyped = set()
    for item in overrides:
        apply_override(raw, item)
        retyped |= _retyped_section(item)
    raw = _interpolate(raw, "", env)
    return _validate(raw, name, frozenset(retyped))


def _retyped_section(item: str) -> set[str]:
    """``{"extractor"}`` for ``--set extractor.type=replay``, ``{"reporter[0]"}`` for ``reporter.0.type=json``."""
    parts = _INDEX.sub(r".\1", item.partition("=")[0].strip()).split(".")
    if len(parts) == 2 and parts[1] == "type":
        return {parts[0]}
    if len(parts) == 3 and parts[0] == "reporter" and parts[1].isdigit() and parts[2] == "type":
        return {f"reporter[{parts[1]}]"}
    return set()


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); save it as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    return safe_yaml(text, str(path)) or {}


def safe_yaml(text: str, where: str, invalid: str | None = None) -> Any:
    """``yaml.safe_load`` of ``text``, refusing duplicate keys and aliases that expand past ``MAX_NODES``.

    ``where`` leads every error: the file name, or ``--set KEY``; ``invalid``, if given, replaces the
    message of a syntax error.
    """
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node, where)
        return loader.construct_document(node)
    except (yaml.YAMLError, ValueError) as exc:
        if invalid is not None:
            raise ConfigError(invalid) from None
        if isinstance(exc, ValueError):  # a scalar its tag cannot build: ``2026-13-45``, ``!!int x``
            raise ConfigError(f"{where}: {exc}") from None
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{where}:{at} {problem}") from None
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def _check_nodes(root: yaml.Node, where: str) -> None:
    """Refuse a duplicate mapping key, an alias inside itself, or more than ``MAX_NODES`` expanded nodes."""
    sizes: dict[int, int] = {}  # expanded size per node already counted: each alias is counted, not walked
    walking: set[int] = set()

    def size(node: yaml.Node, path: str) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        if id(node) in walking:
            raise ConfigError(f"{where}: {path or 'top level'}: an alias refers to a node that contains it")
        walking.add(id(node))
        total = 1
        if isinstance(node, yaml.MappingNode):
            _refuse_duplicates(node, path, where)
            for key, value in node.value:
                name = _key_name(key)
                child = f"{path}.{name}" if path else name
                total += size(key, child) + size(value, child)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(item, f"{path}[{i}]") for i, item in enumerate(node.value))
        walking.discard(id(node))
        if total > MAX_NODES:
            raise ConfigError(
                f"{where}: {path or 'top level'}: more than {MAX_NODES} YAML nodes once its aliases are expanded "
                "(an alias bomb?); write the values out instead"
            )
        sizes[id(node)] = total
        return total

    size(root, "")


def _refuse_duplicates(node: yaml.MappingNode, path: str, where: str) -> None:
    """PyYAML keeps the last of two equal keys: a second ``loader:`` would silently move the lake."""
    first: dict[tuple[str, str], yaml.Node] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == _MERGE_TAG:
            continue  # keys merged in by ``<<: *base`` may be overridden: that is what merging is for
        earlier = first.setdefault((key.tag, key.value), key)
        if earlier is not key:
            name = f"{path}.{key.value}" if path else key.value
            raise ConfigError(
                f"{where}: line {key.start_mark.line + 1}: duplicate key {name!r} "
                f"(first on line {earlier.start_mark.line + 1}); each key may appear once"
            )


def _key_name(key: yaml.Node) -> str:
    return str(key.value) if isinstance(key, yaml.ScalarNode) else "<complex key>"


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply one ``dotted.key=value`` override in place; the value is parsed as YAML.

    A list item is named as errors print it, ``reporter[0].options.top``, or as ``reporter.0.options.top``.
    """
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. extractor.options.pages=50")
    value = safe_yaml(text, f"--set {key}", f"--set {key}: value {text!r} is not valid YAML") if text.strip() else ""
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


def _validate(raw: dict[str, Any], name: str, retyped: frozenset[str] = frozenset()) -> PipelineConfig:
    unknown = sorted(set(raw) - set(KINDS))
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown section; allowed: {', '.join(KINDS)}")
    for section in REQUIRED:
        if section not in raw:
            raise ConfigError(f"{section}: required section is missing")
    reporters_raw = raw.get("reporter") or []
    reporters: tuple[StageConfig, ...]
    if isinstance(reporters_raw, dict):
        reporters = (_section(reporters_raw, "reporter", retyped),)
    elif isinstance(reporters_raw, list):
        reporters = tuple(_section(r, f"reporter[{i}]", retyped) for i, r in enumerate(reporters_raw))
    else:
        raise ConfigError("reporter: expected a section or a list of sections")
    return PipelineConfig(
        extractor=_section(raw["extractor"], "extractor", retyped),
        transformer=_section(raw["transformer"], "transformer", retyped),
        loader=_section(raw["loader"], "loader", retyped),
        reporters=reporters,
    )


def _section(raw: Any, path: str, retyped: frozenset[str] = frozenset()) -> StageConfig:
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
    # reporter.0.type names the first item, also when reporter is one section rather than a list
    changed = path in retyped or (path == "reporter" and "reporter[0]" in retyped)
    return StageConfig(type=stage_type, options=options, path=path, retyped=changed and bool(options))
