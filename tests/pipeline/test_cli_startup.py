"""The CLI starts instantly: importing it, ``--help``, ``stages`` and ``check`` load no heavy library.

No pandas, pyarrow, aiohttp or aioboto3.

Each case runs in a fresh interpreter, since this test process has long since imported all of them.
``check`` builds every configured stage, so the stage modules import their heavy libraries where they use them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import run_python

HEAVY = ("pandas", "pyarrow", "aiohttp", "aioboto3")

# Runs main() in-process so that sys.modules can be read afterwards; --help exits through SystemExit.
PROBE = f"""
import sys
import pipeline.cli
code = 0
if sys.argv[1:] != ["(import only)"]:
    try:
        code = pipeline.cli.main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
print("HEAVY=" + ",".join(m for m in {HEAVY!r} if m in sys.modules))
sys.exit(code)
"""


def probe(*argv: str, env: dict[str, str] | None = None) -> tuple[int, list[str], str]:
    """Exit code, heavy modules loaded, and stdout of the CLI run in a fresh interpreter."""
    proc = run_python("-c", PROBE, *argv, env=env, timeout=30)
    lines = proc.stdout.splitlines()
    assert lines and lines[-1].startswith("HEAVY="), proc.stdout + proc.stderr
    loaded = [name for name in lines[-1].removeprefix("HEAVY=").split(",") if name]
    return proc.returncode, loaded, "\n".join(lines[:-1])


@pytest.mark.parametrize(
    ("argv", "shows"),
    [
        pytest.param(("(import only)",), "", id="import-pipeline.cli"),
        pytest.param(("--help",), "usage: python -m pipeline", id="help"),
        pytest.param(("run", "--help"), "--dry-run", id="run-help"),
        pytest.param(("ddl", "--help"), "--engine", id="ddl-help"),
        pytest.param(("history", "--help"), "--title", id="history-help"),
        pytest.param(("stages",), "standardize", id="stages"),
        pytest.param(
            ("check", "--config", "config/demo.yml"), "stages.extractors.replay.ReplayExtractor", id="check-demo"
        ),
        pytest.param(
            ("check", "--config", "config/pipeline.yml"),
            "stages.extractors.tmdb.extractor.TmdbTrendingExtractor",
            id="check-tmdb",
        ),
        pytest.param(("check", "--config", "config/aws.yml"), "stages.loaders.s3.S3Loader", id="check-s3"),
    ],
)
def test_light_commands_import_no_heavy_library(argv: tuple[str, ...], shows: str, tmp_path: Path) -> None:
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
    code, loaded, out = probe(*argv, env=env)

    assert code == 0
    assert shows in out
    assert loaded == [], f"{' '.join(argv)} imported {loaded}"


def test_the_probe_sees_heavy_imports(tmp_path: Path) -> None:
    """Proves the probe is live: running the demo (dry) does import pandas."""
    code, loaded, out = probe(
        "run", "--config", "config/demo.yml", "--date", "2026-11-25", "--dry-run", env={"LAKE_ROOT": str(tmp_path)}
    )

    assert code == 0, out
    assert "pandas" in loaded


def test_every_public_name_of_the_package_resolves() -> None:
    import pipeline

    assert sorted(pipeline.__all__) == sorted(pipeline._WHERE)
    for name in pipeline.__all__:
        assert getattr(pipeline, name) is not None


def test_the_0_1_module_paths_third_party_stages_use_still_resolve() -> None:
    import pipeline.datalake
    import pipeline.datalake.schema
    import pipeline.lake
    import pipeline.schema

    assert pipeline.lake.ObjectLakeLoader is pipeline.datalake.ObjectLakeLoader
    assert sorted(pipeline.lake.__all__) == sorted(pipeline.datalake.__all__)
    assert pipeline.schema.COLUMNS is pipeline.datalake.schema.COLUMNS
