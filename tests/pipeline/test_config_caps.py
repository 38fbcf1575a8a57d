"""A config is refused before it can hurt: alias bombs, duplicate keys and non-UTF-8 files exit 2 with one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.config import MAX_NODES, load_config, safe_yaml
from pipeline.errors import ConfigError
from tests.support.cli import CliRunner, error_lines

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "data" / "sample" / "2026-11-25"
GOOD = (
    f"extractor: {{type: replay, options: {{path: '{SAMPLE}'}}}}\n"
    "transformer: {type: standardize}\n"
    "loader: {type: local, options: {root: lake}}\n"
)


def alias_bomb(levels: int = 10, width: int = 9) -> str:
    """The ~700-byte document of the issue: each level lists ``width`` aliases of the one before."""
    lines = ['a0: &a0 ["lol"]']
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * width)}]")
    lines.append(f"extractor: {{type: replay, options: {{path: [{', '.join([f'*a{levels - 1}'] * width)}]}}}}")
    return "\n".join(lines) + "\n"


def test_the_alias_bomb_is_refused_with_exit_2_and_one_line(tmp_path: Path, run_cli: CliRunner) -> None:
    bomb = tmp_path / "bomb.yml"
    bomb.write_text(alias_bomb(), encoding="utf-8")
    assert len(bomb.read_bytes()) < 1000
    for command in ("check", "run"):
        done = run_cli(command, "--config", str(bomb))
        assert done.returncode == 2, done.stderr
        [line] = done.stderr.splitlines()
        assert line.startswith(f"error: {bomb}: ") and f"more than {MAX_NODES} YAML nodes" in line


def test_a_bomb_in_a_set_value_is_refused_too(tmp_path: Path, run_cli: CliRunner) -> None:
    config = tmp_path / "c.yml"
    config.write_text(GOOD, encoding="utf-8")
    value = "{" + alias_bomb(6, 9).strip().replace("\n", ", ").split(", extractor")[0] + "}"  # one line
    done = run_cli("check", "--config", str(config), "--set", f"extractor.options.x={value}")
    assert done.returncode == 2, done.stderr
    assert error_lines(done.stderr) == [
        f"error: --set extractor.options.x: a4: more than {MAX_NODES} YAML nodes once its aliases are expanded "
        "(an alias bomb?); write the values out instead"
    ]


def test_aliases_and_merge_keys_of_a_real_config_still_work(tmp_path: Path) -> None:
    config = tmp_path / "c.yml"
    config.write_text(
        "x-defaults: &defaults {path: pages, extracted_at: '2026-11-25T12:00:00+00:00'}\n"
        "extractor: {type: replay, options: {<<: *defaults, path: other}}\n"
        "transformer: {type: standardize}\n"
        "loader: {type: local, options: {root: lake}}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="x-defaults: unknown section"):
        load_config(config)
    raw = safe_yaml(config.read_text(encoding="utf-8"), "c.yml")
    assert raw["extractor"]["options"] == {"path": "other", "extracted_at": "2026-11-25T12:00:00+00:00"}


def test_an_alias_inside_itself_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        safe_yaml("a: &a [1, *a]\n", "c.yml")
    assert str(caught.value) == "c.yml: a[1]: an alias refers to a node that contains it"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            GOOD + "loader: {type: local, options: {root: /elsewhere}}\n",
            "line 4: duplicate key 'loader' (first on line 3); each key may appear once",
        ),
        (
            GOOD.replace("{root: lake}", "{root: lake, root: /elsewhere}"),
            "line 3: duplicate key 'loader.options.root' (first on line 3); each key may appear once",
        ),
        (
            "reporter:\n  - type: markdown\n    options:\n      top: 3\n      top: 5\n",
            "line 5: duplicate key 'reporter[0].options.top' (first on line 4); each key may appear once",
        ),
    ],
)
def test_a_duplicate_key_is_refused_naming_its_path(
    text: str, message: str, tmp_path: Path, run_cli: CliRunner
) -> None:
    config = tmp_path / "dup.yml"
    config.write_text(text, encoding="utf-8")
    done = run_cli("check", "--config", str(config))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"error: {config}: {message}"]


def test_a_config_that_is_not_utf8_exits_2_with_one_line(tmp_path: Path, run_cli: CliRunner) -> None:
    config = tmp_path / "latin1.yml"
    config.write_bytes(GOOD.replace("lake}", "lac\xe9}").encode("latin-1"))
    done = run_cli("run", "--config", str(config))
    assert done.returncode == 2
    offset = config.read_bytes().index(b"\xe9")
    assert done.stderr.splitlines() == [
        f"error: {config}: not UTF-8 text (byte 0xe9 at offset {offset}); save it as UTF-8"
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 2026-13-45\n", "c.yml: month must be in 1..12"),
        ("a: !!int x\n", "c.yml: invalid literal for int() with base 10: 'x'"),
        ("[" * 600 + "]" * 600, "c.yml: nested too deeply"),
    ],
)
def test_a_scalar_its_tag_cannot_build_is_a_config_error(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        safe_yaml(text, "c.yml")
    assert str(caught.value) == message


_keys = st.text(min_size=1, max_size=8)
_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(document=st.dictionaries(_keys, _values, max_size=5))
def test_a_document_without_duplicates_or_bombs_reads_as_safe_load_reads_it(document: dict[str, Any]) -> None:
    text = yaml.safe_dump(document, allow_unicode=True)
    assert safe_yaml(text, "c.yml") == yaml.safe_load(text)
