"""The ``s3`` loader against moto's S3 server, through the real aioboto3 client."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import gzip
import hashlib
import json
import logging
import math
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pipeline.datalake import Layout, Leftover, LockClaim, LockRecord, schema
from pipeline.errors import CommitConflict, ConfigError, LoadError, TransientLoadError
from pipeline.options import NoOptions, build_options
from pipeline.runner import Stages, run_pipeline, run_stages
from pipeline.stage import Batch, Extractor, Feed, RunContext
from stages.loaders.s3 import MIN_PART_SIZE, MiB, S3Loader, S3Options
from stages.transformers.standardize import StandardizeOptions, StandardizeTransformer
from tests.support.fakes import NOW, TREND_DATE, YESTERDAY, batch, commit_info
from tests.support.fixtures_s3 import (
    ACCESS_KEY_ID,
    SECRET_ACCESS_KEY,
    aws_session,
    get_object,
    moto_checks_auth,
    object_keys,
    open_uploads,
)
from tests.support.lake import context_for, lock_record
from tests.support.s3 import big_batch, commit_small_day, iam_user, s3_loader, standardize

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
        loader_day = await loader.begin(FEED)
        for chunk in chunks[:9]:
            await loader_day.write(chunk)
        # More than two parts were buffered, so the first one has been uploaded by now.
        assert await open_uploads(s3_client, s3_bucket) == [VERSION], "the run's own version object streams"
        assert await object_keys(s3_client, s3_bucket) == [LAYOUT.lock_key(TREND_DATE, FEED)], "only the lock"
        for chunk in chunks[9:]:
            await loader_day.write(chunk)
        await loader_day.commit(commit_info(loader, counters={"pages": len(chunks)}))

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
        loader_day = await loader.begin(FEED)
        await s3_client.delete_object(Bucket=bucket, Key=LAYOUT.lock_key(TREND_DATE, FEED))
        await s3_client.delete_bucket(Bucket=bucket)
        with pytest.raises(LoadError, match=f"cannot start the upload of s3://{bucket}/{VERSION}: NoSuchBucket"):
            for number in range(1, 17):
                await loader_day.write(await transformer.transform(big_batch(number, 20_000)))
        await loader_day.abort()


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
        loader_day = await loader.begin(FEED)
        await loader_day.write(await standardize(context).transform(batch(1, [1, 2, 3])))
        await loader_day.commit(commit_info(loader))

    assert await object_keys(s3_client, s3_bucket) == stored_keys()


async def test_an_injected_client_is_used_and_left_open(context: RunContext, s3_client: Any, s3_bucket: str) -> None:
    options = S3Options(bucket=s3_bucket)
    async with S3Loader(options, context, name="s3", client=s3_client) as loader:
        loader_day = await loader.begin(FEED)
        await loader_day.write(await standardize(context).transform(batch(1, [1, 2, 3])))
        await loader_day.commit(commit_info(loader))
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


# == the s3 store's primitives, one by one, against moto ==================================================
LOCK = "_locks/2026-11-25_movie_day.json"


@pytest.fixture
def loader(s3_client: Any, s3_bucket: str, moto_endpoint: str) -> S3Loader:
    """An s3 loader on the test's bucket, sharing the test's client."""
    built = s3_loader(context_for(TREND_DATE, "run-a"), s3_bucket, moto_endpoint)
    return S3Loader(built.options, built.context, name="s3", client=s3_client)


# -- objects -------------------------------------------------------------------------------
async def test_get_object_gives_bytes_and_etag_or_none(loader: S3Loader, s3_client: Any, s3_bucket: str) -> None:
    put = await s3_client.put_object(Bucket=s3_bucket, Key="a/b.json", Body=b"{}")
    stored = await loader.store.get_object("a/b.json")
    assert stored is not None and (stored.data, stored.etag) == (b"{}", put["ETag"])
    assert await loader.store.get_object("a/missing.json") is None
    assert await loader.lake.get_bytes("a/b.json") == b"{}"
    assert await loader.lake.get_bytes("a/missing.json") is None


async def test_put_object_is_conditional_on_the_etag_or_on_absence(
    loader: S3Loader, s3_client: Any, s3_bucket: str
) -> None:
    first = await loader.store.put_object("m/day.json", b"v1", "application/json", if_absent=True)
    head = await s3_client.head_object(Bucket=s3_bucket, Key="m/day.json")
    assert first == head["ETag"] and head["ContentType"] == "application/json"
    assert loader.store.requests["put_object"] == 1
    with pytest.raises(CommitConflict, match=r"s3://.*/m/day\.json changed \(PreconditionFailed\)"):
        await loader.store.put_object("m/day.json", b"v2", "application/json", if_absent=True)
    with pytest.raises(CommitConflict, match=r"m/day\.json changed"):
        await loader.store.put_object("m/day.json", b"v2", "application/json", if_match='"not-the-etag"')
    assert await get_object(s3_client, s3_bucket, "m/day.json") == b"v1"
    second = await loader.store.put_object("m/day.json", b"v2", "application/json", if_match=first)
    assert second != first and await get_object(s3_client, s3_bucket, "m/day.json") == b"v2"
    await loader.store.put_object("m/day.json", b"v3", "application/json")
    assert await get_object(s3_client, s3_bucket, "m/day.json") == b"v3"
    assert loader.store.requests["put_object"] == 3


async def test_put_copy_delete_and_list_name_the_key_when_the_bucket_is_gone(
    loader: S3Loader, s3_client: Any, s3_bucket: str
) -> None:
    await s3_client.delete_bucket(Bucket=s3_bucket)
    where = f"s3://{s3_bucket}"
    with pytest.raises(LoadError, match=f"cannot upload {where}/k.json: NoSuchBucket"):
        await loader.store.put_object("k.json", b"x", "application/json", if_absent=True)
    with pytest.raises(LoadError, match=f"cannot copy {where}/a to {where}/b: NoSuchBucket"):
        await loader.store.copy_object("a", "b")
    with pytest.raises(LoadError, match=f"cannot list {where}/z/: NoSuchBucket"):
        await loader.store.list_keys("z/")
    with pytest.raises(LoadError, match=f"cannot read {where}/k.json: NoSuchBucket"):
        await loader.store.get_object("k.json")
    with pytest.raises(LoadError, match=f"cannot list the multipart uploads of {where}: NoSuchBucket"):
        await loader.store.leftovers()
    assert not loader.store.requests


async def test_copy_and_delete_objects(loader: S3Loader, s3_client: Any, s3_bucket: str) -> None:
    await s3_client.put_object(Bucket=s3_bucket, Key="v/a.csv", Body=b"new")
    await s3_client.put_object(Bucket=s3_bucket, Key="c/a.csv", Body=b"old")
    await loader.store.copy_object("v/a.csv", "c/a.csv")
    assert await get_object(s3_client, s3_bucket, "c/a.csv") == b"new"
    head = await s3_client.head_object(Bucket=s3_bucket, Key="c/a.csv", ChecksumMode="ENABLED")
    assert "ChecksumSHA256" in head
    await loader.store.delete_object("v/a.csv")
    await loader.store.delete_object("v/never-there.csv")
    assert await object_keys(s3_client, s3_bucket) == ["c/a.csv"]
    assert (loader.store.requests["copy_object"], loader.store.requests["delete_object"]) == (1, 2)
    with pytest.raises(LoadError, match=r"cannot copy s3://.*/v/a\.csv to s3://.*/c/b\.csv: NoSuchKey"):
        await loader.store.copy_object("v/a.csv", "c/b.csv")


async def test_list_keys_is_sorted_and_under_the_prefix(loader: S3Loader, s3_client: Any, s3_bucket: str) -> None:
    for key in ("z/b.csv", "z/a/x.csv", "y/c.csv", "z.csv"):
        await s3_client.put_object(Bucket=s3_bucket, Key=key, Body=b"x")
    assert await loader.store.list_keys("z/") == ["z/a/x.csv", "z/b.csv"]
    assert await loader.store.list_keys("none/") == []


# -- the day lock ------------------------------------------------------------------------------
async def test_a_free_lock_is_created_only_if_absent_and_released_only_if_unchanged(
    loader: S3Loader, s3_client: Any, s3_bucket: str
) -> None:
    claim = await loader.store.claim_lock(LOCK)
    assert (claim.key, claim.token, claim.stale, claim.stale_unreadable) == (LOCK, None, None, False)
    await loader.store.release_lock(claim)  # nothing was written: nothing to delete
    assert loader.store.requests["delete_object"] == 0
    record = lock_record("run-a", started_at=NOW)
    await loader.store.write_lock(claim, record)
    assert claim.token is not None
    assert LockRecord.from_bytes(await get_object(s3_client, s3_bucket, LOCK)) == record
    await loader.store.release_lock(claim, keep_record=True)
    assert await object_keys(s3_client, s3_bucket) == [LOCK]
    await loader.store.release_lock(claim)
    assert await object_keys(s3_client, s3_bucket) == []
    assert loader.store.requests["delete_object"] == 1
    await loader.store.release_lock(claim)  # already gone: fine


async def test_a_lock_someone_else_created_first_is_a_conflict(
    loader: S3Loader, s3_client: Any, s3_bucket: str
) -> None:
    claim = await loader.store.claim_lock(LOCK)
    await s3_client.put_object(Bucket=s3_bucket, Key=LOCK, Body=lock_record("run-b").to_bytes())
    with pytest.raises(CommitConflict, match=rf"^.*s3://{s3_bucket}/{LOCK} was taken by another run$"):
        await loader.store.write_lock(claim, lock_record("run-a"))


async def test_a_live_lock_is_a_conflict_naming_its_run(loader: S3Loader, s3_client: Any, s3_bucket: str) -> None:
    await s3_client.put_object(Bucket=s3_bucket, Key=LOCK, Body=lock_record("run-b").to_bytes())
    with pytest.raises(CommitConflict, match=r"run run-b on elsewhere \(pid 1\)"):
        await loader.store.claim_lock(LOCK)


async def test_a_dead_or_unreadable_lock_is_handed_over_with_its_etag(
    loader: S3Loader, s3_client: Any, s3_bucket: str
) -> None:
    dead = lock_record("run-b", started_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
    put = await s3_client.put_object(Bucket=s3_bucket, Key=LOCK, Body=dead.to_bytes())
    claim = await loader.store.claim_lock(LOCK)
    assert (claim.token, claim.stale, claim.stale_unreadable) == (put["ETag"], dead, False)
    await loader.store.write_lock(claim, lock_record("run-a"))  # replaces it, If-Match its ETag
    record = LockRecord.from_bytes(await get_object(s3_client, s3_bucket, LOCK))
    assert record is not None and record.run_id == "run-a"

    put = await s3_client.put_object(Bucket=s3_bucket, Key=LOCK, Body=b'{"cut')
    claim = await loader.store.claim_lock(LOCK)
    assert (claim.token, claim.stale, claim.stale_unreadable) == (put["ETag"], None, True)


async def test_a_lock_taken_over_meanwhile_is_left_alone_on_release(
    loader: S3Loader, s3_client: Any, s3_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    claim = await loader.store.claim_lock(LOCK)
    await loader.store.write_lock(claim, lock_record("run-a"))
    await s3_client.put_object(Bucket=s3_bucket, Key=LOCK, Body=lock_record("run-b").to_bytes())
    with caplog.at_level(logging.WARNING, logger="stages.loaders.s3_store"):
        await loader.store.release_lock(claim)
    assert "was taken over by another run; left it alone" in caplog.text
    assert await object_keys(s3_client, s3_bucket) == [LOCK]
    assert loader.store.requests["delete_object"] == 0


async def test_releasing_a_lock_in_a_deleted_bucket_is_an_error(
    loader: S3Loader, s3_client: Any, s3_bucket: str
) -> None:
    claim = LockClaim(LOCK, '"some-etag"')
    await s3_client.delete_bucket(Bucket=s3_bucket)
    with pytest.raises(LoadError, match=rf"cannot delete s3://{s3_bucket}/{LOCK}: NoSuchBucket"):
        await loader.store.release_lock(claim)


# -- leftovers: multipart uploads ----------------------------------------------------------------
async def test_leftovers_are_the_uploads_under_the_lakes_zones(
    s3_client: Any, s3_bucket: str, moto_endpoint: str
) -> None:
    built = s3_loader(context_for(TREND_DATE, "run-a"), s3_bucket, moto_endpoint, prefix="p", abort_uploads_after=0)
    loader = S3Loader(built.options, built.context, name="s3", client=s3_client)
    keys = ["p/_versions/a.run-r1.csv", "p/raw_data/b.run-r2.jsonl.gz", "p/elsewhere/c.csv", "_versions/d.csv"]
    ids = {}
    for key in keys:
        ids[key] = (await s3_client.create_multipart_upload(Bucket=s3_bucket, Key=key))["UploadId"]
    found = sorted(await loader.store.leftovers(), key=lambda leftover: leftover.handle)
    assert found == [
        Leftover(f"{key}\n{ids[key]}", f"the unfinished upload of s3://{s3_bucket}/{key}", run, True)
        for key, run in (("p/_versions/a.run-r1.csv", "r1"), ("p/raw_data/b.run-r2.jsonl.gz", "r2"))
    ]
    await loader.store.remove_leftover(found[0])
    await loader.store.remove_leftover(found[0])  # already aborted: fine
    assert loader.store.requests["abort_multipart_upload"] == 1
    assert sorted(await open_uploads(s3_client, s3_bucket)) == sorted(keys[1:])


async def test_removing_a_leftover_in_a_deleted_bucket_is_an_error(
    loader: S3Loader, s3_client: Any, s3_bucket: str
) -> None:
    await s3_client.delete_bucket(Bucket=s3_bucket)
    leftover = Leftover("_versions/a.csv\nsome-upload", "the upload", None, True)
    with pytest.raises(LoadError, match=rf"cannot abort the upload of s3://{s3_bucket}/_versions/a\.csv"):
        await loader.store.remove_leftover(leftover)


# -- the multipart sink ------------------------------------------------------------------------
async def test_a_sink_refuses_writes_and_commits_once_finished(
    loader: S3Loader, s3_client: Any, s3_bucket: str
) -> None:
    sink = await loader.store.open_sink("v/small.csv", "text/csv")
    await sink.write(b"abc")
    await sink.commit()
    assert await get_object(s3_client, s3_bucket, "v/small.csv") == b"abc"
    with pytest.raises(LoadError, match=r"write to s3://.*/v/small\.csv after commit or abort"):
        await sink.write(b"more")
    with pytest.raises(LoadError, match=r"commit of s3://.*/v/small\.csv after commit or abort"):
        await sink.commit()
    await sink.abort()  # a no-op after commit
    assert await get_object(s3_client, s3_bucket, "v/small.csv") == b"abc"


async def test_an_aborted_multipart_sink_leaves_no_upload_and_no_object(
    loader: S3Loader, s3_client: Any, s3_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    sink = await loader.store.open_sink("v/big.csv", "text/csv")
    part = bytes(range(256)) * (loader.options.part_size // 256)
    await sink.write(part + b"tail")
    with caplog.at_level(logging.INFO, logger="stages.loaders.s3_multipart"):
        await sink.abort()
    assert "aborted the upload of" in caplog.text and "landed after the abort" not in caplog.text
    assert await open_uploads(s3_client, s3_bucket) == []
    assert await object_keys(s3_client, s3_bucket) == []
    assert loader.store.requests["abort_multipart_upload"] == 1
    with pytest.raises(LoadError, match="after commit or abort"):
        await sink.write(b"x")


async def test_a_multipart_sink_commits_every_byte_in_order(loader: S3Loader, s3_client: Any, s3_bucket: str) -> None:
    sink = await loader.store.open_sink("v/big.csv", "text/csv")
    data = hashlib.sha256(b"seed").digest() * (loader.options.part_size * 2 // 32 + 7)
    for start in range(0, len(data), 1 << 20):
        await sink.write(data[start : start + (1 << 20)])
    await sink.commit()
    assert await get_object(s3_client, s3_bucket, "v/big.csv") == data
    assert loader.store.requests["upload_part"] == 3 and loader.store.requests["complete_multipart_upload"] == 1
    assert await open_uploads(s3_client, s3_bucket) == []


def test_describe_and_locate(s3_bucket: str) -> None:
    plain = s3_loader(context_for(TREND_DATE), s3_bucket, None)
    assert plain.describe() == f"s3://{s3_bucket}"
    assert plain.locate("a/b") == f"s3://{s3_bucket}/a/b"
    assert s3_loader(context_for(TREND_DATE), s3_bucket, None, prefix="p/q/").describe() == f"s3://{s3_bucket}/p/q"


async def test_an_s3_error_without_a_hint_carries_s3s_message_and_is_not_transient(
    loader: S3Loader, s3_bucket: str
) -> None:
    with pytest.raises(LoadError) as caught:
        await loader.store.copy_object("v/missing.csv", "c/a.csv")
    assert type(caught.value) is LoadError
    assert str(caught.value).endswith(f"s3://{s3_bucket}/c/a.csv: NoSuchKey: The specified key does not exist.")


async def test_exactly_one_part_of_data_goes_up_as_a_multipart_upload(
    loader: S3Loader, s3_client: Any, s3_bucket: str
) -> None:
    sink = await loader.store.open_sink("v/one-part.csv", "text/csv")
    data = b"x" * loader.options.part_size
    await sink.write(data)
    await sink.commit()
    expected = {"create_multipart_upload": 1, "upload_part": 1, "complete_multipart_upload": 1}
    assert dict(loader.store.requests) == expected
    assert await get_object(s3_client, s3_bucket, "v/one-part.csv") == data


async def test_a_small_object_is_one_put_and_its_failure_names_the_key(
    loader: S3Loader, s3_client: Any, s3_bucket: str
) -> None:
    sink = await loader.store.open_sink("v/small.csv", "text/csv")
    await sink.write(b"abc")
    await sink.commit()
    assert dict(loader.store.requests) == {"put_object": 1}
    failing = await loader.store.open_sink("v/other.csv", "text/csv")
    await failing.write(b"abc")
    await s3_client.delete_object(Bucket=s3_bucket, Key="v/small.csv")
    await s3_client.delete_bucket(Bucket=s3_bucket)
    with pytest.raises(LoadError, match=rf"^.*cannot upload s3://{s3_bucket}/v/other\.csv: NoSuchBucket"):
        await failing.commit()


async def test_an_unreachable_endpoint_is_a_transient_error_naming_the_key_and_the_endpoint(
    aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    endpoint = f"http://127.0.0.1:{closed_port}"
    async with s3_loader(context_for(TREND_DATE), "some-bucket", endpoint) as loader:
        failures = {
            rf"cannot read s3://some-bucket/{LOCK}: cannot reach {endpoint} ": loader.store.get_object(LOCK),
            r"cannot abort the upload of s3://some-bucket/a\.csv: cannot": loader.store.remove_leftover(
                Leftover("a.csv\nsome-upload", "the upload", None, True)
            ),
            r"cannot upload s3://some-bucket/a\.csv: cannot reach": loader.store.put_object("a.csv", b"x", "text/csv"),
            r"cannot delete s3://some-bucket/a\.csv: cannot reach": loader.store.delete_object("a.csv"),
            rf"cannot delete s3://some-bucket/{LOCK}: cannot reach": loader.store.release_lock(LockClaim(LOCK, '"e"')),
        }
        for message, call in failures.items():
            with pytest.raises(TransientLoadError, match=message):
                await call
        # An injected client: the message names its endpoint, which the options do not know.
        shared = S3Loader(
            s3_loader(context_for(TREND_DATE), "some-bucket", None).options,
            loader.context,
            name="s3",
            client=loader.store.client,
        )
        with pytest.raises(TransientLoadError, match=rf"cannot reach {endpoint} \(EndpointConnectionError\)"):
            await shared.store.get_object(LOCK)
    assert not loader.store.requests


async def test_an_abort_that_is_denied_fails_naming_the_upload(
    loader: S3Loader, s3_client: Any, s3_bucket: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    everything = {"Effect": "Allow", "Action": ["s3:*"], "Resource": ["*"]}
    no_abort = {"Effect": "Deny", "Action": ["s3:AbortMultipartUpload"], "Resource": ["*"]}
    user = await iam_user(moto_endpoint, {"Version": "2012-10-17", "Statement": [everything, no_abort]})
    for name, value in user.items():
        monkeypatch.setenv(name, value)
    built = s3_loader(context_for(TREND_DATE, "run-a"), s3_bucket, moto_endpoint)
    with moto_checks_auth(moto_endpoint):
        async with built:
            sink = await built.store.open_sink("v/big.csv", "text/csv")
            await sink.write(b"x" * (built.options.part_size + 1))
            with pytest.raises(
                LoadError, match=rf"cannot abort the upload of s3://{s3_bucket}/v/big\.csv: AccessDenied"
            ):
                await sink.abort()
    assert await open_uploads(s3_client, s3_bucket) == ["v/big.csv"]
    (upload,) = (await s3_client.list_multipart_uploads(Bucket=s3_bucket))["Uploads"]
    await s3_client.abort_multipart_upload(Bucket=s3_bucket, Key="v/big.csv", UploadId=upload["UploadId"])


@pytest.mark.parametrize(
    ("denied", "what", "detail"),
    [
        ("s3:PutObject", "write probe", "cannot write and delete s3://{bucket}/_preflight/"),
    ],
)
async def test_a_connected_preflight_names_the_step_that_was_denied(
    s3_bucket: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, denied: str, what: str, detail: str
) -> None:
    everything = {"Effect": "Allow", "Action": ["s3:*"], "Resource": ["*"]}
    deny = {"Effect": "Deny", "Action": [denied], "Resource": ["*"]}
    user = await iam_user(moto_endpoint, {"Version": "2012-10-17", "Statement": [everything, deny]})
    for name, value in user.items():
        monkeypatch.setenv(name, value)
    loader = s3_loader(context_for(TREND_DATE), s3_bucket, moto_endpoint)
    with moto_checks_auth(moto_endpoint):
        checks = await loader.preflight(True)
    failed = [check for check in checks if not check.ok]
    assert [check.what for check in failed] == [what]
    assert failed[0].detail.startswith(detail.format(bucket=s3_bucket))
    assert loader._client is None, "the client opened for the check is closed again"


# -- options, the client, and the offline preflight ------------------------------------------
@pytest.mark.parametrize(
    ("options", "accepted"),
    [
        ({"bucket": "my.bucket"}, True),
        ({"bucket": "my..bucket"}, False),
        ({"bucket": "b-1", "endpoint_url": "https://s3.example.com"}, True),
        ({"bucket": "b-1", "endpoint_url": "http://127.0.0.1:9000"}, True),
        ({"bucket": "b-1", "endpoint_url": "s3.example.com"}, False),
    ],
)
def test_bucket_names_and_endpoints_are_checked(options: dict[str, str], accepted: bool) -> None:
    if accepted:
        assert S3Options.model_validate(options).bucket == options["bucket"]
    else:
        with pytest.raises(ValueError, match=r"is not an S3 bucket name|must start with http"):
            S3Options.model_validate(options)


async def test_a_loader_that_is_not_open_says_so(s3_bucket: str) -> None:
    loader = s3_loader(context_for(TREND_DATE), s3_bucket, None)
    with pytest.raises(LoadError, match=rf"the S3 client of s3://{s3_bucket} is not open"):
        await loader.store.get_object("a.json")


async def test_a_client_that_cannot_be_created_is_an_error_and_a_failed_check(
    aws_env: dict[str, str], s3_bucket: str, moto_endpoint: str
) -> None:
    loader = s3_loader(context_for(TREND_DATE), s3_bucket, moto_endpoint, region="not a region")
    message = rf"cannot open a client for s3://{s3_bucket}: InvalidRegionError: Provided region_name 'not a region'"
    with pytest.raises(LoadError, match=message):
        await loader.open()
    checks = await loader.preflight(True)
    assert [(check.what, check.ok) for check in checks][-2:] == [("credentials", True), ("S3 API", False)]
    assert checks[-1].detail.startswith(f"cannot open a client for s3://{s3_bucket}: InvalidRegionError")


async def test_an_offline_preflight_names_the_probe_under_the_prefix(aws_env: dict[str, str], s3_bucket: str) -> None:
    checks = await s3_loader(context_for(TREND_DATE), s3_bucket, None, prefix="Xlake").preflight(False)
    assert checks[-1].what == "S3 API" and checks[-1].ok
    assert f"one small object under s3://{s3_bucket}/Xlake/_preflight/" in checks[-1].detail


async def test_a_profile_that_does_not_exist_is_a_failed_credentials_check(
    aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, s3_bucket: str
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "nowhere")
    checks = await s3_loader(context_for(TREND_DATE), s3_bucket, None).preflight(False)
    assert (checks[-1].what, checks[-1].ok) == ("credentials", False)
    assert checks[-1].detail == "ProfileNotFound: The config profile (nowhere) could not be found"


async def test_a_request_botocore_refuses_is_an_error_naming_its_type(loader: S3Loader, s3_bucket: str) -> None:
    with pytest.raises(LoadError, match=rf"cannot read s3://{s3_bucket}: ParamValidationError: Parameter validation"):
        await loader.store.get_object("")


# -- more of the store -------------------------------------------------------------------------
async def test_deleting_in_a_deleted_bucket_is_an_error(loader: S3Loader, s3_client: Any, s3_bucket: str) -> None:
    await s3_client.delete_bucket(Bucket=s3_bucket)
    with pytest.raises(LoadError, match=rf"cannot delete s3://{s3_bucket}/v/a\.csv: NoSuchBucket"):
        await loader.store.delete_object("v/a.csv")
    assert loader.store.requests["delete_object"] == 0


async def test_the_lock_object_is_json(loader: S3Loader, s3_client: Any, s3_bucket: str) -> None:
    await loader.store.write_lock(await loader.store.claim_lock(LOCK), lock_record("run-a"))
    head = await s3_client.head_object(Bucket=s3_bucket, Key=LOCK)
    assert head["ContentType"] == "application/json"


async def test_an_upload_has_at_most_max_parts_numbered_from_one(
    s3_client: Any, s3_bucket: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("stages.loaders.s3_multipart.MAX_PARTS", 2)  # S3's 10 000, scaled down
    built = s3_loader(context_for(TREND_DATE, "run-a"), s3_bucket, moto_endpoint, part_size=MIN_PART_SIZE)
    loader = S3Loader(built.options, built.context, name="s3", client=s3_client)
    two_parts = await loader.store.open_sink("v/two.csv", "text/csv")
    await two_parts.write(b"a" * (2 * MIN_PART_SIZE))
    await two_parts.commit()
    assert (await s3_client.head_object(Bucket=s3_bucket, Key="v/two.csv", PartNumber=2))["PartsCount"] == 2
    three_parts = await loader.store.open_sink("v/three.csv", "text/csv")
    await three_parts.write(b"b" * (2 * MIN_PART_SIZE + 1))
    with pytest.raises(LoadError, match=r"cannot upload s3://.*/v/three\.csv: more than 2 parts; raise part_size"):
        await three_parts.commit()
    await three_parts.abort()
    assert await open_uploads(s3_client, s3_bucket) == []
