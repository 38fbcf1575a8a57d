"""Config paths the main config tests leave open: ``--set`` errors and list indices, unreadable files, run order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.config import load_config
from pipeline.errors import ConfigError

BASE: dict[str, Any] = {
    "extractor": {"type": "replay", "options": {"path": "pages"}},
    "transformer": {"type": "standardize"},
    "loader": {"type": "local", "options": {"root": "${LAKE}"}},
    "reporter": [{"type": "markdown"}, {"type": "json", "options": {"path": "${OUT:-out.json}"}}],
}


@pytest.mark.parametrize("value", ["[1,", "{a: 1", "'open", "a: b: c"])
def test_a_set_value_that_is_not_yaml_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(BASE, [f"extractor.options.ids={value}"], env={"LAKE": "x"})
    assert str(caught.value) == f"--set extractor.options.ids: value {value!r} is not valid YAML"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_set_reaches_into_a_reporter_list_by_index() -> None:
    config = load_config(
        BASE, ["reporter.1.options.path=report.json", "reporter.0.type=github-summary"], env={"LAKE": "x"}
    )
    assert [(r.type, dict(r.options)) for r in config.reporters] == [
        ("github-summary", {}),
        ("json", {"path": "report.json"}),
    ]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("reporter.2.type=json", "--set reporter.2.type: reporter is not a mapping"),
        ("reporter.first.type=json", "--set reporter.first.type: reporter is not a mapping"),
        ("reporter.5=json", "--set reporter.5: reporter is not a mapping"),
    ],
    ids=["index past the end", "not an index", "replacing a list item"],
)
def test_set_into_a_list_needs_an_existing_index(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(BASE, [override], env={"LAKE": "x"})
    assert str(caught.value) == message


def test_variables_inside_lists_are_interpolated() -> None:
    config = load_config(BASE, env={"LAKE": "x", "OUT": "/reports/today.json"})
    assert config.reporters[1].options == {"path": "/reports/today.json"}


def test_the_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKE", "/from/the/environment")
    assert load_config(BASE).loader.options == {"root": "/from/the/environment"}


def test_stages_are_listed_in_run_order() -> None:
    config = load_config(BASE, env={"LAKE": "x"})
    assert [(kind, section.type, section.path) for kind, section in config.stages()] == [
        ("extractor", "replay", "extractor"),
        ("transformer", "standardize", "transformer"),
        ("loader", "local", "loader"),
        ("reporter", "markdown", "reporter[0]"),
        ("reporter", "json", "reporter[1]"),
    ]


def test_null_options_mean_no_options() -> None:
    config = load_config(dict(BASE, transformer={"type": "standardize", "options": None}), env={"LAKE": "x"})
    assert config.transformer.options == {}


def test_an_error_in_the_transformer_section_names_it() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(dict(BASE, transformer={"type": ""}), env={"LAKE": "x"})
    assert str(caught.value) == "transformer.type: required (the stage's entry-point name)"


@pytest.mark.parametrize("section", ["extractor", "transformer", "loader", "reporter"])
def test_a_section_that_is_not_a_mapping_is_named(section: str) -> None:
    raw = dict(BASE, **{section: ["replay"] if section == "reporter" else "replay"})
    with pytest.raises(ConfigError) as caught:
        load_config(raw, env={"LAKE": "x"})
    where = "reporter[0]" if section == "reporter" else section
    assert str(caught.value) == f"{where}: expected a mapping with 'type' and 'options'"


def test_an_unreadable_config_names_the_reason(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)  # a directory
    assert str(caught.value) == f"cannot read config {tmp_path}: Is a directory"


@pytest.mark.parametrize(
    ("name", "text", "after_path"),
    [
        pytest.param(
            "list.yml",
            "- extractor\n- loader\n",
            {": the top level must be a mapping with extractor, transformer, loader, reporter"},
            id="top-level-not-a-mapping",
        ),
        pytest.param(
            "bad.yml",
            "extractor:\n  type: replay\n  options: a: b\n",
            {": line 3, column 13: mapping values are not allowed here"},
            id="yaml-syntax-error-names-the-place-and-the-problem",
        ),
        # The reader refuses \x07 before parsing: no line, no problem text. The empty place leaves "::";
        # a message without it would be as good.
        pytest.param(
            "control.yml", "extractor: \x07\n", {":: invalid YAML", ": invalid YAML"}, id="yaml-error-without-a-place"
        ),
    ],
)
def test_a_bad_config_file_is_named_with_its_problem(
    tmp_path: Path, name: str, text: str, after_path: set[str]
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) in {f"{path}{suffix}" for suffix in after_path}
