"""``python -m pipeline check``: a preflight that needs no network, and ``--connect`` that calls each service once."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import CliResult, CliRunner
from tests.support.fixtures_s3 import ACCESS_KEY_ID, SECRET_ACCESS_KEY, object_keys
from tests.support.fixtures_tmdb import StandinFactory
from tests.support.sample import replay_config, write_config

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "data" / "sample" / "2026-11-25"
TOKEN = "check-test-token-0123456789abcdef"


def check_config(path: Path, *, extractor: dict[str, Any] | None = None, loader: dict[str, Any] | None = None) -> Path:
    """A config file: replay of the sample (or ``extractor``) → standardize → ``loader`` (default: local)."""
    reporters = [{"type": "markdown", "options": {"path": str(path.parent / "report.md")}}]
    lake = loader or {"type": "local", "options": {"root": str(path.parent / "lake")}}
    document = replay_config(lake, SAMPLE, reporters)
    if extractor is not None:
        document["extractor"] = extractor
    return write_config(path, document)


def failed(done: CliResult) -> list[str]:
    """The table's failed lines."""
    return [line for line in done.stdout.splitlines() if line.startswith("✗")]


def test_an_offline_check_of_a_good_config_passes_and_writes_nothing(tmp_path: Path, run_cli: CliRunner) -> None:
    path = check_config(tmp_path / "c.yml")

    done = run_cli("check", "--config", str(path))

    assert done.returncode == 0, done.stdout + done.stderr
    assert failed(done) == []
    assert "✓ extractor   replay          path         " in done.stdout
    assert "4 JSON file(s)" in done.stdout
    assert "the first run creates it" in done.stdout
    assert done.stdout.splitlines()[-1] == f"{path}: valid, 10 checks passed (offline; --connect for more)"
    assert not (tmp_path / "lake").exists() and not (tmp_path / "report.md").exists()


@pytest.mark.parametrize(
    ("replay_path", "reason"),
    [
        pytest.param("missing", "replay path not found: {path}", id="missing"),
        pytest.param("empty", "no *.json page files in {path}", id="no-pages"),
    ],
)
def test_a_replay_path_that_cannot_be_replayed_fails_the_check(
    tmp_path: Path, run_cli: CliRunner, replay_path: str, reason: str
) -> None:
    where = tmp_path / replay_path
    if replay_path == "empty":
        where.mkdir()
    path = check_config(tmp_path / "c.yml", extractor={"type": "replay", "options": {"path": str(where)}})

    done = run_cli("check", "--config", str(path))

    assert done.returncode == 1
    assert failed(done) == [f"✗ extractor   replay          path         {reason.format(path=where)}"]
    assert done.stdout.splitlines()[-1] == f"{path}: 1 of 10 checks failed"


def test_a_lake_root_that_cannot_be_created_fails_the_check(tmp_path: Path, run_cli: CliRunner) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    path = check_config(tmp_path / "c.yml", loader={"type": "local", "options": {"root": str(blocker / "lake")}})

    done = run_cli("check", "--config", str(path))

    assert done.returncode == 1
    assert failed(done) == [
        f"✗ loader      local           lake folder  {blocker / 'lake'} does not exist and cannot be created: "
        f"{blocker} is not a writable folder"
    ]


def tmdb(**options: Any) -> dict[str, Any]:
    """A tmdb-trending extractor section."""
    return {"type": "tmdb-trending", "options": {"pages": 1, **options}}


def test_tmdb_without_credentials_fails_offline_naming_both_variables(tmp_path: Path, run_cli: CliRunner) -> None:
    done = run_cli("check", "--config", str(check_config(tmp_path / "c.yml", extractor=tmdb())))

    assert done.returncode == 1
    assert failed(done) == [
        "✗ extractor   tmdb-trending   credentials  no TMDB credentials: set TMDB_ACCESS_TOKEN "
        "(v4 read access token, preferred) or TMDB_API_KEY (v3 key)"
    ]


