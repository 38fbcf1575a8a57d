"""The ``s3`` loader against moto's S3 server, through the real aioboto3 client."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import gzip
import hashlib
import json
import math
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pipeline.datalake import Layout, schema
from pipeline.errors import ConfigError, LoadError, TransientLoadError
from pipeline.options import NoOptions, build_options
from pipeline.runner import Stages, run_pipeline, run_stages
from pipeline.stage import Batch, Extractor, Feed, RunContext
from stages.loaders.s3 import MiB, S3Loader, S3Options
from stages.transformers.standardize import StandardizeOptions, StandardizeTransformer
from tests.support.fakes import NOW, TREND_DATE, YESTERDAY, batch, commit_info
from tests.support.fixtures_s3 import (
    ACCESS_KEY_ID,
    SECRET_ACCESS_KEY,
    aws_session,
    get_object,
    object_keys,
    open_uploads,
)
from tests.support.lake import context_for
from tests.support.s3 import big_batch, commit_small_day, s3_loader, standardize

FEED = Feed()
LAYOUT = Layout()
KEYS = LAYOUT.keys(TREND_DATE, FEED, "testrun00001")
VERSION = LAYOUT.run_key("version", TREND_DATE, FEED, "testrun00001")
CONTENT_TYPES = {"cleaned": "text/csv; charset=utf-8", "raw": "application/gzip", "manifest": "application/json"}


def stored_keys(run_id: str = "testrun00001", layout: Layout = LAYOUT, *raw_runs: str) -> list[str]:
    """What a committed day stores: cleaned, manifest, the run's version, and each run's raw pages."""
    return sorted(
        [
            layout.key("cleaned", TREND_DATE, FEED),
            layout.key("manifest", TREND_DATE, FEED),
            layout.run_key("version", TREND_DATE, FEED, run_id),
            *(layout.run_key("raw", TREND_DATE, FEED, run) for run in (raw_runs or (run_id,))),
        ]
    )


async def snapshot(client: Any, bucket: str) -> dict[str, bytes]:
    """Every object in the bucket with its bytes."""
    return {key: await get_object(client, bucket, key) for key in await object_keys(client, bucket)}


def b64_sha256(data: bytes) -> str:
    """S3's rendering of a SHA-256 checksum."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


# -- writing ------------------------------------------------------------------------


async def test_small_day_is_one_put_object_per_key_with_type_and_checksum(
    context: RunContext, s3_client: Any, s3_bucket: str, moto_endpoint: str
) -> None:
    outputs = await commit_small_day(context, s3_bucket, moto_endpoint)

    assert outputs["cleaned"] == f"s3://{s3_bucket}/{KEYS['cleaned']}"
    assert await object_keys(s3_client, s3_bucket) == stored_keys()
    assert await open_uploads(s3_client, s3_bucket) == []
    for zone, key in KEYS.items():
        body = await get_object(s3_client, s3_bucket, key)
        head = await s3_client.head_object(Bucket=s3_bucket, Key=key, ChecksumMode="ENABLED")
        assert head["ContentType"] == CONTENT_TYPES[zone]
        assert head["ChecksumSHA256"] == b64_sha256(body)
        # A single PUT has the plain MD5 as its ETag; a multipart object's ends in "-<parts>".
        assert head["ETag"].strip('"') == hashlib.md5(body).hexdigest()


