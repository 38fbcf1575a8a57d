"""``s3`` loader: the lake in an S3 bucket; its store is ``S3Store`` (``stages.loaders.s3_store``).

Credentials come only from the standard AWS chain (environment, profile, web identity);
they are never read, logged or put in a message by this package.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pipeline.datalake import LakeLoader
from pipeline.errors import LoadError
from pipeline.redact import redact
from pipeline.stage import Check, RunContext
from stages.loaders.s3_errors import BOTO_ERRORS, code
from stages.loaders.s3_options import MAX_PART_SIZE, MIN_PART_SIZE, MiB, S3Options
from stages.loaders.s3_store import S3Store


def _credential_source(region: str | None, *, network: bool) -> str | None:
    """How the standard AWS chain finds credentials (``env``, ``shared-credentials-file``, ...), or ``None``.

    Only the providers that need no network unless ``network``; the keys themselves are never read,
    so an assumed role or SSO login is not exchanged for credentials here.
    """
    import botocore.credentials
    import botocore.session

    resolver = botocore.credentials.create_credential_resolver(botocore.session.Session(), region_name=region)
    if not network:
        for method in ("container-role", "iam-role"):
            resolver.remove(method)
    credentials = resolver.load_credentials()
    return None if credentials is None else str(credentials.method)


class S3Loader(LakeLoader[S3Options]):
    """Writes the lake to ``s3://bucket/prefix`` with the same key layout as the local lake."""

    Options = S3Options

    def __init__(
        self,
        options: S3Options,
        context: RunContext | None = None,
        *,
        name: str | None = None,
        client: Any = None,
    ) -> None:
        """``client``: an open aioboto3 S3 client to share; the loader then neither opens nor closes one."""
        super().__init__(options, context, name=name)
        self._client = client

    def build_store(self) -> S3Store:
        """An ``S3Store`` on the bucket, through the shared client if one was given."""
        return S3Store(self.options, client=self._client, stage=self.name)

    async def preflight(self, connect: bool) -> list[Check]:
        """Options valid, AWS credentials findable; with ``connect``, HeadBucket and a write-and-delete probe."""
        checks = await super().preflight(connect)
        checks.append(self.preflight_check("bucket", f"{self.describe()} (bucket name and prefix valid)"))
        try:
            # Without --connect only the chain's local providers are asked: no instance or container role.
            method = await asyncio.to_thread(_credential_source, self.options.region, network=connect)
        except (*BOTO_ERRORS, ValueError) as exc:
            method, problem = None, f"{type(exc).__name__}: {redact(str(exc))}"
        else:
            problem = "none found in the environment, the profile files, SSO or web identity"
            if not connect:
                problem += " (an EC2 instance or container role is only looked for with --connect)"
        if method is None:
            return [*checks, self.preflight_check("credentials", problem, ok=False)]
        checks.append(self.preflight_check("credentials", f"found by the standard AWS chain ({method})"))
        import uuid

        probe_folder = f"{self.options.prefix}/_preflight/".lstrip("/")
        if not connect:
            probe = self.locate(probe_folder)
            note = f"not called; --connect makes a HeadBucket, then writes and deletes one small object under {probe}"
            return [*checks, self.preflight_check("S3 API", note)]
        key = f"{probe_folder}{uuid.uuid4().hex}"
        store = self.build_store()
        try:
            await store.__aenter__()
        except LoadError as exc:
            return [*checks, self.preflight_check("S3 API", exc.args[0], ok=False)]
        try:
            try:
                await store.client.head_bucket(Bucket=self.options.bucket)
            except BOTO_ERRORS as exc:
                problem = self._head_bucket_problem(store, exc)
                return [*checks, self.preflight_check("HeadBucket", problem, ok=False)]
            checks.append(self.preflight_check("HeadBucket", f"s3://{self.options.bucket} is there and readable"))
            try:
                await store.client.put_object(Bucket=self.options.bucket, Key=key, Body=b"pipeline check --connect\n")
                await store.client.delete_object(Bucket=self.options.bucket, Key=key)
            except BOTO_ERRORS as exc:
                message = store.errors.error(exc, "write and delete", key).args[0]
                return [*checks, self.preflight_check("write probe", message, ok=False)]
        finally:
            await store.__aexit__(None, None, None)
        return [*checks, self.preflight_check("write probe", f"wrote and deleted {self.locate(key)}")]

    def _head_bucket_problem(self, store: S3Store, exc: BaseException) -> str:
        """Why HeadBucket failed, in words: it answers a bare 404 or 403, without an error code."""
        where = f"s3://{self.options.bucket}"
        found = code(exc)
        if found in ("404", "NoSuchBucket"):
            return f"{where} does not exist (404; check loader.options.bucket and the region)"
        if found in ("403", "AccessDenied"):
            return f"{where}: access denied (403; the credentials may not use this bucket, see docs/aws.md)"
        message: str = store.errors.error(exc, "reach", "").args[0]
        return message


__all__ = ["MAX_PART_SIZE", "MIN_PART_SIZE", "MiB", "S3Loader", "S3Options"]
