"""Typed stage options: frozen dataclasses built from a YAML mapping and checked once.

A stage declares ``Options = SomeFrozenDataclass``. ``build_options`` checks unknown
keys, required keys and types from the annotations, bounds from field metadata
(``ge``, ``le``, ``gt``; a bounded number must also be finite, since NaN passes every
comparison), and runs the dataclass's ``__post_init__`` for anything finer, which
raises ``OptionError``. Every failure becomes a ``ConfigError`` naming the full
key path, e.g. ``loader.options.bucket: required``.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from pipeline.errors import ConfigError

T = TypeVar("T")


class OptionError(ValueError):
    """Raised from an options ``__post_init__``; ``key`` names the offending option."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(message)


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """Options of a stage that takes none."""


def build_options(cls: type[T], raw: Mapping[str, Any] | None, path: str) -> T:
    """Build and validate ``cls`` from ``raw``; ``path`` is the key path for messages."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: expected a mapping, got {_type_name(raw)}")
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        allowed = ", ".join(sorted(fields)) or "(none)"
        raise ConfigError(f"{path}.{unknown[0]}: unknown option; allowed: {allowed}")
    values: dict[str, Any] = {}
    for name, field in fields.items():
        key = f"{path}.{name}"
        if name not in raw:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{key}: required")
            continue
        value = _coerce(raw[name], hints[name], key)
        _check_bounds(value, field.metadata, key)
        values[name] = value
    try:
        return cls(**values)
    except OptionError as exc:
        raise ConfigError(f"{path}.{exc.key}: {exc}") from None


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for candidate in inner:
            try:
                return _coerce(value, candidate, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: invalid value {value!r}")
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(f"{key}: must be one of {choices}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {_type_name(value)}")
        item = args[0] if args else Any
        return tuple(_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value))
    if hint is Any:
        return value
    if isinstance(value, str) and hint in (bool, int, float):
        # Values interpolated from ${VAR} are strings; accept them when they parse cleanly.
        value = _parse_scalar(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {_type_name(value)}")
        return value
    if hint is Path:
        if not isinstance(value, str | Path) or not str(value):
            raise ConfigError(f"{key}: expected a path, got {value!r}")
        return Path(value)
    raise TypeError(f"unsupported option type {hint!r} for {key}")


def _parse_scalar(text: str) -> Any:
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    for parse in (int, float):
        try:
            return parse(lowered)
        except ValueError:
            continue
    return text


def _check_bounds(value: Any, metadata: Mapping[str, Any], key: str) -> None:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return
    low, high = metadata.get("ge"), metadata.get("le")
    if isinstance(value, float) and not math.isfinite(value) and any(b in metadata for b in ("ge", "le", "gt")):
        # Every comparison with NaN is false, so NaN would pass any bound (and infinity the lower ones).
        raise ConfigError(f"{key}: must be a finite number, got {value}")
    if low is not None and value < low:
        raise ConfigError(f"{key}: must be at least {low}, got {value}")
    if high is not None and value > high:
        raise ConfigError(f"{key}: must be at most {high}, got {value}")
    above = metadata.get("gt")
    if above is not None and value <= above:
        raise ConfigError(f"{key}: must be greater than {above}, got {value}")


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__