async def test_multipart_upload_streams_parts_before_commit_and_appears_only_at_commit(
    context: RunContext, s3_client: Any, s3_bucket: str, moto_endpoint: str
) -> None:
    part_size = 5 * MiB
    transformer = standardize(context)
    # Ten chunks of 1.2 MB of CSV: 12 MB, three parts, the last one short.
    chunks = [await transformer.transform(big_batch(n, 30_000)) for n in range(1, 11)]
    async with s3_loader(context, s3_bucket, moto_endpoint, part_size=part_size) as loader:
        await loader.begin(FEED)
        for chunk in chunks[:9]:
            await loader.write(chunk)
        # More than two parts were buffered, so the first one has been uploaded by now.
        assert await open_uploads(s3_client, s3_bucket) == [VERSION], "the run's own version object streams"
        assert await object_keys(s3_client, s3_bucket) == [LAYOUT.lock_key(TREND_DATE, FEED)], "only the lock"
        for chunk in chunks[9:]:
            await loader.write(chunk)
        await loader.commit(commit_info(loader, counters={"pages": len(chunks)}))

    body = await get_object(s3_client, s3_bucket, KEYS["cleaned"])
    assert len(body) >= 11 * MiB
    parts = math.ceil(len(body) / part_size)
    assert parts >= 3
    assert await get_object(s3_client, s3_bucket, VERSION) == body, "published by a server-side copy"
    head = await s3_client.head_object(Bucket=s3_bucket, Key=VERSION, ChecksumMode="ENABLED")
    assert head["ETag"].strip('"').endswith(f"-{parts}")
    assert head["ContentType"] == CONTENT_TYPES["cleaned"]
    # The composite checksum S3 stored proves every part but the last is exactly part_size.
    digests = b"".join(hashlib.sha256(body[i : i + part_size]).digest() for i in range(0, len(body), part_size))
    assert head["ChecksumSHA256"].split("-")[0] == b64_sha256(digests)
    assert await open_uploads(s3_client, s3_bucket) == []
    read = await _read_day(context, s3_bucket, moto_endpoint)
    assert read is not None and len(read) == 10 * 20
    pd.testing.assert_frame_equal(read, schema.conform(pd.concat(chunks, ignore_index=True)))


async def _read_day(context: RunContext, bucket: str, endpoint: str, day: dt.date = TREND_DATE) -> pd.DataFrame | None:
    async with s3_loader(context, bucket, endpoint) as loader:
        return await loader.read_day(day, FEED)


async def test_manifest_records_what_was_stored(
    context: RunContext, s3_client: Any, s3_bucket: str, moto_endpoint: str
) -> None:
    await commit_small_day(context, s3_bucket, moto_endpoint)

    manifest = json.loads(await get_object(s3_client, s3_bucket, KEYS["manifest"]))
    assert manifest["schema_version"] == schema.SCHEMA_VERSION
    assert manifest["run_id"] == context.run_id
    assert manifest["trend_date"] == TREND_DATE.isoformat()
    assert manifest["started_at"] and manifest["finished_at"]
    assert manifest["counters"] == {"pages": 3}
    assert set(manifest["objects"]) == {"cleaned", "raw"}
    for zone in ("cleaned", "raw"):
        entry = manifest["objects"][zone]
        stored = await get_object(s3_client, s3_bucket, KEYS[zone])
        assert entry["key"] == KEYS[zone]
        assert entry["bytes"] == len(stored)
        assert entry["sha256"] == hashlib.sha256(stored).hexdigest()
        assert entry["content_type"] == CONTENT_TYPES[zone]
    cleaned = schema.read_csv_bytes(await get_object(s3_client, s3_bucket, KEYS["cleaned"]))
    assert manifest["rows"] == len(cleaned) == 60
    raw_lines = gzip.decompress(await get_object(s3_client, s3_bucket, KEYS["raw"])).splitlines()
    assert [json.loads(line)["page"] for line in raw_lines] == [1, 2, 3]


async def test_three_runs_through_the_config_leave_one_object_per_key(
    s3_client: Any, s3_bucket: str, moto_endpoint: str
) -> None:
    config = {
        "extractor": {"type": "replay", "options": {"path": "tests/data/sample/2026-11-25"}},
        "transformer": {"type": "standardize"},
        "loader": {"type": "s3", "options": {"bucket": s3_bucket, "endpoint_url": moto_endpoint, "prefix": "tmdb"}},
    }
    layout = Layout("tmdb")
    keys = layout.keys(TREND_DATE, FEED)
    run_ids, frames = [], []
    for _ in range(3):
        result = await run_pipeline(config, trend_date=TREND_DATE)
        run_ids.append(result.run_id)
        frames.append(schema.read_csv_bytes(await get_object(s3_client, s3_bucket, keys["cleaned"])))

    assert await object_keys(s3_client, s3_bucket) == stored_keys(run_ids[-1], layout, *run_ids)
    assert await open_uploads(s3_client, s3_bucket) == []
    assert len(frames[0]) > 0
    for frame in frames[1:]:  # the same rows; only the extraction time moves on
        pd.testing.assert_frame_equal(frame.drop(columns="extracted_at"), frames[0].drop(columns="extracted_at"))
    manifest = json.loads(await get_object(s3_client, s3_bucket, keys["manifest"]))
    assert manifest["run_id"] == run_ids[-1]
    assert len(set(run_ids)) == 3


