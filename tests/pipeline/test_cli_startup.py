"""The CLI starts instantly: importing it, ``--help`` and ``stages`` load no heavy library.

No pandas, pyarrow, aiohttp or aioboto3, and no asyncio (with ssl and socket, ~60 ms of a 166 ms ``--help``).

The light commands run in one fresh interpreter (this test process has long since imported all of them),
lightest first, with the heavy modules listed after each.
``check`` is not light on purpose (issue 22): it imports every configured stage's dependencies, so that a
Python without them fails at ``check``, not halfway through a run.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from tests.support.cli import ROOT, clean_env, run_python
from tests.support.fixtures_tmdb import StandinFactory

HEAVY = ("pandas", "pyarrow", "aiohttp", "aioboto3")
NETWORK = ("asyncio", "ssl", "socket")  # --help never uses them

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
    print("\\nHEAVY=" + json.dumps([code, [m for m in {HEAVY + NETWORK!r} if m in sys.modules]]), flush=True)
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
    "version": (("-V",), "pipeline "),
    "stages": (("stages",), "standardize"),
}
CHECKS = {
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
    commands = {**LIGHT, **CHECKS}  # the light ones first: each is charged only with what it adds
    results = probe(*(argv for argv, _ in commands.values()), env=env)
    return dict(zip(commands, results, strict=True))


@pytest.mark.parametrize("name", list(LIGHT))
def test_light_commands_import_no_heavy_library(
    name: str, light_commands: dict[str, tuple[int, list[str], str]]
) -> None:
    argv, shows = LIGHT[name]
    code, loaded, out = light_commands[name]

    assert code == 0
    assert shows in out
    # -V reads metadata (importlib.metadata imports socket, through email); everything before it none of them
    allowed = NETWORK if list(LIGHT).index(name) >= list(LIGHT).index("version") else ()
    assert [m for m in loaded if m not in allowed] == [], f"{' '.join(argv)} imported {loaded}"


@pytest.mark.parametrize("name", list(CHECKS))
def test_check_imports_every_configured_stage_dependency(
    name: str, light_commands: dict[str, tuple[int, list[str], str]]
) -> None:
    _, shows = CHECKS[name]
    code, loaded, out = light_commands[name]

    assert code == 0, out
    assert shows in out
    # the stages' distribution requires aiohttp, aioboto3 and pandas
    assert {"pandas", "aiohttp", "aioboto3"} <= set(loaded)
    dependencies = [line for line in out.splitlines() if " dependencies " in line]
    assert {line.split()[1] for line in dependencies} == {"extractor", "transformer", "loader", "reporter"}
    assert all(line.startswith("✓") and "pandas" in line for line in dependencies)


# Wraps aiohttp's request method, then runs main(): which heavy modules were loaded when the first request left, and
# at exit (which proves the probe sees them: the run cleans its pages with pandas).
FIRST_REQUEST_PROBE = f"""
import json, sys
import aiohttp.client
send = aiohttp.client.ClientSession._request
first = []
async def _request(self, *args, **kwargs):
    if not first:
        first.append([m for m in {HEAVY!r} if m in sys.modules])
    return await send(self, *args, **kwargs)
aiohttp.client.ClientSession._request = _request
import pipeline.cli
code = pipeline.cli.main(sys.argv[1:])
print("FIRST=" + json.dumps([code, first, [m for m in {HEAVY!r} if m in sys.modules]]), flush=True)
"""


async def test_a_run_sends_its_first_request_before_it_imports_pandas(
    tmp_path: Path, tmdb_standin: StandinFactory
) -> None:
    """Issue 21: pandas (0.5 s or more) loads in the transformer's thread while the first pages are in flight."""
    standin = await tmdb_standin(total_pages=2)
    argv = [
        "run", "-q", "--config", "config/pipeline.yml", "--set", "extractor.options.feeds=[movie/day]",
        "--set", "extractor.options.pages=2", "--set", "reporter=[]",
    ]  # fmt: skip
    env = clean_env({"TMDB_ACCESS_TOKEN": "startup-probe-token", "TMDB_BASE_URL": standin.base_url})
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FIRST_REQUEST_PROBE, *argv, "--set", f"loader.options.root={tmp_path / 'lake'}",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(child.communicate(), timeout=50)
    [line] = [line for line in out.decode().splitlines() if line.startswith("FIRST=")]
    code, first, at_exit = json.loads(line.removeprefix("FIRST="))

    assert code == 0, err.decode()
    assert first == [["aiohttp"]]
    assert {"pandas", "aiohttp"} <= set(at_exit)


def test_every_public_name_of_the_package_resolves() -> None:
    import pipeline

    assert sorted(pipeline.__all__) == sorted(pipeline._WHERE)
    for name in pipeline.__all__:
        assert getattr(pipeline, name) is not None
