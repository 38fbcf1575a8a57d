"""Bad input found by the adversarial sweep (issue 18) is a one-line configuration error, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import CliRunner

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "data" / "sample" / "2026-11-25"


def write_config(path: Path, loader: str) -> Path:
    path.write_text(
        f"extractor: {{type: replay, options: {{path: '{SAMPLE}'}}}}\n"
        "transformer: {type: standardize}\n"
        f"loader: {loader}\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    ("loader", "shown"),
    [
        ('{type: local, options: {root: LAKE, prefix: "tm\\0db"}}', "U+0000): 'tm\\x00db'"),
        ('{type: local, options: {root: LAKE, prefix: "a/\\x1b[31m"}}', "U+001B): 'a/\\x1b[31m'"),
        ('{type: s3, options: {bucket: my-lake, prefix: "tmdb\\n"}}', "U+000A): 'tmdb\\n'"),
        ('{type: s3, options: {bucket: my-lake, prefix: "x\\x85y"}}', "U+0085): 'x\\x85y'"),
    ],
)
def test_a_control_character_in_the_prefix_is_a_config_error(
    loader: str, shown: str, tmp_path: Path, run_cli: CliRunner
) -> None:
    config = write_config(tmp_path / "c.yml", loader.replace("LAKE", str(tmp_path / "lake")))
    done = run_cli("run", "--config", str(config), "--date", "2026-11-25")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: loader.options.prefix: must not contain control characters ({shown}"
    ]
    assert not (tmp_path / "lake").exists()
    checked = run_cli("check", "--config", str(config))
    assert checked.returncode == 2 and "loader.options.prefix: must not contain control characters" in checked.stdout