# -- failures -----------------------------------------------------------------------


class FailAfterFirstPart(Extractor[NoOptions]):
    """Yields long pages until S3 holds an uploaded part of the day, then fails as ``mode`` says."""

    def __init__(self, context: RunContext, client: Any, bucket: str, mode: str) -> None:
        super().__init__(NoOptions(), context, name="failing")
        self.client, self.bucket, self.mode = client, bucket, mode
        self.parts_seen = 0
        self.hanging = asyncio.Event()

    @property
    def feed(self) -> Feed:
        return FEED

    async def batches(self) -> AsyncGenerator[Batch, None]:
        # 14 pages of ~0.8 MB of CSV each: over two 5 MiB parts, so part 1 has finished uploading.
        for number in range(1, 15):
            yield big_batch(number, 20_000)
        uploads = (await self.client.list_multipart_uploads(Bucket=self.bucket)).get("Uploads", [])
        for upload in uploads:
            listed = await self.client.list_parts(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            self.parts_seen += len(listed.get("Parts", []))
        if self.mode == "extractor":
            raise RuntimeError("TMDB went away")
        if self.mode == "transformer":
            yield Batch(page=15, payload={"page": 15, "results": None}, feed=FEED, extracted_at=NOW)
        if self.mode == "loader":
            # A frame without the schema's columns makes the loader's own write fail.
            yield Batch(page=15, payload={"page": 15, "results": []}, feed=FEED, extracted_at=NOW)
        if self.mode == "cancel":
            self.hanging.set()
            await asyncio.Event().wait()


class BrokenFrameTransformer(StandardizeTransformer):
    """The real transformer, except that an empty page yields a frame the loader must reject."""

    async def transform(self, batch: Batch) -> pd.DataFrame:
        if batch.payload.get("results") == []:
            return pd.DataFrame({"id": [1]})
        return await super().transform(batch)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("extractor", "TMDB went away"),
        ("transformer", "no 'results' list"),
        ("loader", "lacks schema columns"),
        ("cancel", None),
    ],
)
async def test_failure_after_the_first_part_leaves_no_object_no_upload_and_old_days_intact(
    mode: str, expected: str | None, s3_client: Any, s3_bucket: str, moto_endpoint: str
) -> None:
    await commit_small_day(context_for(YESTERDAY, "yesterday001"), s3_bucket, moto_endpoint)
    await commit_small_day(context_for(TREND_DATE, "earlier00001"), s3_bucket, moto_endpoint, first_id=500)
    before = await snapshot(s3_client, s3_bucket)
    assert len(before) == 8, "two days of cleaned, manifest, version and raw"

    context = context_for(TREND_DATE, "failing00001")
    extractor = FailAfterFirstPart(context, s3_client, s3_bucket, mode)
    loader = s3_loader(context, s3_bucket, moto_endpoint, part_size=5 * MiB)
    transformer = BrokenFrameTransformer(StandardizeOptions(), context, name="standardize")
    run = asyncio.ensure_future(run_stages(Stages(extractor, transformer, loader), context))
    if mode == "cancel":
        await extractor.hanging.wait()
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
    else:
        with pytest.raises(Exception, match=expected):
            await run

    assert extractor.parts_seen >= 1
    assert await open_uploads(s3_client, s3_bucket) == []
    assert await snapshot(s3_client, s3_bucket) == before


