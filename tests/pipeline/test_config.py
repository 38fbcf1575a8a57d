"""Config loading: YAML, interpolation, overrides and the messages of every error."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import Field, model_validator

from pipeline.config import load_config
from pipeline.errors import ConfigError
from pipeline.options import OptionError, StageOptions, build_options

BASE = {
    "extractor": {"type": "replay", "options": {"path": "${PAGES_DIR:-tests/data/sample/2026-11-25}"}},
    "transformer": {"type": "standardize"},
    "loader": {"type": "local", "options": {"root": "${LAKE}"}},
}


def test_yaml_file_with_interpolation_and_a_single_reporter(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text(
        "extractor: {type: replay, options: {path: '${PAGES_DIR:-pages}'}}\n"
        "transformer: {type: standardize}\n"
        "loader: {type: local, options: {root: '${LAKE}/sub'}}\n"
        "reporter: {type: markdown, options: {path: report.md}}\n"
    )
    config = load_config(path, env={"LAKE": "/data/lake"})
    assert config.extractor.options == {"path": "pages"}
    assert config.loader.options == {"root": "/data/lake/sub"}
    assert [r.type for r in config.reporters] == ["markdown"]
    assert config.reporters[0].path == "reporter"


def test_reporter_may_be_a_list() -> None:
    raw = dict(BASE, reporter=[{"type": "markdown"}, {"type": "json", "options": {"path": "-"}}])
    config = load_config(raw, env={"LAKE": "x"})
    assert [(r.type, r.path) for r in config.reporters] == [("markdown", "reporter[0]"), ("json", "reporter[1]")]


def test_missing_variable_names_the_variable_and_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(BASE, env={})
    assert str(caught.value) == "loader.options.root: environment variable LAKE is not set (used as ${LAKE})"


def test_empty_variable_falls_back_to_the_default() -> None:
    config = load_config(BASE, env={"LAKE": "x", "PAGES_DIR": ""})
    assert config.extractor.options["path"] == "tests/data/sample/2026-11-25"


@pytest.mark.parametrize(
    ("override", "key", "expected"),
    [
        ("extractor.options.pages=50", "pages", 50),
        ("extractor.options.rate=2.5", "rate", 2.5),
        ("extractor.options.enrich=false", "enrich", False),
        ("extractor.options.language=en-US", "language", "en-US"),
        ("extractor.options.ids=[1, 2]", "ids", [1, 2]),
        ("extractor.options.empty=", "empty", ""),
    ],
)
def test_set_overrides_parse_values_as_yaml(override: str, key: str, expected: object) -> None:
    config = load_config(BASE, [override], env={"LAKE": "x"})
    assert config.extractor.options[key] == expected


def test_set_can_create_a_missing_options_mapping() -> None:
    config = load_config(BASE, ["transformer.options.page_size=10"], env={"LAKE": "x"})
    assert config.transformer.options == {"page_size": 10}


@pytest.mark.parametrize(
    ("raw", "overrides", "message"),
    [
        (dict(BASE, extra={}), [], "extra: unknown section; allowed: extractor, transformer, loader, reporter"),
        ({k: v for k, v in BASE.items() if k != "loader"}, [], "loader: required section is missing"),
        (dict(BASE, loader={"options": {}}), [], "loader.type: required (the stage's entry-point name)"),
        (dict(BASE, loader={"type": "local", "opts": {}}), [], "loader.opts: unknown key; allowed: options, type"),
        (dict(BASE, loader={"type": "local", "options": [1]}), [], "loader.options: expected a mapping"),
        (dict(BASE, reporter="markdown"), [], "reporter: expected a section or a list of sections"),
        (BASE, ["novalue"], "--set 'novalue': expected KEY=VALUE, e.g. extractor.options.pages=50"),
        (BASE, ["extractor.type.x=1"], "--set extractor.type.x: extractor.type is not a mapping"),
    ],
)
def test_config_errors_name_the_key(raw: dict[str, object], overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(raw, overrides, env={"LAKE": "x"})
    assert str(caught.value) == message


def test_missing_file_and_bad_yaml_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("extractor: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yml: line \d+, column \d+"):
        load_config(bad)


def test_yaml_tags_that_build_objects_are_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.yml"
    evil.write_text("extractor: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError):
        load_config(evil)


class Opts(StageOptions):
    bucket: str
    pages: int = Field(default=20, ge=1, le=500)
    rate: float = 35.0
    enrich: bool = True
    mode: Literal["a", "b"] = "a"
    root: Path = Path("lake")
    language: str | None = None

    @model_validator(mode="after")
    def _bucket(self) -> Opts:
        if self.bucket.startswith("-"):
            raise OptionError("bucket", "must not start with '-'")
        return self


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "loader.options.bucket: required"),
        (
            {"bucket": "b", "colour": 1},
            "loader.options.colour: unknown option; allowed: bucket, enrich, language, mode, pages, rate, root",
        ),
        ({"bucket": 3}, "loader.options.bucket: expected a string, got int"),
        ({"bucket": "b", "pages": 0}, "loader.options.pages: must be at least 1, got 0"),
        ({"bucket": "b", "pages": 501}, "loader.options.pages: must be at most 500, got 501"),
        ({"bucket": "b", "pages": "many"}, "loader.options.pages: expected an integer, got 'many'"),
        ({"bucket": "b", "pages": True}, "loader.options.pages: expected an integer, got True"),
        ({"bucket": "b", "enrich": "maybe"}, "loader.options.enrich: expected true or false, got 'maybe'"),
        ({"bucket": "b", "mode": "c"}, "loader.options.mode: must be one of 'a', 'b', got 'c'"),
        ({"bucket": "-b"}, "loader.options.bucket: must not start with '-'"),
    ],
)
def test_option_errors_name_the_full_key_path(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_options(Opts, raw, "loader.options")
    assert str(caught.value) == message


def test_options_are_typed_and_strings_from_the_environment_are_accepted() -> None:
    opts = build_options(
        Opts, {"bucket": "b", "pages": "50", "rate": "2", "enrich": "false", "root": "/x", "language": None}, "o"
    )
    assert opts == Opts(bucket="b", pages=50, rate=2.0, enrich=False, root=Path("/x"), language=None)
    assert isinstance(opts.rate, float)


@pytest.mark.parametrize("key", ["reporter[1].options.top", "reporter.1.options.top"])
def test_set_names_a_list_item_as_errors_print_it_or_dotted(key: str) -> None:
    raw = dict(BASE, reporter=[{"type": "markdown"}, {"type": "json"}])
    config = load_config(raw, [f"{key}=20"], env={"LAKE": "x"})
    assert [dict(r.options) for r in config.reporters] == [{}, {"top": 20}]


def test_the_key_path_an_option_error_prints_is_one_set_accepts() -> None:
    raw = dict(BASE, reporter=[{"type": "markdown"}, {"type": "json", "options": {"bucket": "b", "pages": 501}}])
    section = load_config(raw, env={"LAKE": "x"}).reporters[1]
    with pytest.raises(ConfigError) as caught:
        build_options(Opts, section.options, f"{section.path}.options")
    key = str(caught.value).partition(":")[0]
    assert key == "reporter[1].options.pages"
    fixed = load_config(raw, [f"{key}=50"], env={"LAKE": "x"}).reporters[1]
    assert build_options(Opts, fixed.options, f"{fixed.path}.options").pages == 50


# -- `--set` errors and list indices, unreadable files, run order -------------------------------------------
LISTED_REPORTERS: dict[str, Any] = {
    "extractor": {"type": "replay", "options": {"path": "pages"}},
    "transformer": {"type": "standardize"},
    "loader": {"type": "local", "options": {"root": "${LAKE}"}},
    "reporter": [{"type": "markdown"}, {"type": "json", "options": {"path": "${OUT:-out.json}"}}],
}


@pytest.mark.parametrize("value", ["[1,", "{a: 1", "'open", "a: b: c"])
def test_a_set_value_that_is_not_yaml_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(LISTED_REPORTERS, [f"extractor.options.ids={value}"], env={"LAKE": "x"})
    assert str(caught.value) == f"--set extractor.options.ids: value {value!r} is not valid YAML"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_set_reaches_into_a_reporter_list_by_index() -> None:
    config = load_config(
        LISTED_REPORTERS, ["reporter.1.options.path=report.json", "reporter.0.type=github-summary"], env={"LAKE": "x"}
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
        load_config(LISTED_REPORTERS, [override], env={"LAKE": "x"})
    assert str(caught.value) == message


def test_variables_inside_lists_are_interpolated() -> None:
    config = load_config(LISTED_REPORTERS, env={"LAKE": "x", "OUT": "/reports/today.json"})
    assert config.reporters[1].options == {"path": "/reports/today.json"}


def test_the_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKE", "/from/the/environment")
    assert load_config(LISTED_REPORTERS).loader.options == {"root": "/from/the/environment"}


def test_stages_are_listed_in_run_order() -> None:
    config = load_config(LISTED_REPORTERS, env={"LAKE": "x"})
    assert [(kind, section.type, section.path) for kind, section in config.stages()] == [
        ("extractor", "replay", "extractor"),
        ("transformer", "standardize", "transformer"),
        ("loader", "local", "loader"),
        ("reporter", "markdown", "reporter[0]"),
        ("reporter", "json", "reporter[1]"),
    ]


def test_null_options_mean_no_options() -> None:
    config = load_config(
        dict(LISTED_REPORTERS, transformer={"type": "standardize", "options": None}), env={"LAKE": "x"}
    )
    assert config.transformer.options == {}


def test_an_error_in_the_transformer_section_names_it() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(dict(LISTED_REPORTERS, transformer={"type": ""}), env={"LAKE": "x"})
    assert str(caught.value) == "transformer.type: required (the stage's entry-point name)"


@pytest.mark.parametrize("section", ["extractor", "transformer", "loader", "reporter"])
def test_a_section_that_is_not_a_mapping_is_named(section: str) -> None:
    raw = dict(LISTED_REPORTERS, **{section: ["replay"] if section == "reporter" else "replay"})
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
