"""The CLI starts instantly: importing it, ``--help``, ``stages`` and ``check`` load no heavy library.

No pandas, pyarrow, aiohttp or aioboto3.

The light commands run in one fresh interpreter (this test process has long since imported all of them),
lightest first, with the heavy modules listed after each.
``check`` builds every configured stage, so the stage modules import their heavy libraries where they use them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import run_python

HEAVY = ("pandas", "pyarrow", "aiohttp", "aioboto3")

# Runs main() in-process for each command in turn, so that sys.modules can be read after each; --help exits
# through SystemExit. One interpreter for all the light commands: they run in the order given, lightest first, so
# each is charged only with what it adds (what an earlier command imported would be charged to that one).
PROBE = f"""
import json, sys
import pipeline.cli
results = []
for argv in json.loads(sys.argv[1]):
    code = 0
    if argv != ["(import only)"]:
        try:
            code = pipeline.cli.main(argv)
        except SystemExit as exc:
            code = exc.code
    sys.stdout.flush()
    print("\\nHEAVY=" + json.dumps([code, [m for m in {HEAVY!r} if m in sys.modules]]), flush=True)
"""


def probe(*commands: tuple[str, ...], env: dict[str, str] | None = None) -> list[tuple[int, list[str], str]]:
    """For each command, in order: exit code, heavy modules loaded so far, and its stdout; one fresh interpreter."""
    proc = run_python("-c", PROBE, json.dumps([list(c) for c in commands]), env=env, timeout=60)
    results, out = [], []
    for line in proc.stdout.splitlines():
        if line.startswith("HEAVY="):
            code, loaded = json.loads(line.removeprefix("HEAVY="))
            results.append((code, loaded, "\n".join(out)))
            out = []
        else:
            out.append(line)
    assert len(results) == len(commands), proc.stdout + proc.stderr
    return results


LIGHT = {
    "import-pipeline.cli": (("(import only)",), ""),
    "help": (("--help",), "usage: python -m pipeline"),
    "run-help": (("run", "--help"), "--dry-run"),
    "ddl-help": (("ddl", "--help"), "--engine"),
    "history-help": (("history", "--help"), "--title"),
    "stages": (("stages",), "standardize"),
    "check-demo": (("check", "--config", "config/demo.yml"), "stages.extractors.replay.ReplayExtractor"),
    "check-tmdb": (
        ("check", "--config", "config/pipeline.yml"),
        "stages.extractors.tmdb.extractor.TmdbTrendingExtractor",
    ),
    "check-s3": (("check", "--config", "config/aws.yml"), "stages.loaders.s3.S3Loader"),
}


@pytest.fixture(scope="module")
def light_commands(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, list[str], str]]:
    """Every light command, run in one fresh interpreter, by test id."""
    tmp_path = tmp_path_factory.mktemp("startup")
    # Credentials and a bucket so that every check passes; no network is used without --connect.
    env = {
        "TMDB_ACCESS_TOKEN": "startup-probe-token",
        "S3_BUCKET": "startup-probe-bucket",
        "AWS_ACCESS_KEY_ID": "AKIASTARTUPPROBE0001",
        "AWS_SECRET_ACCESS_KEY": "startup-probe-secret",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "LAKE_ROOT": str(tmp_path / "lake"),
    }
    results = probe(*(argv for argv, _ in LIGHT.values()), env=env)
    return dict(zip(LIGHT, results, strict=True))


@pytest.mark.parametrize("name", list(LIGHT))
def test_light_commands_import_no_heavy_library(
    name: str, light_commands: dict[str, tuple[int, list[str], str]]
) -> None:
    argv, shows = LIGHT[name]
    code, loaded, out = light_commands[name]

    assert code == 0
    assert shows in out
    assert loaded == [], f"{' '.join(argv)} imported {loaded}"


def test_the_probe_sees_heavy_imports(tmp_path: Path) -> None:
    """Proves the probe is live: running the demo (dry) does import pandas."""
    [(code, loaded, out)] = probe(
        ("run", "--config", "config/demo.yml", "--date", "2026-11-25", "--dry-run"), env={"LAKE_ROOT": str(tmp_path)}
    )

    assert code == 0, out
    assert "pandas" in loaded


def test_every_public_name_of_the_package_resolves() -> None:
    import pipeline

    assert sorted(pipeline.__all__) == sorted(pipeline._WHERE)
    for name in pipeline.__all__:
        assert getattr(pipeline, name) is not None