async def test_missing_bucket_fails_with_one_line_naming_bucket_and_key(
    context: RunContext, aws_env: dict[str, str], moto_endpoint: str
) -> None:
    with pytest.raises(LoadError) as caught:
        await commit_small_day(context, "no-such-bucket-here", moto_endpoint)

    message = str(caught.value)
    assert message == (
        "loader 's3': cannot list the multipart uploads of s3://no-such-bucket-here: NoSuchBucket: "
        "the bucket does not exist (check loader.options.bucket and the region)"
    )
    assert "\n" not in message


async def test_a_bucket_deleted_mid_stream_fails_when_the_next_part_starts(
    context: RunContext, s3_client: Any, aws_env: dict[str, str], moto_endpoint: str
) -> None:
    bucket = "deleted-mid-stream"
    await s3_client.create_bucket(Bucket=bucket)
    transformer = standardize(context)
    loader = s3_loader(context, bucket, moto_endpoint, part_size=5 * MiB)
    async with loader:
        await loader.begin(FEED)
        await s3_client.delete_object(Bucket=bucket, Key=LAYOUT.lock_key(TREND_DATE, FEED))
        await s3_client.delete_bucket(Bucket=bucket)
        with pytest.raises(LoadError, match=f"cannot start the upload of s3://{bucket}/{VERSION}: NoSuchBucket"):
            for number in range(1, 17):
                await loader.write(await transformer.transform(big_batch(number, 20_000)))
        await loader.abort()


