"""The committed bucket settings and IAM policy, applied to moto with signature and IAM checks on.

moto evaluates actions and resources of identity policies, but not the ``s3:prefix``
condition; the listing condition itself is checked structurally in test_aws_docs.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.datalake import Layout
from pipeline.errors import LoadError
from pipeline.stage import Feed, RunContext
from stages.loaders.s3 import MiB, S3Loader, S3Options
from tests.support.fakes import TREND_DATE, YESTERDAY, batch, commit_info
from tests.support.fixtures_s3 import moto_checks_auth, object_keys, open_uploads
from tests.support.lake import context_for
from tests.support.s3 import big_batch, iam_user, standardize

DOCS = Path(__file__).resolve().parents[3] / "docs" / "aws"
PREFIX = "tmdb-trending"
FEED = Feed()


def doc(name: str, bucket: str) -> dict[str, Any]:
    """A JSON file from docs/aws/ with the bucket placeholder filled in."""
    data: dict[str, Any] = json.loads((DOCS / name).read_text(encoding="utf-8").replace("YOUR_BUCKET", bucket))
    return data


def prefixed_loader(context: RunContext, bucket: str, endpoint: str, prefix: str = PREFIX, **options: Any) -> S3Loader:
    """An ``s3`` loader under ``prefix``."""
    return S3Loader(S3Options(bucket=bucket, prefix=prefix, endpoint_url=endpoint, **options), context, name="s3")


async def commit_one_page(context: RunContext, bucket: str, endpoint: str, prefix: str = PREFIX) -> None:
    """Write and commit one small page."""
    async with prefixed_loader(context, bucket, endpoint, prefix) as s3:
        s3_day = await s3.begin(FEED)
        await s3_day.write_raw(batch(1, [1, 2, 3]))
        await s3_day.write(await standardize(context).transform(batch(1, [1, 2, 3])))
        await s3_day.commit(commit_info(s3))


async def test_bucket_settings_files_are_accepted_by_the_s3_api(s3_client: Any, s3_bucket: str) -> None:
    await s3_client.put_public_access_block(
        Bucket=s3_bucket, PublicAccessBlockConfiguration=doc("public-access-block.json", s3_bucket)
    )
    await s3_client.put_bucket_encryption(
        Bucket=s3_bucket, ServerSideEncryptionConfiguration=doc("encryption.json", s3_bucket)
    )
    await s3_client.put_bucket_lifecycle_configuration(
        Bucket=s3_bucket, LifecycleConfiguration=doc("lifecycle.json", s3_bucket)
    )
    await s3_client.put_bucket_policy(Bucket=s3_bucket, Policy=json.dumps(doc("bucket-policy.json", s3_bucket)))

    rules = (await s3_client.get_bucket_lifecycle_configuration(Bucket=s3_bucket))["Rules"]
    assert [r["AbortIncompleteMultipartUpload"] for r in rules] == [{"DaysAfterInitiation": 1}]
    block = (await s3_client.get_public_access_block(Bucket=s3_bucket))["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4
    encryption = (await s3_client.get_bucket_encryption(Bucket=s3_bucket))["ServerSideEncryptionConfiguration"]
    assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


async def test_the_documented_policy_is_enough_for_a_day_and_stops_at_the_prefix(
    s3_client: Any, s3_bucket: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await iam_user(moto_endpoint, doc("iam-policy.json", s3_bucket))
    context = context_for(TREND_DATE)
    transformer = standardize(context)
    chunks = [await transformer.transform(big_batch(n, 20_000)) for n in range(1, 17)]
    for name, value in user.items():
        monkeypatch.setenv(name, value)

    with moto_checks_auth(moto_endpoint):
        await commit_one_page(context, s3_bucket, moto_endpoint)
        again = context_for(TREND_DATE, "aborted00001")
        async with prefixed_loader(again, s3_bucket, moto_endpoint, part_size=5 * MiB) as s3:
            read = await s3.read_day(TREND_DATE, FEED)
            missing = await s3.read_day(YESTERDAY, FEED)
            # A multipart upload, then its abort (AbortMultipartUpload + ListMultipartUploadParts).
            s3_day = await s3.begin(FEED)
            for chunk in chunks:
                await s3_day.write(chunk)
            await s3_day.abort()
        with pytest.raises(LoadError, match=f"cannot upload s3://{s3_bucket}/_locks/.*: AccessDenied"):
            await commit_one_page(context_for(TREND_DATE, "outside0001"), s3_bucket, moto_endpoint, prefix="")

    assert read is not None and list(read["id"]) == [1, 2, 3]
    assert missing is None
    layout = Layout(PREFIX)
    assert await object_keys(s3_client, s3_bucket) == sorted(
        [
            *layout.keys(TREND_DATE, FEED, context.run_id).values(),
            layout.run_key("version", TREND_DATE, FEED, context.run_id),
        ]
    )
    assert await open_uploads(s3_client, s3_bucket) == []


async def test_a_403_for_a_missing_key_reads_as_missing_but_a_denied_existing_key_fails(
    s3_bucket: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Real S3 answers 403 for a missing key when s3:ListBucket does not apply; moto answers 404,
    # so a policy that denies reading yesterday's objects stands in for that 403.
    await commit_one_page(context_for(YESTERDAY), s3_bucket, moto_endpoint, prefix="present")
    yesterday_keys = [
        f"arn:aws:s3:::{s3_bucket}/{prefix}/cleaned_data/{YESTERDAY:%Y/%m}/*" for prefix in ("present", "absent")
    ]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{s3_bucket}/*"},
            {"Effect": "Deny", "Action": "s3:GetObject", "Resource": yesterday_keys},
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{s3_bucket}"},
        ],
    }
    for name, value in (await iam_user(moto_endpoint, policy)).items():
        monkeypatch.setenv(name, value)

    with moto_checks_auth(moto_endpoint):
        async with prefixed_loader(context_for(TREND_DATE), s3_bucket, moto_endpoint, prefix="absent") as s3:
            absent = await s3.read_day(YESTERDAY, FEED)
        async with prefixed_loader(context_for(TREND_DATE), s3_bucket, moto_endpoint, prefix="present") as s3:
            with pytest.raises(LoadError, match=f"cannot read s3://{s3_bucket}/present/cleaned_data/.*: AccessDenied"):
                await s3.read_day(YESTERDAY, FEED)

    assert absent is None
