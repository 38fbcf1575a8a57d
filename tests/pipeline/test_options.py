"""Stage options as pydantic models: what plugin authors can declare, and the one-line errors they get."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import pytest
from pydantic import Field, ValidationError

from pipeline import Reporter, RunResult
from pipeline.config import load_config
from pipeline.errors import ConfigError
from pipeline.options import NoOptions, OptionError, StageOptions, build_options
from pipeline.stage import RunLake

CONFIG = {
    "extractor": {"type": "replay", "options": {"path": "pages"}},
    "transformer": {"type": "standardize"},
    "loader": {"type": "local"},
}


class WeightedOptions(StageOptions):
    """A third party's options: types the dataclass coercion refused (``unsupported option type``)."""

    weights: dict[str, int] = Field(default_factory=dict)
    since: dt.date | None = None
    ratio: float = Field(default=0.5, ge=0, le=1)


class WeightedReporter(Reporter[WeightedOptions]):
    """A plugin-style reporter declaring its options as a pydantic model."""

    Options = WeightedOptions

    async def report(self, result: RunResult, lake: RunLake) -> dict[str, str]:
        """Nothing to write."""
        return {}


def reporter_options(options: dict[str, object], env: dict[str, str] | None = None) -> WeightedOptions:
    config = load_config(dict(CONFIG, reporter={"type": "weighted", "options": options}), env=env or {})
    section = config.reporters[0]
    return build_options(WeightedReporter.Options, section.options, f"{section.path}.options")


def test_a_plugin_declares_mapping_and_date_options() -> None:
    opts = reporter_options({"weights": {"movie": 2, "tv": "3"}, "since": dt.date(2026, 11, 1)})
    assert opts.weights == {"movie": 2, "tv": 3}
    assert opts.since == dt.date(2026, 11, 1)
    from_env = reporter_options({"since": "${SINCE}"}, env={"SINCE": "2026-11-02"})
    assert from_env.since == dt.date(2026, 11, 2)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"weights": {"movie": "many"}}, "reporter.options.weights.movie: expected an integer, got 'many'"),
        ({"weights": [1]}, "reporter.options.weights: expected a mapping, got list"),
        ({"since": "yesterday"}, "reporter.options.since: expected a date as YYYY-MM-DD, got 'yesterday'"),
        ({"ratio": 2}, "reporter.options.ratio: must be at most 1, got 2"),
        ({"ratio": "nan"}, "reporter.options.ratio: must be a finite number, got nan"),
        ({"ratio": True}, "reporter.options.ratio: expected a number, got True"),
        ({"colour": "red"}, "reporter.options.colour: unknown option; allowed: ratio, since, weights"),
    ],
)
def test_plugin_option_errors_are_one_line_naming_the_key(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        reporter_options(options)
    assert str(caught.value) == message


def test_every_float_refuses_nan_and_infinity_even_without_bounds() -> None:
    class Unbounded(StageOptions):
        scale: float = 1.0

    for value in (math.nan, math.inf, -math.inf, "inf"):
        with pytest.raises(ConfigError, match=r"^o\.scale: must be a finite number"):
            build_options(Unbounded, {"scale": value}, "o")


def test_options_built_in_code_raise_a_keyed_option_error_and_are_frozen() -> None:
    with pytest.raises(OptionError, match="must be at most 1, got 3") as caught:
        WeightedOptions(ratio=3)
    assert caught.value.key == "ratio"
    opts = WeightedOptions(ratio=0.25)
    with pytest.raises(ValidationError):
        opts.ratio = 0.5  # type: ignore[misc]
    assert hash(NoOptions()) == hash(NoOptions())


def test_no_options_takes_none() -> None:
    assert build_options(NoOptions, None, "transformer.options") == NoOptions()
    with pytest.raises(ConfigError) as caught:
        build_options(NoOptions, {"x": 1}, "transformer.options")
    assert str(caught.value) == "transformer.options.x: unknown option; allowed: (none)"
    with pytest.raises(ConfigError) as caught:
        build_options(NoOptions, ["x"], "transformer.options")  # type: ignore[arg-type]
    assert str(caught.value) == "transformer.options: expected a mapping, got list"


def test_a_class_that_is_not_stage_options_is_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class Plain:
        pages: int = 20

    with pytest.raises(TypeError, match="is not an options class"):
        build_options(Plain, {}, "o")
    with pytest.raises(TypeError, match="is not an options class"):
        build_options(dict, {}, "o")
