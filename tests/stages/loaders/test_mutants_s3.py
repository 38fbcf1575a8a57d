"""The s3 loader's store primitives, one by one, against moto (docs/testing.md, mutation testing)."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from typing import Any

import pytest

from pipeline.datalake import Leftover, LockClaim, LockRecord
from pipeline.errors import CommitConflict, LoadError, TransientLoadError
from pipeline.stage import Feed
from stages.loaders.s3 import MIN_PART_SIZE, S3Loader, S3Options, _MultipartSink
from tests.stages.loaders.test_s3_policy import iam_user
from tests.support.fakes import NOW, TREND_DATE
from tests.support.fixtures_s3 import get_object, moto_checks_auth, object_keys, open_uploads
from tests.support.lake import context_for
from tests.support.s3 import s3_loader

LOCK = "_locks/2026-11-25_movie_day.json"


@pytest.fixture
def loader(s3_client: Any, s3_bucket: str, moto_endpoint: str) -> S3Loader:
    """An s3 loader on the test's bucket, sharing the test's client."""
    built = s3_loader(context_for(TREND_DATE, "run-a"), s3_bucket, moto_endpoint)
    return S3Loader(built.options, built.context, name="s3", client=s3_client)


def _record(run_id: str, *, host: str = "elsewhere", started_at: dt.datetime | None = None) -> LockRecord:
    started = started_at or dt.datetime.now(dt.UTC)
    return LockRecord(run_id, TREND_DATE, Feed(), host, 1, started, ("_versions/a.run-x.csv",))


# -- objects -------------------------------------------------------------------------------
async def test_get_object_gives_bytes_and_etag_or_none(loader: S3Loader, s3_client: Any, s3_bucket: str) -> None:
    put = await s3_client.put_object(Bucket=s3_bucket, Key="a/b.json", Body=b"{}")
    stored = await loader.get_object("a/b.json")
    assert stored is not None and (stored.data, stored.etag) == (b"{}", put["ETag"])
    assert await loader.get_object("a/missing.json") is None
    assert await loader.get_bytes("a/b.json") == b"{}"
    assert await loader.get_bytes("a/missing.json") is None


async def test_put_object_is_conditional_on_the_etag_or_on_absence(
    loader: S3Loader, s3_client: Any, s3_bucket: str
) -> None:
    first = await loader.put_object("m/day.json", b"v1", "application/json", if_absent=True)
    head = await s3_client.head_object(Bucket=s3_bucket, Key="m/day.json")
    assert first == head["ETag"] and head["ContentType"] == "application/json"
    assert loader.requests["put_object"] == 1
    with pytest.raises(CommitConflict, match=r"s3://.*/m/day\.json changed \(PreconditionFailed\)"):
        await loader.put_object("m/day.json", b"v2", "application/json", if_absent=True)
    with pytest.raises(CommitConflict, match=r"m/day\.json changed"):
        await loader.put_object("m/day.json", b"v2", "application/json", if_match='"not-the-etag"')
    assert await get_object(s3_client, s3_bucket, "m/day.json") == b"v1"
    second = await loader.put_object("m/day.json", b"v2", "application/json", if_match=first)
    assert second != first and await get_object(s3_client, s3_bucket, "m/day.json") == b"v2"
    await loader.put_object("m/day.json", b"v3", "application/json")
    assert await get_object(s3_client, s3_bucket, "m/day.json") == b"v3"
    assert loader.requests["put_object"] == 3


async def test_put_copy_delete_and_list_name_the_key_when_the_bucket_is_gone(
    loader: S3Loader, s3_client: Any, s3_bucket: str
) -> None:
    await s3_client.delete_bucket(Bucket=s3_bucket)
    where = f"s3://{s3_bucket}"
    with pytest.raises(LoadError, match=f"cannot upload {where}/k.json: NoSuchBucket"):
        await loader.put_object("k.json", b"x", "application/json", if_absent=True)
    with pytest.raises(LoadError, match=f"cannot copy {where}/a to {where}/b: NoSuchBucket"):
        await loader.copy_object("a", "b")
    with pytest.raises(LoadError, match=f"cannot list {where}/z/: NoSuchBucket"):
        await loader.list_keys("z/")
    with pytest.raises(LoadError, match=f"cannot read {where}/k.json: NoSuchBucket"):
        await loader.get_object("k.json")
    with pytest.raises(LoadError, match=f"cannot list the multipart uploads of {where}: NoSuchBucket"):
        await loader.leftovers()
    assert not loader.requests


async def test_copy_and_delete_objects(loader: S3Loader, s3_client: Any, s3_bucket: str) -> None:
    await s3_client.put_object(Bucket=s3_bucket, Key="v/a.csv", Body=b"new")
    await s3_client.put_object(Bucket=s3_bucket, Key="c/a.csv", Body=b"old")
    await loader.copy_object("v/a.csv", "c/a.csv")
    assert await get_object(s3_client, s3_bucket, "c/a.csv") == b"new"
    head = await s3_client.head_object(Bucket=s3_bucket, Key="c/a.csv", ChecksumMode="ENABLED")
    assert "ChecksumSHA256" in head
    await loader.delete_object("v/a.csv")
    await loader.delete_object("v/never-there.csv")
    assert await object_keys(s3_client, s3_bucket) == ["c/a.csv"]
    assert (loader.requests["copy_object"], loader.requests["delete_object"]) == (1, 2)
    with pytest.raises(LoadError, match=r"cannot copy s3://.*/v/a\.csv to s3://.*/c/b\.csv: NoSuchKey"):
        await loader.copy_object("v/a.csv", "c/b.csv")


async def test_list_keys_is_sorted_and_under_the_prefix(loader: S3Loader, s3_client: Any, s3_bucket: str) -> None:
    for key in ("z/b.csv", "z/a/x.csv", "y/c.csv", "z.csv"):
        await s3_client.put_object(Bucket=s3_bucket, Key=key, Body=b"x")
    assert await loader.list_keys("z/") == ["z/a/x.csv", "z/b.csv"]
    assert await loader.list_keys("none/") == []


# -- the day lock ------------------------------------------------------------------------------
async def test_a_free_lock_is_created_only_if_absent_and_released_only_if_unchanged(
    loader: S3Loader, s3_client: Any, s3_bucket: str
) -> None:
    claim = await loader.claim_lock(LOCK)
    assert (claim.key, claim.token, claim.stale, claim.stale_unreadable) == (LOCK, None, None, False)
    await loader.release_lock(claim)  # nothing was written: nothing to delete
    assert loader.requests["delete_object"] == 0
    record = _record("run-a", started_at=NOW)
    await loader.write_lock(claim, record)
    assert claim.token is not None
    assert LockRecord.from_bytes(await get_object(s3_client, s3_bucket, LOCK)) == record
    await loader.release_lock(claim, keep_record=True)
    assert await object_keys(s3_client, s3_bucket) == [LOCK]
    await loader.release_lock(claim)
    assert await object_keys(s3_client, s3_bucket) == []
    assert loader.requests["delete_object"] == 1
    await loader.release_lock(claim)  # already gone: fine


async def test_a_lock_someone_else_created_first_is_a_conflict(
    loader: S3Loader, s3_client: Any, s3_bucket: str
) -> None:
    claim = await loader.claim_lock(LOCK)
    await s3_client.put_object(Bucket=s3_bucket, Key=LOCK, Body=_record("run-b").to_bytes())
    with pytest.raises(CommitConflict, match=rf"^.*s3://{s3_bucket}/{LOCK} was taken by another run$"):
        await loader.write_lock(claim, _record("run-a"))


async def test_a_live_lock_is_a_conflict_naming_its_run(loader: S3Loader, s3_client: Any, s3_bucket: str) -> None:
    await s3_client.put_object(Bucket=s3_bucket, Key=LOCK, Body=_record("run-b").to_bytes())
    with pytest.raises(CommitConflict, match=r"run run-b on elsewhere \(pid 1\)"):
        await loader.claim_lock(LOCK)


async def test_a_dead_or_unreadable_lock_is_handed_over_with_its_etag(
    loader: S3Loader, s3_client: Any, s3_bucket: str
) -> None:
    dead = _record("run-b", started_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
    put = await s3_client.put_object(Bucket=s3_bucket, Key=LOCK, Body=dead.to_bytes())
    claim = await loader.claim_lock(LOCK)
    assert (claim.token, claim.stale, claim.stale_unreadable) == (put["ETag"], dead, False)
    await loader.write_lock(claim, _record("run-a"))  # replaces it, If-Match its ETag
    record = LockRecord.from_bytes(await get_object(s3_client, s3_bucket, LOCK))
    assert record is not None and record.run_id == "run-a"

    put = await s3_client.put_object(Bucket=s3_bucket, Key=LOCK, Body=b'{"cut')
    claim = await loader.claim_lock(LOCK)
    assert (claim.token, claim.stale, claim.stale_unreadable) == (put["ETag"], None, True)


async def test_a_lock_taken_over_meanwhile_is_left_alone_on_release(
    loader: S3Loader, s3_client: Any, s3_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    claim = await loader.claim_lock(LOCK)
    await loader.write_lock(claim, _record("run-a"))
    await s3_client.put_object(Bucket=s3_bucket, Key=LOCK, Body=_record("run-b").to_bytes())
    with caplog.at_level(logging.WARNING, logger="stages.loaders.s3"):
        await loader.release_lock(claim)
    assert "was taken over by another run; left it alone" in caplog.text
    assert await object_keys(s3_client, s3_bucket) == [LOCK]
    assert loader.requests["delete_object"] == 0


async def test_releasing_a_lock_in_a_deleted_bucket_is_an_error(
    loader: S3Loader, s3_client: Any, s3_bucket: str
) -> None:
    claim = LockClaim(LOCK, '"some-etag"')
    await s3_client.delete_bucket(Bucket=s3_bucket)
    with pytest.raises(LoadError, match=rf"cannot delete s3://{s3_bucket}/{LOCK}: NoSuchBucket"):
        await loader.release_lock(claim)


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
    found = sorted(await loader.leftovers(), key=lambda leftover: leftover.handle)
    assert found == [
        Leftover(f"{key}\n{ids[key]}", f"the unfinished upload of s3://{s3_bucket}/{key}", run, True)
        for key, run in (("p/_versions/a.run-r1.csv", "r1"), ("p/raw_data/b.run-r2.jsonl.gz", "r2"))
    ]
    await loader.remove_leftover(found[0])
    await loader.remove_leftover(found[0])  # already aborted: fine
    assert loader.requests["abort_multipart_upload"] == 1
    assert sorted(await open_uploads(s3_client, s3_bucket)) == sorted(keys[1:])


async def test_removing_a_leftover_in_a_deleted_bucket_is_an_error(
    loader: S3Loader, s3_client: Any, s3_bucket: str
) -> None:
    await s3_client.delete_bucket(Bucket=s3_bucket)
    leftover = Leftover("_versions/a.csv\nsome-upload", "the upload", None, True)
    with pytest.raises(LoadError, match=rf"cannot abort the upload of s3://{s3_bucket}/_versions/a\.csv"):
        await loader.remove_leftover(leftover)


# -- the multipart sink ------------------------------------------------------------------------
async def test_a_sink_refuses_writes_and_commits_once_finished(
    loader: S3Loader, s3_client: Any, s3_bucket: str
) -> None:
    sink = _MultipartSink(loader, "v/small.csv", "text/csv")
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
    sink = _MultipartSink(loader, "v/big.csv", "text/csv")
    part = bytes(range(256)) * (loader.options.part_size // 256)
    await sink.write(part + b"tail")
    with caplog.at_level(logging.INFO, logger="stages.loaders.s3"):
        await sink.abort()
    assert "aborted the upload of" in caplog.text and "landed after the abort" not in caplog.text
    assert await open_uploads(s3_client, s3_bucket) == []
    assert await object_keys(s3_client, s3_bucket) == []
    assert loader.requests["abort_multipart_upload"] == 1
    with pytest.raises(LoadError, match="after commit or abort"):
        await sink.write(b"x")


async def test_a_multipart_sink_commits_every_byte_in_order(loader: S3Loader, s3_client: Any, s3_bucket: str) -> None:
    sink = _MultipartSink(loader, "v/big.csv", "text/csv")
    data = hashlib.sha256(b"seed").digest() * (loader.options.part_size * 2 // 32 + 7)
    for start in range(0, len(data), 1 << 20):
        await sink.write(data[start : start + (1 << 20)])
    await sink.commit()
    assert await get_object(s3_client, s3_bucket, "v/big.csv") == data
    assert loader.requests["upload_part"] == 3 and loader.requests["complete_multipart_upload"] == 1
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
        await loader.copy_object("v/missing.csv", "c/a.csv")
    assert type(caught.value) is LoadError
    assert str(caught.value).endswith(f"s3://{s3_bucket}/c/a.csv: NoSuchKey: The specified key does not exist.")


async def test_exactly_one_part_of_data_goes_up_as_a_multipart_upload(
    loader: S3Loader, s3_client: Any, s3_bucket: str
) -> None:
    sink = _MultipartSink(loader, "v/one-part.csv", "text/csv")
    data = b"x" * loader.options.part_size
    await sink.write(data)
    await sink.commit()
    assert dict(loader.requests) == {"create_multipart_upload": 1, "upload_part": 1, "complete_multipart_upload": 1}
    assert await get_object(s3_client, s3_bucket, "v/one-part.csv") == data


async def test_a_small_object_is_one_put_and_its_failure_names_the_key(
    loader: S3Loader, s3_client: Any, s3_bucket: str
) -> None:
    sink = _MultipartSink(loader, "v/small.csv", "text/csv")
    await sink.write(b"abc")
    await sink.commit()
    assert dict(loader.requests) == {"put_object": 1}
    failing = _MultipartSink(loader, "v/other.csv", "text/csv")
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
            rf"cannot read s3://some-bucket/{LOCK}: cannot reach {endpoint} ": loader.get_object(LOCK),
            r"cannot abort the upload of s3://some-bucket/a\.csv: cannot": loader.remove_leftover(
                Leftover("a.csv\nsome-upload", "the upload", None, True)
            ),
            r"cannot upload s3://some-bucket/a\.csv: cannot reach": loader.put_object("a.csv", b"x", "text/csv"),
            r"cannot delete s3://some-bucket/a\.csv: cannot reach": loader.delete_object("a.csv"),
            rf"cannot delete s3://some-bucket/{LOCK}: cannot reach": loader.release_lock(LockClaim(LOCK, '"e"')),
        }
        for message, call in failures.items():
            with pytest.raises(TransientLoadError, match=message):
                await call
        # An injected client: the message names its endpoint, which the options do not know.
        shared = S3Loader(
            s3_loader(context_for(TREND_DATE), "some-bucket", None).options,
            loader.context,
            name="s3",
            client=loader.client,
        )
        with pytest.raises(TransientLoadError, match=rf"cannot reach {endpoint} \(EndpointConnectionError\)"):
            await shared.get_object(LOCK)
    assert not loader.requests


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
            sink = _MultipartSink(built, "v/big.csv", "text/csv")
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
        await loader.get_object("a.json")


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
        await loader.get_object("")


# -- more of the store -------------------------------------------------------------------------
async def test_deleting_in_a_deleted_bucket_is_an_error(loader: S3Loader, s3_client: Any, s3_bucket: str) -> None:
    await s3_client.delete_bucket(Bucket=s3_bucket)
    with pytest.raises(LoadError, match=rf"cannot delete s3://{s3_bucket}/v/a\.csv: NoSuchBucket"):
        await loader.delete_object("v/a.csv")
    assert loader.requests["delete_object"] == 0


async def test_the_lock_object_is_json(loader: S3Loader, s3_client: Any, s3_bucket: str) -> None:
    await loader.write_lock(await loader.claim_lock(LOCK), _record("run-a"))
    head = await s3_client.head_object(Bucket=s3_bucket, Key=LOCK)
    assert head["ContentType"] == "application/json"


async def test_an_upload_has_at_most_max_parts_numbered_from_one(
    s3_client: Any, s3_bucket: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("stages.loaders.s3.MAX_PARTS", 2)  # S3's 10 000, scaled down
    built = s3_loader(context_for(TREND_DATE, "run-a"), s3_bucket, moto_endpoint, part_size=MIN_PART_SIZE)
    loader = S3Loader(built.options, built.context, name="s3", client=s3_client)
    two_parts = _MultipartSink(loader, "v/two.csv", "text/csv")
    await two_parts.write(b"a" * (2 * MIN_PART_SIZE))
    await two_parts.commit()
    assert (await s3_client.head_object(Bucket=s3_bucket, Key="v/two.csv", PartNumber=2))["PartsCount"] == 2
    three_parts = _MultipartSink(loader, "v/three.csv", "text/csv")
    await three_parts.write(b"b" * (2 * MIN_PART_SIZE + 1))
    with pytest.raises(LoadError, match=r"cannot upload s3://.*/v/three\.csv: more than 2 parts; raise part_size"):
        await three_parts.commit()
    await three_parts.abort()
    assert await open_uploads(s3_client, s3_bucket) == []