@pytest.mark.parametrize(
    ("env", "source"),
    [
        pytest.param({"TMDB_ACCESS_TOKEN": TOKEN}, "TMDB_ACCESS_TOKEN is set (v4 token", id="token"),
        pytest.param({"TMDB_API_KEY": TOKEN}, "TMDB_API_KEY is set (v3 key", id="key"),
    ],
)
def test_tmdb_credentials_present_pass_offline_without_a_request_or_the_secret(
    tmp_path: Path, run_cli: CliRunner, env: dict[str, str], source: str, closed_port: int
) -> None:
    # A closed port: any request would fail the check, so passing proves none was made.
    section = tmdb(base_url=f"http://127.0.0.1:{closed_port}")
    done = run_cli("check", "--config", str(check_config(tmp_path / "c.yml", extractor=section)), env=env)

    assert done.returncode == 0, done.stdout + done.stderr
    assert source in done.stdout
    assert "not called; --connect makes one GET /3/configuration" in done.stdout
    assert TOKEN not in done.stdout + done.stderr


async def test_tmdb_connect_makes_one_authenticated_configuration_call(
    tmp_path: Path, run_cli: CliRunner, tmdb_standin: StandinFactory
) -> None:
    standin = await tmdb_standin(token=TOKEN)
    path = check_config(tmp_path / "c.yml", extractor=tmdb(base_url=standin.base_url))

    done = await asyncio.to_thread(
        run_cli, "check", "--config", str(path), "--connect", env={"TMDB_ACCESS_TOKEN": TOKEN}
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"✓ extractor   tmdb-trending   TMDB API     GET {standin.base_url}/3/configuration: OK in " in done.stdout
    assert dict(standin.stats.paths) == {"/3/configuration": 1}
    assert standin.stats.auth["bearer"] == 1
    assert TOKEN not in done.stdout + done.stderr


async def test_tmdb_connect_with_a_wrong_token_fails_with_tmdb_message_and_no_secret(
    tmp_path: Path, run_cli: CliRunner, tmdb_standin: StandinFactory
) -> None:
    standin = await tmdb_standin(token="the-right-token-0123456789")
    path = check_config(tmp_path / "c.yml", extractor=tmdb(base_url=standin.base_url))

    done = await asyncio.to_thread(
        run_cli, "check", "--config", str(path), "--connect", env={"TMDB_ACCESS_TOKEN": TOKEN}
    )

    assert done.returncode == 1
    [line] = failed(done)
    assert line.startswith("✗ extractor   tmdb-trending   TMDB API     ")
    assert "401" in line and "Invalid API key" in line
    assert standin.stats.requests == 1  # a 401 is not retried
    assert TOKEN not in done.stdout + done.stderr


def s3(bucket: str, **options: Any) -> dict[str, Any]:
    """An s3 loader section."""
    return {"type": "s3", "options": {"bucket": bucket, "prefix": "lake/tmdb", **options}}


def test_s3_offline_finds_environment_credentials_and_never_prints_them(
    tmp_path: Path, run_cli: CliRunner, aws_env: dict[str, str], closed_port: int
) -> None:
    section = s3("some-bucket", endpoint_url=f"http://127.0.0.1:{closed_port}")
    done = run_cli("check", "--config", str(check_config(tmp_path / "c.yml", loader=section)), env=aws_env)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "✓ loader      s3              bucket       s3://some-bucket/lake/tmdb (bucket name and prefix valid)" in (
        done.stdout
    )
    assert "✓ loader      s3              credentials  found by the standard AWS chain (env)" in done.stdout
    assert "writes and deletes one small object under s3://some-bucket/lake/tmdb/_preflight/" in done.stdout
    assert ACCESS_KEY_ID not in done.stdout + done.stderr and SECRET_ACCESS_KEY not in done.stdout + done.stderr


def test_s3_offline_finds_a_profile_in_the_shared_credentials_file(
    tmp_path: Path, run_cli: CliRunner, aws_env: dict[str, str]
) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[lake]\naws_access_key_id = {ACCESS_KEY_ID}\naws_secret_access_key = {SECRET_ACCESS_KEY}\n"
    )
    env = {k: v for k, v in aws_env.items() if not k.startswith(("AWS_ACCESS", "AWS_SECRET"))}
    env |= {"AWS_SHARED_CREDENTIALS_FILE": str(credentials), "AWS_PROFILE": "lake"}

    done = run_cli("check", "--config", str(check_config(tmp_path / "c.yml", loader=s3("some-bucket"))), env=env)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "found by the standard AWS chain (shared-credentials-file)" in done.stdout


