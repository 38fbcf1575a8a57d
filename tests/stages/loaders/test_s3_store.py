"""``S3Store`` beyond the store contract: what removing a leftover upload says, and the shared service models."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from stages.loaders.s3_options import S3Options
from stages.loaders.s3_store import S3Store, service_models
from tests.support.fixtures_s3 import open_uploads


async def test_removing_an_old_upload_aborts_it_once_and_says_so(
    s3_client: Any, s3_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    key = "_versions/2026/11/trending_movie_day_2026-11-25.run-dead1.csv"
    await s3_client.create_multipart_upload(Bucket=s3_bucket, Key=key)
    store = S3Store(S3Options(bucket=s3_bucket), client=s3_client, stage="s3")
    (leftover,) = await store.leftovers()
    assert leftover.old  # moto dates every upload 2010-11-10
    aborted = [f"aborted the unfinished upload of s3://{s3_bucket}/{key}"]
    with caplog.at_level(logging.INFO, logger="stages.loaders.s3_store"):
        await store.remove_leftover(leftover)
        assert await open_uploads(s3_client, s3_bucket) == []
        assert _said(caplog) == aborted and store.requests["abort_multipart_upload"] == 1
        await store.remove_leftover(leftover)  # gone already (NoSuchUpload): nothing more to say
    assert _said(caplog) == aborted and store.requests["abort_multipart_upload"] == 1


def _said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "stages.loaders.s3_store"]


async def test_a_store_opens_its_client_with_the_process_wide_service_models(
    aws_env: dict[str, str], moto_endpoint: str
) -> None:
    # Parsing S3's model costs 0.1-0.4 s a session; ``reprocess`` opens a store per day.
    async with S3Store(S3Options(bucket="some-bucket", endpoint_url=moto_endpoint)) as store:
        assert store.client._loader is service_models()


async def test_a_store_with_its_own_client_lists_keys_exactly_as_they_are_stored(
    aws_env: dict[str, str], moto_endpoint: str, s3_client: Any, s3_bucket: str
) -> None:
    """A store's own client runs each of botocore's handlers once (its session starts from one shared copy of
    them): a key holding a literal ``%41``, ``%2541`` or ``+`` comes back as it is. Run twice, the handler that
    URL-decodes listed keys would read ``%41`` as ``A``."""
    keys = sorted(["hostile/a%41b.csv", "hostile/%2541.csv", "hostile/plus+space .csv"])
    for key in keys:
        await s3_client.put_object(Bucket=s3_bucket, Key=key, Body=b"x")
    async with S3Store(S3Options(bucket=s3_bucket, endpoint_url=moto_endpoint)) as store:
        assert await store.list_keys("hostile/") == keys
        found = await store.get_object("hostile/a%41b.csv")
        assert found is not None and found.data == b"x"
