"""Typed stage options: pydantic models built from a YAML mapping and checked once.

A stage declares ``Options = SomeOptions``, a subclass of ``StageOptions`` (a frozen
pydantic model that refuses unknown keys, NaN and infinity). Bounds are ``Field(ge=...,
le=...)``; anything finer is a pydantic validator, which raises ``OptionError(key,
message)`` (or a plain ``ValueError`` in a field validator). ``build_options`` turns
every failure into a one-line ``ConfigError`` naming the full key path, e.g.
``loader.options.bucket: required``.

Strings are accepted for numbers and booleans (``${VAR}`` interpolation yields strings),
but ``true`` is not a number.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, model_validator
from pydantic_core import ErrorDetails

from pipeline.errors import ConfigError

T = TypeVar("T")

# One template per pydantic error type; the fields are the error's context plus input, type and choices.
_MESSAGES = {
    "missing": "required",
    "extra_forbidden": "unknown option; allowed: {allowed}",
    "greater_than_equal": "must be at least {ge}, got {input}",
    "less_than_equal": "must be at most {le}, got {input}",
    "greater_than": "must be greater than {gt}, got {input}",
    "less_than": "must be less than {lt}, got {input}",
    "finite_number": "must be a finite number, got {input}",
    "int_parsing": "expected an integer, got {input!r}",
    "int_type": "expected an integer, got {input!r}",
    "int_from_float": "expected an integer, got {input!r}",
    "float_parsing": "expected a number, got {input!r}",
    "float_type": "expected a number, got {input!r}",
    "bool_parsing": "expected true or false, got {input!r}",
    "bool_type": "expected true or false, got {input!r}",
    "string_type": "expected a string, got {type}",
    "path_type": "expected a path, got {input!r}",
    "literal_error": "must be one of {choices}, got {input!r}",
    "date_type": "expected a date as YYYY-MM-DD, got {input!r}",
    "date_parsing": "expected a date as YYYY-MM-DD, got {input!r}",
    "date_from_datetime_parsing": "expected a date as YYYY-MM-DD, got {input!r}",
    "dict_type": "expected a mapping, got {type}",
    "list_type": "expected a list, got {type}",
    "tuple_type": "expected a list, got {type}",
}


class OptionError(ValueError):
    """An option is invalid; ``key`` names it (relative to the stage's options)."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(message)


class StageOptions(BaseModel):
    """Base of every stage's options: frozen, unknown keys refused, every float finite.

    Building one in code raises ``OptionError`` naming the first bad key, as ``build_options`` would.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise option_error(exc, type(self)) from None

    @model_validator(mode="before")
    @classmethod
    def _refuse_loose_values(cls, data: Any) -> Any:
        """pydantic reads ``true`` as 1 and ``""`` as the current folder; a config meaning either is a mistake."""
        if not isinstance(data, Mapping):
            return data
        expected: dict[Any, str] = {int: "an integer", float: "a number", Path: "a path"}
        for name, value in data.items():
            field = cls.model_fields.get(name)
            wanted = expected.get(field.annotation) if field is not None else None
            if wanted and (isinstance(value, bool) or value == ""):
                raise OptionError(name, f"expected {wanted}, got {value!r}")
        return data


class NoOptions(StageOptions):
    """Options of a stage that takes none."""


def build_options(cls: type[T], raw: Mapping[str, Any] | None, path: str) -> T:
    """Build and validate ``cls`` from ``raw``; ``path`` is the key path for messages."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: expected a mapping, got {_type_name(raw)}")
    known = known_options(cls)
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"{path}.{unknown[0]}: unknown option; allowed: {', '.join(sorted(known)) or '(none)'}")
    try:
        return TypeAdapter(cls).validate_python(dict(raw))
    except ValidationError as exc:
        error = option_error(exc, cls)
        raise ConfigError(f"{path}.{error.key}: {error}" if error.key else f"{path}: {error}") from None


def known_options(cls: type[Any]) -> dict[str, Any]:
    """The option names of ``cls`` and their annotations; ``TypeError`` if it is no options class."""
    if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
        raise TypeError(f"{cls!r} is not an options class (subclass pipeline.options.StageOptions)")
    return {name: field.annotation for name, field in cls.model_fields.items()}


def option_error(exc: ValidationError, cls: type[Any]) -> OptionError:
    """The first error of ``exc`` as an ``OptionError``: the key path and one line saying what is wrong."""
    error = exc.errors()[0]
    cause = error.get("ctx", {}).get("error")
    key = _key(error["loc"])
    if isinstance(cause, ValueError):  # raised by a validator
        if isinstance(cause, OptionError) and not key:
            key = cause.key
        return OptionError(key, str(cause))
    return OptionError(key, _message(error, cls))


def _message(error: ErrorDetails, cls: type[Any]) -> str:
    template = _MESSAGES.get(error["type"])
    if template is None:
        return error["msg"]
    value = error["input"]
    names = known_options(cls)
    field = error["loc"][0] if error["loc"] else ""
    context = {name: _plain(bound) for name, bound in error.get("ctx", {}).items()}
    return template.format(
        **context,
        input=value,
        type=_type_name(value),
        allowed=", ".join(sorted(names)) or "(none)",
        choices=", ".join(repr(choice) for choice in _choices(names.get(str(field)))),
    )


def _choices(hint: Any) -> list[Any]:
    """The values a ``Literal`` annotation allows, also inside ``| None`` or ``Annotated``."""
    if typing.get_origin(hint) is Literal:
        return list(typing.get_args(hint))
    return [choice for arg in typing.get_args(hint) for choice in _choices(arg)]


def _key(loc: Sequence[int | str]) -> str:
    """``("ids", 0)`` as ``ids[0]``: the syntax the config's own paths use."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")


def _plain(value: Any) -> Any:
    """A float bound that is whole, as written in the model: ``le=1`` says 1, not 1.0."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__