def test_s3_offline_without_credentials_fails_and_asks_no_metadata_service(
    tmp_path: Path, run_cli: CliRunner, aws_env: dict[str, str]
) -> None:
    env = {k: v for k, v in aws_env.items() if not k.startswith(("AWS_ACCESS", "AWS_SECRET", "AWS_EC2_METADATA"))}

    done = run_cli("check", "--config", str(check_config(tmp_path / "c.yml", loader=s3("some-bucket"))), env=env)

    assert done.returncode == 1
    assert failed(done) == [
        "✗ loader      s3              credentials  none found in the environment, the profile files, SSO or web "
        "identity (an EC2 instance or container role is only looked for with --connect)"
    ]


def test_an_invalid_bucket_is_a_failed_check_and_a_configuration_error(tmp_path: Path, run_cli: CliRunner) -> None:
    done = run_cli("check", "--config", str(check_config(tmp_path / "c.yml", loader=s3("s3://Bad_Bucket"))))

    assert done.returncode == 2
    [line] = failed(done)
    assert line.startswith("✗ loader      s3              options      loader.options.bucket: 's3://Bad_Bucket' is not")
    assert "✓ extractor   replay          path" in done.stdout  # the other stages are still checked


async def test_s3_connect_heads_the_bucket_and_writes_then_deletes_one_probe(
    tmp_path: Path, run_cli: CliRunner, aws_env: dict[str, str], s3_client: Any, s3_bucket: str, moto_endpoint: str
) -> None:
    path = check_config(tmp_path / "c.yml", loader=s3(s3_bucket, endpoint_url=moto_endpoint))

    done = await asyncio.to_thread(run_cli, "check", "--config", str(path), "--connect", env=aws_env)

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"✓ loader      s3              HeadBucket   s3://{s3_bucket} is there and readable" in done.stdout
    [probe] = [line for line in done.stdout.splitlines() if " write probe " in line]
    assert probe.startswith(f"✓ loader      s3              write probe  wrote and deleted s3://{s3_bucket}/lake/tmdb/")
    assert "/_preflight/" in probe
    assert "writes and deletes one small object" in done.stderr  # said before doing it
    assert await object_keys(s3_client, s3_bucket) == []
    assert SECRET_ACCESS_KEY not in done.stdout + done.stderr


@pytest.mark.parametrize("endpoint", ["moto", "closed"])
async def test_s3_connect_to_a_missing_bucket_or_a_dead_endpoint_fails_at_head_bucket(
    tmp_path: Path, run_cli: CliRunner, aws_env: dict[str, str], moto_endpoint: str, closed_port: int, endpoint: str
) -> None:
    url = moto_endpoint if endpoint == "moto" else f"http://127.0.0.1:{closed_port}"
    path = check_config(tmp_path / "c.yml", loader=s3("no-such-bucket-here", endpoint_url=url))

    done = await asyncio.to_thread(
        run_cli, "check", "--config", str(path), "--connect", env={**aws_env, "AWS_MAX_ATTEMPTS": "1"}
    )

    assert done.returncode == 1
    [line] = failed(done)
    expected = (
        "s3://no-such-bucket-here does not exist (404; check loader.options.bucket and the region)"
        if endpoint == "moto"
        else f"cannot reach s3://no-such-bucket-here: cannot reach {url} (EndpointConnectionError)"
    )
    assert line == f"✗ loader      s3              HeadBucket   {expected}"
    assert "write probe" not in done.stdout


def test_a_plugin_stage_gets_the_default_preflight(tmp_path: Path, run_cli: CliRunner) -> None:
    path = check_config(tmp_path / "c.yml")
    document = json.loads(path.read_text())
    document["reporter"] = {"type": "row-count", "options": {"path": str(tmp_path / "count.txt")}}
    path.write_text(json.dumps(document))

    done = run_cli("check", "--config", str(path))

    assert done.returncode == 0, done.stdout
    assert "✓ reporter    row-count       options      valid (pipeline_plugin_demo." in done.stdout
