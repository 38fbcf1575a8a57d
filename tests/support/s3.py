"""The ``s3`` loader as the runner builds it, and small days committed through it to moto."""

from __future__ import annotations

import json
import uuid
from typing import Any

from pipeline.options import build_options
from pipeline.runner import Stages, run_stages
from pipeline.stage import Batch, Feed, RunContext
from stages.loaders.s3 import S3Loader, S3Options
from stages.transformers.standardize import StandardizeOptions, StandardizeTransformer
from tests.support.fakes import NOW, ListExtractor, batch, page
from tests.support.fixtures_s3 import aws_session


def s3_loader(context: RunContext, bucket: str, endpoint: str | None, **options: Any) -> S3Loader:
    """An ``s3`` loader built the way the runner builds it, from a YAML-like mapping."""
    raw = {"bucket": bucket, **({"endpoint_url": endpoint} if endpoint else {}), **options}
    return S3Loader(build_options(S3Options, raw, "loader.options"), context, name="s3")


def standardize(context: RunContext) -> StandardizeTransformer:
    """The real transformer."""
    return StandardizeTransformer(StandardizeOptions(), context, name="standardize")


def big_batch(number: int, title_bytes: int) -> Batch:
    """A 20-result page whose titles are long, so a few pages fill an S3 part."""
    ids = list(range((number - 1) * 20 + 1, number * 20 + 1))
    title = "T" * title_bytes + " {id}"
    return Batch(page=number, payload=page(number, ids, title=title), feed=Feed(), extracted_at=NOW)


async def commit_small_day(context: RunContext, bucket: str, endpoint: str, first_id: int = 1) -> dict[str, str]:
    """Run three small pages for ``context.trend_date``; returns the outputs."""
    batches = [batch(n, list(range(first_id + (n - 1) * 20, first_id + n * 20))) for n in (1, 2, 3)]
    stages = Stages(ListExtractor(context, batches), standardize(context), s3_loader(context, bucket, endpoint))
    result = await run_stages(stages, context)
    return result.outputs


async def iam_user(endpoint: str, policy: dict[str, Any]) -> dict[str, str]:
    """Environment variables for a new IAM user that has only ``policy``."""
    name = f"etl-{uuid.uuid4().hex[:8]}"
    async with aws_session().client("iam", endpoint_url=endpoint, verify=False) as iam:
        await iam.create_user(UserName=name)
        await iam.put_user_policy(UserName=name, PolicyName="lake", PolicyDocument=json.dumps(policy))
        key = (await iam.create_access_key(UserName=name))["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
