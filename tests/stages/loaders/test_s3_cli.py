"""The ``s3`` loader through the command line (``pipeline.cli.main`` in this process) and ``config/aws.yml``.

That ``python -m pipeline`` itself exits with these codes is shown once, for the local lake, in
``tests/pipeline/test_cli.py``; here a subprocess would add an interpreter start and nothing else.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import load_config
from pipeline.datalake import Layout
from pipeline.errors import ConfigError
from pipeline.stage import Feed
from stages.loaders.s3 import MiB
from tests.support.cli import ROOT, CliRunner, error_lines
from tests.support.fakes import TREND_DATE, YESTERDAY, page
from tests.support.fixtures_s3 import ACCESS_KEY_ID, SECRET_ACCESS_KEY, get_object, object_keys, open_uploads
from tests.support.lake import context_for
from tests.support.s3 import commit_small_day
from tests.support.sample import record_line, replay_config, write_config


def s3_config_file(path: Path, pages: Path, bucket: str, **options: Any) -> Path:
    """A replay → standardize → s3 config file."""
    return write_config(path, replay_config({"type": "s3", "options": {"bucket": bucket, **options}}, pages))


async def test_failure_after_the_first_part_exits_1_with_one_line_and_keeps_the_lake(
    tmp_path: Path, aws_env: dict[str, str], s3_client: Any, s3_bucket: str, moto_endpoint: str, run_cli: CliRunner
) -> None:
    await commit_small_day(context_for(YESTERDAY, "yesterday001"), s3_bucket, moto_endpoint)
    await commit_small_day(context_for(TREND_DATE, "earlier00001"), s3_bucket, moto_endpoint, first_id=500)
    before = {key: await get_object(s3_client, s3_bucket, key) for key in await object_keys(s3_client, s3_bucket)}
    pages = tmp_path / "pages"
    pages.mkdir()
    # 14 pages of ~0.8 MB of CSV fill more than two 5 MiB parts; page 15 is broken.
    for number in range(1, 15):
        ids = list(range((number - 1) * 20 + 1, number * 20 + 1))
        document = page(number, ids, title="T" * 20_000 + " {id}")
        (pages / f"page-{number:03d}.json").write_bytes(record_line(document))
    (pages / "page-015.json").write_text("{not json", encoding="utf-8")
    config = s3_config_file(tmp_path / "s3.yml", pages, s3_bucket, part_size=5 * MiB)

    argv = ("run", "--config", str(config), "--date", TREND_DATE.isoformat())
    # The CLI runs its own event loop: off this test's loop, in a thread.
    done = await asyncio.to_thread(run_cli, *argv, env={**aws_env, "AWS_ENDPOINT_URL": moto_endpoint})

    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert error_lines(done.stderr) == [
        f"error: extractor 'replay': {pages / 'page-015.json'}: invalid JSON "
        "(Expecting property name enclosed in double quotes: line 1 column 2 (char 1)); "
        f"nothing was committed; {TREND_DATE} keeps its previous data"
    ]
    # The loader had a multipart upload open, and aborted it.
    run_id = re.search(r"run ([0-9a-f]{12}): ", done.stderr)
    assert run_id is not None, done.stderr
    version = Layout().run_key("version", TREND_DATE, Feed(), run_id.group(1))
    assert f"aborted the upload of s3://{s3_bucket}/{version}" in done.stderr
    assert await open_uploads(s3_client, s3_bucket) == []
    after = {key: await get_object(s3_client, s3_bucket, key) for key in await object_keys(s3_client, s3_bucket)}
    assert after == before


@pytest.mark.parametrize(
    ("bucket", "endpoint", "expected"),
    [
        (
            "no-such-bucket-here",
            "moto",
            "error: loader 's3': cannot list the multipart uploads of s3://no-such-bucket-here: NoSuchBucket: "
            "the bucket does not exist (check loader.options.bucket and the region)",
        ),
        (
            "some-bucket",
            "closed",
            "error: loader 's3': cannot list the multipart uploads of s3://some-bucket: cannot reach {endpoint} "
            "(EndpointConnectionError)",
        ),
    ],
)
def test_s3_errors_exit_1_with_one_line_and_no_credentials(
    bucket: str,
    endpoint: str,
    expected: str,
    tmp_path: Path,
    aws_env: dict[str, str],
    moto_endpoint: str,
    closed_port: int,
    run_cli: CliRunner,
) -> None:
    url = moto_endpoint if endpoint == "moto" else f"http://127.0.0.1:{closed_port}"
    config = s3_config_file(tmp_path / "s3.yml", ROOT / "tests/data/sample/2026-11-25", bucket, endpoint_url=url)

    done = run_cli(
        "run", "--config", str(config), "--date", TREND_DATE.isoformat(), env={**aws_env, "AWS_MAX_ATTEMPTS": "1"}
    )

    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    outcome = f"; nothing was committed; {TREND_DATE} keeps its previous data"
    assert error_lines(done.stderr) == [expected.format(endpoint=url) + outcome]
    assert SECRET_ACCESS_KEY not in done.stderr + done.stdout
    assert ACCESS_KEY_ID not in done.stderr + done.stdout


def test_aws_config_needs_s3_bucket_and_never_falls_back() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(ROOT / "config/aws.yml", env={})
    assert (
        str(caught.value) == "loader.options.bucket: environment variable S3_BUCKET is not set (used as ${S3_BUCKET})"
    )


def test_aws_config_reads_tmdb_into_s3_and_writes_the_markdown_report() -> None:
    config = load_config(ROOT / "config/aws.yml", env={"S3_BUCKET": "my-tmdb-lake"})
    assert config.extractor.type == "tmdb-trending"
    assert config.transformer.type == "standardize"
    assert config.loader.type == "s3"
    assert dict(config.loader.options) == {"bucket": "my-tmdb-lake", "prefix": "tmdb-trending"}
    assert [(r.type, dict(r.options)) for r in config.reporters] == [
        ("markdown", {"path": "LATEST_UPDATE.md"}),
        ("github-summary", {}),
        ("notify", {"url": ""}),
    ]


def test_cli_check_of_the_aws_config_without_s3_bucket_exits_2_naming_the_variable(run_cli: CliRunner) -> None:
    done = run_cli("check", "--config", "config/aws.yml", env={})
    assert done.returncode == 2
    assert error_lines(done.stderr) == [
        "error: loader.options.bucket: environment variable S3_BUCKET is not set (used as ${S3_BUCKET})"
    ]
