"""``S3Store``: the lake in an S3 bucket, through one aioboto3 client (opened here unless one is passed in).

Writes stream through ``MultipartSink``; small objects and manifests are single conditional ``PutObject``s
(``If-Match``/``If-None-Match``); a day lock is an object created with ``If-None-Match`` and taken over from a
dead run with ``If-Match``. Every error goes through ``S3Errors``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
from collections import Counter
from typing import Any

from pipeline.datalake import (
    ZONE_FOLDERS,
    Layout,
    Leftover,
    LockClaim,
    LockRecord,
    ObjectSink,
    ObjectStore,
    StoredObject,
    lock_is_live,
    run_of,
)
from pipeline.errors import CommitConflict, LoadError
from stages.loaders.s3_errors import BOTO_ERRORS, MISSING_KEY, MISSING_UPLOAD, S3Errors, code
from stages.loaders.s3_multipart import CHECKSUM_ALGORITHM, MultipartSink
from stages.loaders.s3_options import S3Options

logger = logging.getLogger(__name__)


@functools.cache
def service_models() -> Any:
    """botocore's loader of service models, shared by every session in the process.

    Reading and parsing S3's model costs 0.1-0.4 s per new session; ``reprocess`` opens a
    session per day. Credentials and configuration stay per session.
    """
    from botocore.loaders import create_loader

    return create_loader()


@functools.cache
def builtin_handlers() -> Any:
    """An event emitter holding botocore's built-in handlers, registered once per process.

    A new session registers some 120 of them one by one, inspecting each one's signature (about 9 ms, a third
    of opening a store). A session started from a copy of this emitter holds the same handlers: they are plain
    functions, bound to no session, and botocore copies a session's emitter the same way for each client.
    """
    from aiobotocore.hooks import AioHierarchicalEmitter
    from aiobotocore.session import AioSession

    emitter = AioHierarchicalEmitter()
    AioSession(event_hooks=emitter)  # fills it
    return emitter


def _endpoint_of(client: Any) -> str | None:
    """The endpoint a client talks to (an injected one's may differ from the options'), for error messages."""
    found = getattr(getattr(client, "meta", None), "endpoint_url", None)
    return str(found) if found else None


class S3Store(ObjectStore):
    """Objects in ``bucket`` (keys already carry the lake's prefix)."""

    def __init__(self, options: S3Options, *, client: Any = None, stage: str | None = None) -> None:
        """``client``: an open aioboto3 S3 client to share; the store then neither opens nor closes one."""
        self.options = options
        self.bucket = options.bucket
        self.layout = Layout.for_options(options)
        self.requests: Counter[str] = Counter()
        """The calls made, by method: what a test or a benchmark counts."""
        self._client: Any = client
        self._stack: contextlib.AsyncExitStack | None = None
        self.errors = S3Errors(options.bucket, stage, _endpoint_of(client) or options.endpoint_url)

    @property
    def client(self) -> Any:
        """The aioboto3 S3 client (available while the store is open)."""
        if self._client is None:
            raise LoadError(f"the S3 client of {self.describe()} is not open", stage=self.errors.stage)
        return self._client

    async def __aenter__(self) -> S3Store:
        """Create the one S3 client of this store, unless one was passed in."""
        if self._client is not None:
            return self
        # Imported here (~0.2 s, ~40 MB): `check` and `--help` build the stage without them.
        import copy

        import aioboto3
        from aiobotocore.session import AioSession
        from botocore.config import Config

        stack = contextlib.AsyncExitStack()
        core = AioSession(event_hooks=copy.copy(builtin_handlers()), include_builtin_handlers=False)
        core.register_component("data_loader", service_models())
        session = aioboto3.Session(botocore_session=core, region_name=self.options.region)
        endpoint = self.options.endpoint_url
        try:
            self._client = await stack.enter_async_context(
                session.client(
                    "s3",
                    endpoint_url=endpoint,
                    config=Config(retries={"mode": "standard"}),
                    # A plain http:// endpoint (MinIO, moto, a local gateway) has no TLS to verify: no CA
                    # bundle to load (about 25 ms a client). Every https endpoint is verified as always.
                    verify=False if endpoint is not None and endpoint.startswith("http://") else None,
                )
            )
        except (*BOTO_ERRORS, ValueError) as exc:
            await stack.aclose()
            raise self.errors.error(exc, "open a client for", "") from exc
        self._stack = stack
        self.errors.endpoint = _endpoint_of(self._client) or endpoint
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the client this store created (an injected one is left open)."""
        if self._stack is not None:
            stack, self._stack, self._client = self._stack, None, None
            await stack.aclose()

    def describe(self) -> str:
        """``s3://bucket/prefix``."""
        base = f"s3://{self.bucket}"
        return f"{base}/{self.options.prefix}" if self.options.prefix else base

    def locate(self, key: str) -> str:
        """``s3://bucket/key``."""
        return f"s3://{self.bucket}/{key}"

    async def open_sink(self, key: str, content_type: str) -> ObjectSink:
        """A buffering sink that becomes visible only on commit."""
        part_size = self.options.part_size
        return MultipartSink(self.client, self.errors, key, content_type, part_size=part_size, requests=self.requests)

    async def get_object(self, key: str) -> StoredObject | None:
        """The object and its ETag, or ``None`` when there is no such key."""

        async def read() -> StoredObject:
            response = await self.client.get_object(Bucket=self.bucket, Key=key)
            async with response["Body"] as body:
                data: bytes = await body.read()
            return StoredObject(data, str(response.get("ETag", "")))

        try:
            return await self.errors.call(read(), "read", key, absent=MISSING_KEY)
        except LoadError as exc:
            if exc.__cause__ is not None and code(exc.__cause__) == "AccessDenied" and not await self._listed(key):
                # S3 answers 403, not 404, for a missing key unless s3:ListBucket applies to the
                # request; the documented policy grants listing of the prefix, so ask that way.
                return None
            raise

    async def put_object(
        self, key: str, data: bytes, content_type: str, *, if_match: str | None = None, if_absent: bool = False
    ) -> str:
        """One ``PutObject``, conditional on the key's ETag (``If-Match``) or on its absence (``If-None-Match``)."""
        condition: dict[str, str] = {}
        if if_match is not None:
            condition["IfMatch"] = if_match
        elif if_absent:
            condition["IfNoneMatch"] = "*"
        request = self.client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            ChecksumAlgorithm=CHECKSUM_ALGORITHM,
            **condition,
        )
        response = await self.errors.call(request, "upload", key, conflict=bool(condition))
        self.requests["put_object"] += 1
        return str((response or {}).get("ETag", ""))

    async def copy_object(self, source: str, target: str) -> None:
        """A server-side ``CopyObject``: ``target`` changes at once, whole."""
        request = self.client.copy_object(
            Bucket=self.bucket,
            Key=target,
            CopySource={"Bucket": self.bucket, "Key": source},
            ChecksumAlgorithm=CHECKSUM_ALGORITHM,
        )
        await self.errors.must(request, f"copy s3://{self.bucket}/{source} to", target)
        self.requests["copy_object"] += 1

    async def delete_object(self, key: str) -> None:
        """``DeleteObject`` (S3 answers success for a missing key)."""
        await self.errors.must(self.client.delete_object(Bucket=self.bucket, Key=key), "delete", key)
        self.requests["delete_object"] += 1

    async def list_keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix``, through every page of ``ListObjectsV2``."""

        async def pages() -> list[str]:
            paginator = self.client.get_paginator("list_objects_v2")
            return [
                str(item["Key"])
                async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix)
                for item in page.get("Contents", [])
            ]

        return sorted(await self.errors.must(pages(), "list", prefix))

    # -- the day lock: an object created with If-None-Match, taken over with If-Match ----
    async def claim_lock(self, key: str) -> LockClaim:
        """Read the lock object; a live holder is a conflict, a dead one's record is handed back."""
        stored = await self.get_object(key)
        if stored is None:
            return LockClaim(key, None)
        record = LockRecord.from_bytes(stored.data)
        if record is not None and lock_is_live(record, self.options.lock_timeout):
            raise CommitConflict(record.describe(), stage=self.errors.stage)
        return LockClaim(key, stored.etag, stale=record, stale_unreadable=record is None)

    async def write_lock(self, claim: LockClaim, record: LockRecord) -> None:
        """Create the lock (or replace the dead run's) only if nobody else did first."""
        try:
            claim.token = await self.put_object(
                claim.key, record.to_bytes(), "application/json", if_match=claim.token, if_absent=claim.token is None
            )
        except CommitConflict:
            message = f"{self.locate(claim.key)} was taken by another run"
            raise CommitConflict(message, stage=self.errors.stage) from None

    async def release_lock(self, claim: LockClaim, *, keep_record: bool = False) -> None:
        """Delete the lock object, only if it is still the one this run wrote."""
        if keep_record or claim.token is None:
            return
        request = self.client.delete_object(Bucket=self.bucket, Key=claim.key, IfMatch=claim.token)
        try:
            answer = await self.errors.call(request, "delete", claim.key, absent=MISSING_KEY, conflict=True)
        except CommitConflict:
            logger.warning("the lock %s was taken over by another run; left it alone", self.locate(claim.key))
            return
        if answer is None:  # gone already
            return
        self.requests["delete_object"] += 1

    # -- leftovers: multipart uploads -----------------------------------------------------
    async def leftovers(self) -> list[Leftover]:
        """Open multipart uploads under the lake's zones; old ones began more than ``abort_uploads_after`` ago."""
        roots = tuple(self.layout.root(zone) + "/" for zone in ZONE_FOLDERS)
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=self.options.abort_uploads_after)

        async def uploads() -> list[Leftover]:
            found: list[Leftover] = []
            paginator = self.client.get_paginator("list_multipart_uploads")
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=self.layout.prefix):
                for upload in page.get("Uploads", []):
                    key = str(upload["Key"])
                    if not key.startswith(roots):
                        continue
                    initiated = upload.get("Initiated")
                    old = isinstance(initiated, dt.datetime) and initiated < cutoff
                    label = f"the unfinished upload of {self.locate(key)}"
                    found.append(Leftover(f"{key}\n{upload['UploadId']}", label, run_of(key), old))
            return found

        return await self.errors.must(uploads(), "list the multipart uploads of", self.layout.prefix)

    async def remove_leftover(self, leftover: Leftover) -> None:
        """Abort the multipart upload."""
        key, upload_id = leftover.handle.split("\n", 1)
        request = self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        if await self.errors.call(request, "abort the upload of", key, absent=MISSING_UPLOAD) is None:
            return
        self.requests["abort_multipart_upload"] += 1
        logger.info("aborted %s", leftover.label)

    async def _listed(self, key: str) -> bool:
        """Whether a listing shows ``key``; ``True`` when listing is not allowed either (so we cannot tell)."""
        try:
            response = await self.client.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1)
        except BOTO_ERRORS:
            return True
        return any(item.get("Key") == key for item in response.get("Contents", []))