async def test_unreachable_endpoint_names_bucket_key_and_endpoint(
    context: RunContext, aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore reads it; keeps the test quick
    endpoint = f"http://127.0.0.1:{closed_port}"
    with pytest.raises(TransientLoadError) as caught:
        await commit_small_day(context, "some-bucket", endpoint)

    assert str(caught.value) == (
        f"loader 's3': cannot list the multipart uploads of s3://some-bucket: cannot reach {endpoint} "
        "(EndpointConnectionError)"
    )


async def test_a_plain_http_endpoint_loads_no_ca_bundle_but_https_is_verified(
    context: RunContext,
    aws_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    closed_port: int,
    s3_bucket: str,
    moto_endpoint: str,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("AWS_CA_BUNDLE", str(tmp_path / "no-such-bundle.pem"))
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    # http:// has no TLS: the (unreadable) bundle is never opened and a day commits.
    await commit_small_day(context, s3_bucket, moto_endpoint)
    assert await _read_day(context, s3_bucket, moto_endpoint) is not None
    # https:// is verified with the configured bundle, so the same bundle stops the first request.
    with pytest.raises(LoadError, match=r"No such file or directory"):
        await commit_small_day(context, "some-bucket", f"https://127.0.0.1:{closed_port}")


async def _iam_user(client: Any, policy: dict[str, Any]) -> tuple[str, str]:
    """Create an IAM user with ``policy`` through ``client`` (not yet open); returns its access key id and secret."""
    async with client as iam:
        name = f"user-{id(policy)}"
        await iam.create_user(UserName=name)
        await iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
        key = (await iam.create_access_key(UserName=name))["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


@pytest.mark.parametrize(
    ("credentials", "code"),
    [
        ("read-only user", "AccessDenied"),
        ("unknown key id", "InvalidAccessKeyId"),
        ("wrong secret", "SignatureDoesNotMatch"),
    ],
)
async def test_denied_or_bad_credentials_fail_with_one_line_and_no_secret(
    credentials: str,
    code: str,
    context: RunContext,
    s3_bucket: str,
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    session = aws_session()
    read_only = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": f"arn:aws:s3:::{s3_bucket}/*"}],
    }
    iam = session.client("iam", endpoint_url=moto_endpoint, verify=False)
    key_id, secret = await _iam_user(iam, read_only)
    if credentials == "unknown key id":
        key_id = "AKIAUNKNOWNKEY000000"
    elif credentials == "wrong secret":
        secret = "not-the-secret-" + secret[::-1]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    request.getfixturevalue("moto_auth")  # moto checks signatures and policies from here on

    with pytest.raises(LoadError) as caught:
        await commit_small_day(context, s3_bucket, moto_endpoint)

    message = str(caught.value)
    assert message.startswith(f"loader 's3': cannot list the multipart uploads of s3://{s3_bucket}: {code}: ")
    assert "\n" not in message
    for secret_text in (secret, key_id, SECRET_ACCESS_KEY, ACCESS_KEY_ID):
        assert secret_text not in message


# -- endpoint and options -----------------------------------------------------------


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"])
async def test_standard_endpoint_variable_is_used_when_no_option_is_set(
    variable: str,
    context: RunContext,
    s3_client: Any,
    s3_bucket: str,
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(variable, moto_endpoint)
    loader = s3_loader(context, s3_bucket, None)
    assert loader.options.endpoint_url is None

    async with loader:
        await loader.begin(FEED)
        await loader.write(await standardize(context).transform(batch(1, [1, 2, 3])))
        await loader.commit(commit_info(loader))

    assert await object_keys(s3_client, s3_bucket) == stored_keys()


async def test_an_injected_client_is_used_and_left_open(context: RunContext, s3_client: Any, s3_bucket: str) -> None:
    options = S3Options(bucket=s3_bucket)
    async with S3Loader(options, context, name="s3", client=s3_client) as loader:
        await loader.begin(FEED)
        await loader.write(await standardize(context).transform(batch(1, [1, 2, 3])))
        await loader.commit(commit_info(loader))
    assert await object_keys(s3_client, s3_bucket) == stored_keys()  # the client still works


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "loader.options.bucket: required"),
        ({"bucket": "s3://my-bucket"}, "loader.options.bucket: 's3://my-bucket' is not an S3 bucket name"),
        ({"bucket": "b", "prefix": "x"}, "loader.options.bucket: 'b' is not an S3 bucket name"),
        ({"bucket": "my-bucket", "prefix": "/tmdb"}, "loader.options.prefix: must not start with '/'"),
        ({"bucket": "my-bucket", "prefix": "tmdb//lake"}, "loader.options.prefix: must not contain empty segments"),
        ({"bucket": "my-bucket", "prefix": "tmdb/../lake"}, "loader.options.prefix: must not contain '.' or '..'"),
        ({"bucket": "my-bucket", "part_size": 5 * MiB - 1}, "loader.options.part_size: must be at least 5242880"),
        ({"bucket": "my-bucket", "endpoint_url": "localhost:9000"}, "loader.options.endpoint_url: must start with"),
    ],
)
def test_bad_options_are_config_errors_naming_the_key(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_options(S3Options, options, "loader.options")
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("prefix", "expected_key"),
    [
        ("", KEYS["cleaned"]),
        ("tmdb", f"tmdb/{KEYS['cleaned']}"),
        ("team/tmdb/", f"team/tmdb/{KEYS['cleaned']}"),
    ],
)
def test_prefix_places_the_keys(prefix: str, expected_key: str, context: RunContext) -> None:
    loader = s3_loader(context, "my-bucket", None, prefix=prefix)
    assert loader.planned_outputs(FEED)["cleaned"] == f"s3://my-bucket/{expected_key}"
    assert loader.describe() == f"s3://my-bucket/{prefix.rstrip('/')}".rstrip("/")


def test_defaults() -> None:
    options = build_options(S3Options, {"bucket": "my-bucket"}, "loader.options")
    assert options.model_dump() == {
        "bucket": "my-bucket",
        "prefix": "",
        "region": None,
        "endpoint_url": None,
        "part_size": 8 * MiB,
        "abort_uploads_after": 86400.0,
        "format": "csv",
        "layout": "monthly",
        "lock_timeout": 3600.0,
        "min_row_ratio": 0.5,
        "allow_regression": False,
    }


async def test_no_credentials_anywhere_is_one_line_naming_the_chain(
    context: RunContext, aws_env: dict[str, str], moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(LoadError) as caught:
        await commit_small_day(context, "some-bucket", moto_endpoint)
    assert str(caught.value) == (
        "loader 's3': cannot list the multipart uploads of s3://some-bucket: no usable AWS credentials in the "
        "standard chain (environment, profile or web identity)"
    )
