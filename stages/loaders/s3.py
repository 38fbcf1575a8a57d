"""``s3`` loader: the lake in an S3 bucket, streamed with multipart uploads.

Each object is buffered up to ``part_size``; every full buffer is uploaded as a part
while extraction goes on, so memory stays near two parts plus one chunk whatever the
size of the day. An object smaller than one part goes up as a single ``put_object``.
Nothing is visible until ``complete_multipart_upload``; on failure the upload is
aborted (twice if parts still linger, as S3 documents) and the previous object stays.

Credentials come only from the standard AWS chain (environment, profile, web identity);
they are never read, logged or put in a message by this module.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import functools
import hashlib
import logging
import re
from collections import Counter
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from pydantic import Field, field_validator

from pipeline.datalake import (
    ZONE_FOLDERS,
    LakeFormatOptions,
    Leftover,
    LockClaim,
    LockRecord,
    ObjectLakeLoader,
    ObjectSink,
    StoredObject,
    lock_is_live,
    run_of,
    validate_prefix,
)
from pipeline.errors import CommitConflict, LoadError, TransientLoadError
from pipeline.redact import redact
from pipeline.stage import Check, RunContext

logger = logging.getLogger(__name__)

MiB = 1024 * 1024
MIN_PART_SIZE = 5 * MiB  # S3's minimum for every part but the last
MAX_PART_SIZE = 5 * 1024 * MiB
MAX_PARTS = 10_000
CHECKSUM_ALGORITHM = "SHA256"

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")

# Short explanations of the S3 error codes an operator is likely to meet.
_HINTS = {
    "NoSuchBucket": "the bucket does not exist (check loader.options.bucket and the region)",
    "AccessDenied": "access denied (the IAM policy does not allow this action on this key; see docs/aws.md)",
    "AllAccessDisabled": "all access to this bucket has been disabled",
    "InvalidAccessKeyId": "the AWS access key id is not known to S3 (check the credentials)",
    "SignatureDoesNotMatch": "the request signature does not match (check the secret access key)",
    "ExpiredToken": "the session token has expired (refresh the credentials)",
    "InvalidToken": "the session token is invalid (check the credentials)",
    "PermanentRedirect": "the bucket is in another region (set loader.options.region)",
    "AuthorizationHeaderMalformed": "the request was signed for the wrong region (set loader.options.region)",
}
_TRANSIENT_CODES = {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "503", "500"}
_CONFLICT_CODES = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}
_UNREACHABLE = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError)
_NO_CREDENTIALS = (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)


class S3Options(LakeFormatOptions):
    """Options of the ``s3`` loader (plus ``format`` and ``layout`` from ``LakeFormatOptions``)."""

    bucket: str
    prefix: str = ""
    region: str | None = None
    endpoint_url: str | None = None
    part_size: int = Field(default=8 * MiB, ge=MIN_PART_SIZE, le=MAX_PART_SIZE)
    abort_uploads_after: float = Field(default=86400.0, ge=0, le=30 * 86400)
    """Seconds after which a multipart upload under the lake's zones that no live run owns is aborted."""

    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        if not _BUCKET_NAME.match(value) or ".." in value:
            raise ValueError(
                f"{value!r} is not an S3 bucket name (3-63 lowercase letters, digits, '.' or '-'; "
                "no 's3://' and no key)"
            )
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return validate_prefix(value)

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        return value


def _error(exc: BaseException, action: str, bucket: str, key: str, *, stage: str, endpoint: str | None) -> LoadError:
    """One line naming the bucket and key; never the credentials."""
    where = f"s3://{bucket}/{key}" if key else f"s3://{bucket}"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or "Error")
        detail = _HINTS.get(code) or str(error.get("Message") or "no message")
        cls = TransientLoadError if code in _TRANSIENT_CODES else LoadError
        error = cls(f"cannot {action} {where}: {code}: {redact(detail)}", stage=stage)
        error.applied = False if _refused_at_once(exc) else None
        return error
    if isinstance(exc, _UNREACHABLE):
        target = endpoint or "the S3 endpoint"
        return TransientLoadError(
            f"cannot {action} {where}: cannot reach {redact(target)} ({type(exc).__name__})", stage=stage
        )
    if isinstance(exc, _NO_CREDENTIALS):
        return LoadError(
            f"cannot {action} {where}: no usable AWS credentials in the standard chain "
            "(environment, profile or web identity)",
            stage=stage,
        )
    return LoadError(f"cannot {action} {where}: {type(exc).__name__}: {redact(str(exc))}", stage=stage)


def _refused_at_once(exc: ClientError) -> bool:
    """S3 answered the request's only attempt with a refusal, so it was not applied.

    A 4xx or a 503 (SlowDown, ServiceUnavailable) is answered before anything is stored. After a retry the
    final answer says nothing of the earlier attempts (the first may have been applied and its answer lost),
    and a 500 may come after the write; both leave the outcome unknown.
    """
    metadata = exc.response.get("ResponseMetadata", {})
    status = int(metadata.get("HTTPStatusCode") or 0)
    return int(metadata.get("RetryAttempts") or 0) == 0 and (400 <= status < 500 or status == 503)


class _MultipartSink(ObjectSink):
    """Buffers to ``part_size``; a single put if the object stays small, else a multipart upload."""

    def __init__(self, loader: S3Loader, key: str, content_type: str) -> None:
        self._loader = loader
        self._client = loader.client
        self._bucket = loader.options.bucket
        self._part_size = loader.options.part_size
        self.key = key
        self._content_type = content_type
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._next_part = 1
        # At most one part is in flight while the next one fills: that bounds memory.
        self._inflight: asyncio.Future[None] | None = None
        self._creating: asyncio.Future[None] | None = None
        self._finished = False

    async def write(self, data: bytes) -> None:
        """Buffer ``data``; hand every full ``part_size`` buffer to a background part upload."""
        if self._finished:
            raise LoadError(f"write to s3://{self._bucket}/{self.key} after commit or abort", stage=self._loader.name)
        self._buffer += data
        while len(self._buffer) >= self._part_size:
            with memoryview(self._buffer) as view:
                part = bytes(view[: self._part_size])
            del self._buffer[: self._part_size]
            await self._start_part(part)

    async def commit(self) -> None:
        """Complete the upload (or put the small object); the object appears only now."""
        if self._finished:
            raise LoadError(f"commit of s3://{self._bucket}/{self.key} after commit or abort", stage=self._loader.name)
        if self._upload_id is None:
            body, self._buffer = bytes(self._buffer), bytearray()
            await self._call(
                "upload",
                "put_object",
                Bucket=self._bucket,
                Key=self.key,
                Body=body,
                ContentType=self._content_type,
                ChecksumAlgorithm=CHECKSUM_ALGORITHM,
            )
            self._loader.requests["put_object"] += 1
        else:
            if self._buffer:
                last, self._buffer = bytes(self._buffer), bytearray()
                await self._start_part(last)
            await self._wait_inflight()
            await self._call(
                "complete the upload of",
                "complete_multipart_upload",
                Bucket=self._bucket,
                Key=self.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
            self._loader.requests["complete_multipart_upload"] += 1
            logger.debug("completed s3://%s/%s in %d parts", self._bucket, self.key, len(self._parts))
        self._finished = True

    async def abort(self) -> None:
        """Drop the buffer, let the request in flight settle, abort the multipart upload; a no-op after commit."""
        if self._finished:
            return
        self._finished = True
        self._buffer = bytearray()
        # Wait rather than cancel: a request cancelled client-side may still land server-side,
        # and only a settled request tells us the upload id to abort.
        pending = [task for task in (self._creating, self._inflight) if task is not None]
        self._creating = self._inflight = None
        if pending:
            await asyncio.wait(pending)
            for task in pending:
                if not task.cancelled():
                    task.exception()  # retrieved: the run's own error is the one that matters
        if self._upload_id is not None:
            await self._abort_upload(self._upload_id)

    async def _start_part(self, body: bytes) -> None:
        await self._wait_inflight()
        if self._upload_id is None:
            # Shielded so that a cancelled run still learns the upload id, and abort() can abort it.
            self._creating = asyncio.ensure_future(self._create())
            await asyncio.shield(self._creating)
            self._creating = None
        if self._next_part > MAX_PARTS:
            raise LoadError(
                f"cannot upload s3://{self._bucket}/{self.key}: more than {MAX_PARTS} parts; raise part_size",
                stage=self._loader.name,
            )
        number, self._next_part = self._next_part, self._next_part + 1
        self._inflight = asyncio.ensure_future(self._upload_part(number, body))

    async def _create(self) -> None:
        response = await self._call(
            "start the upload of",
            "create_multipart_upload",
            Bucket=self._bucket,
            Key=self.key,
            ContentType=self._content_type,
            ChecksumAlgorithm=CHECKSUM_ALGORITHM,
        )
        self._upload_id = str(response["UploadId"])
        self._loader.requests["create_multipart_upload"] += 1

    async def _upload_part(self, number: int, body: bytes) -> None:
        response = await self._call(
            "upload a part of",
            "upload_part",
            Bucket=self._bucket,
            Key=self.key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=body,
            ChecksumAlgorithm=CHECKSUM_ALGORITHM,
        )
        checksum = response.get("ChecksumSHA256") or base64.b64encode(hashlib.sha256(body).digest()).decode()
        self._parts.append({"PartNumber": number, "ETag": response["ETag"], "ChecksumSHA256": checksum})
        self._loader.requests["upload_part"] += 1
        logger.debug("uploaded part %d (%d bytes) of s3://%s/%s", number, len(body), self._bucket, self.key)

    async def _wait_inflight(self) -> None:
        if self._inflight is not None:
            # Shielded: if the run is cancelled here, the part finishes and abort() then aborts the upload.
            await asyncio.shield(self._inflight)
            self._inflight = None

    async def _abort_upload(self, upload_id: str) -> None:
        # S3: parts still in flight may land after an abort, so check and abort once more.
        for attempt in (1, 2):
            try:
                await self._client.abort_multipart_upload(Bucket=self._bucket, Key=self.key, UploadId=upload_id)
                self._loader.requests["abort_multipart_upload"] += 1
            except ClientError as exc:
                if _code(exc) == "NoSuchUpload":
                    return
                if attempt == 2:
                    raise self._error(exc, "abort the upload of") from None
                logger.warning(
                    "aborting the upload of s3://%s/%s failed (%s); retrying", self._bucket, self.key, _code(exc)
                )
                continue
            except (BotoCoreError, OSError) as exc:
                if attempt == 2:
                    raise self._error(exc, "abort the upload of") from None
                logger.warning("aborting the upload of s3://%s/%s failed; retrying", self._bucket, self.key)
                continue
            if not await self._upload_remains(upload_id):
                logger.info("aborted the upload of s3://%s/%s", self._bucket, self.key)
                return
            logger.warning("parts of s3://%s/%s landed after the abort; aborting again", self._bucket, self.key)
        raise LoadError(
            f"the multipart upload {upload_id} of s3://{self._bucket}/{self.key} is still open after two aborts; "
            "the bucket's lifecycle rule will remove it",
            stage=self._loader.name,
        )

    async def _upload_remains(self, upload_id: str) -> bool:
        try:
            await self._client.list_parts(Bucket=self._bucket, Key=self.key, UploadId=upload_id)
        except ClientError as exc:
            # Without s3:ListMultipartUploadParts we cannot tell; a second abort is harmless.
            return _code(exc) != "NoSuchUpload"
        return True

    async def _call(self, action: str, method: str, **kwargs: Any) -> Any:
        try:
            return await getattr(self._client, method)(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, action) from exc

    def _error(self, exc: BaseException, action: str) -> LoadError:
        return self._loader.error_for(exc, action, self.key)


@functools.cache
def _service_models() -> Any:
    """botocore's loader of service models, shared by every session in the process.

    Reading and parsing S3's model costs 0.1-0.4 s per new session; ``reprocess`` opens a
    session per day. Credentials and configuration stay per session.
    """
    from botocore.loaders import create_loader

    return create_loader()


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


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3Loader(ObjectLakeLoader[S3Options]):
    """Writes the lake to ``s3://bucket/prefix`` with the same key layout as the local lake."""

    Options = S3Options

    def __init__(
        self,
        options: S3Options,
        context: RunContext,
        *,
        name: str | None = None,
        client: Any = None,
    ) -> None:
        """``client``: an open aioboto3 S3 client to share; the loader then neither opens nor closes one."""
        super().__init__(options, context, name=name)
        self._client: Any = client
        self._stack: contextlib.AsyncExitStack | None = None
        self.requests: Counter[str] = Counter()

    @property
    def client(self) -> Any:
        """The aioboto3 S3 client (available between ``open`` and ``aclose``)."""
        if self._client is None:
            raise LoadError(f"the S3 client of {self.describe()} is not open", stage=self.name)
        return self._client

    async def open(self) -> None:
        """Create the one S3 client of this loader, unless one was passed in."""
        if self._client is not None:
            return
        # Imported here (~0.2 s, ~40 MB): `check` and `--help` build this stage without them.
        import aioboto3
        from aiobotocore.session import get_session
        from botocore.config import Config

        stack = contextlib.AsyncExitStack()
        core = get_session()
        core.register_component("data_loader", _service_models())
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
        except (BotoCoreError, ClientError, ValueError) as exc:
            await stack.aclose()
            raise self.error_for(exc, "open a client for", "") from exc
        self._stack = stack

    async def aclose(self) -> None:
        """Close the client this loader created (an injected one is left open)."""
        if self._stack is not None:
            stack, self._stack, self._client = self._stack, None, None
            await stack.aclose()

    async def preflight(self, connect: bool) -> list[Check]:
        """Options valid, AWS credentials findable; with ``connect``, HeadBucket and a write-and-delete probe."""
        checks = await super().preflight(connect)
        checks.append(self.preflight_check("bucket", f"{self.describe()} (bucket name and prefix valid)"))
        try:
            # Without --connect only the chain's local providers are asked: no instance or container role.
            method = await asyncio.to_thread(_credential_source, self.options.region, network=connect)
        except (BotoCoreError, ValueError) as exc:
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
        try:
            await self.open()
        except LoadError as exc:
            return [*checks, self.preflight_check("S3 API", exc.args[0], ok=False)]
        try:
            try:
                await self.client.head_bucket(Bucket=self.options.bucket)
            except (BotoCoreError, ClientError) as exc:
                return [*checks, self.preflight_check("HeadBucket", self._head_bucket_problem(exc), ok=False)]
            checks.append(self.preflight_check("HeadBucket", f"s3://{self.options.bucket} is there and readable"))
            try:
                await self.client.put_object(Bucket=self.options.bucket, Key=key, Body=b"pipeline check --connect\n")
                await self.client.delete_object(Bucket=self.options.bucket, Key=key)
            except (BotoCoreError, ClientError) as exc:
                message = self.error_for(exc, "write and delete", key).args[0]
                return [*checks, self.preflight_check("write probe", message, ok=False)]
        finally:
            await self.aclose()
        return [*checks, self.preflight_check("write probe", f"wrote and deleted {self.locate(key)}")]

    def _head_bucket_problem(self, exc: BaseException) -> str:
        """Why HeadBucket failed, in words: it answers a bare 404 or 403, without an error code."""
        where = f"s3://{self.options.bucket}"
        code = _code(exc) if isinstance(exc, ClientError) else ""
        if code in ("404", "NoSuchBucket"):
            return f"{where} does not exist (404; check loader.options.bucket and the region)"
        if code in ("403", "AccessDenied"):
            return f"{where}: access denied (403; the credentials may not use this bucket, see docs/aws.md)"
        message: str = self.error_for(exc, "reach", "").args[0]
        return message

    def describe(self) -> str:
        """``s3://bucket/prefix``."""
        base = f"s3://{self.options.bucket}"
        return f"{base}/{self.options.prefix}" if self.options.prefix else base

    def locate(self, key: str) -> str:
        """``s3://bucket/key``."""
        return f"s3://{self.options.bucket}/{key}"

    async def open_sink(self, key: str, content_type: str) -> ObjectSink:
        """A buffering sink that becomes visible only on commit."""
        return _MultipartSink(self, key, content_type)

    async def get_object(self, key: str) -> StoredObject | None:
        """The object and its ETag, or ``None`` when there is no such key."""
        try:
            response = await self.client.get_object(Bucket=self.options.bucket, Key=key)
            async with response["Body"] as body:
                data: bytes = await body.read()
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            if _code(exc) == "AccessDenied" and not await self._listed(key):
                # S3 answers 403, not 404, for a missing key unless s3:ListBucket applies to the
                # request; the documented policy grants listing of the prefix, so ask that way.
                return None
            raise self.error_for(exc, "read", key) from exc
        except BotoCoreError as exc:
            raise self.error_for(exc, "read", key) from exc
        return StoredObject(data, str(response.get("ETag", "")))

    async def put_object(
        self, key: str, data: bytes, content_type: str, *, if_match: str | None = None, if_absent: bool = False
    ) -> str:
        """One ``PutObject``, conditional on the key's ETag (``If-Match``) or on its absence (``If-None-Match``)."""
        condition: dict[str, str] = {}
        if if_match is not None:
            condition["IfMatch"] = if_match
        elif if_absent:
            condition["IfNoneMatch"] = "*"
        try:
            response = await self.client.put_object(
                Bucket=self.options.bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                ChecksumAlgorithm=CHECKSUM_ALGORITHM,
                **condition,
            )
        except ClientError as exc:
            if condition and _code(exc) in _CONFLICT_CODES:
                conflict = CommitConflict(f"{self.locate(key)} changed ({_code(exc)})", stage=self.name)
                conflict.applied = False if _refused_at_once(exc) else None
                raise conflict from None
            raise self.error_for(exc, "upload", key) from exc
        except BotoCoreError as exc:
            raise self.error_for(exc, "upload", key) from exc
        self.requests["put_object"] += 1
        return str(response.get("ETag", ""))

    async def copy_object(self, source: str, target: str) -> None:
        """A server-side ``CopyObject``: ``target`` changes at once, whole."""
        try:
            await self.client.copy_object(
                Bucket=self.options.bucket,
                Key=target,
                CopySource={"Bucket": self.options.bucket, "Key": source},
                ChecksumAlgorithm=CHECKSUM_ALGORITHM,
            )
        except (ClientError, BotoCoreError) as exc:
            raise self.error_for(exc, f"copy s3://{self.options.bucket}/{source} to", target) from exc
        self.requests["copy_object"] += 1

    async def delete_object(self, key: str) -> None:
        """``DeleteObject`` (S3 answers success for a missing key)."""
        try:
            await self.client.delete_object(Bucket=self.options.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise self.error_for(exc, "delete", key) from exc
        self.requests["delete_object"] += 1

    async def list_keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix``, through every page of ``ListObjectsV2``."""
        keys: list[str] = []
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self.options.bucket, Prefix=prefix):
                keys.extend(str(item["Key"]) for item in page.get("Contents", []))
        except (ClientError, BotoCoreError) as exc:
            raise self.error_for(exc, "list", prefix) from exc
        return sorted(keys)

    # -- the day lock: an object created with If-None-Match, taken over with If-Match ----
    async def claim_lock(self, key: str) -> LockClaim:
        """Read the lock object; a live holder is a conflict, a dead one's record is handed back."""
        stored = await self.get_object(key)
        if stored is None:
            return LockClaim(key, None)
        record = LockRecord.from_bytes(stored.data)
        if record is not None and lock_is_live(record, self.options.lock_timeout):
            raise CommitConflict(record.describe(), stage=self.name)
        return LockClaim(key, stored.etag, stale=record, stale_unreadable=record is None)

    async def write_lock(self, claim: LockClaim, record: LockRecord) -> None:
        """Create the lock (or replace the dead run's) only if nobody else did first."""
        try:
            claim.token = await self.put_object(
                claim.key,
                record.to_bytes(),
                "application/json",
                if_match=claim.token,
                if_absent=claim.token is None,
            )
        except CommitConflict:
            raise CommitConflict(f"{self.locate(claim.key)} was taken by another run", stage=self.name) from None

    async def release_lock(self, claim: LockClaim, *, keep_record: bool = False) -> None:
        """Delete the lock object, only if it is still the one this run wrote."""
        if keep_record or claim.token is None:
            return
        try:
            await self.client.delete_object(Bucket=self.options.bucket, Key=claim.key, IfMatch=claim.token)
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return
            if _code(exc) in _CONFLICT_CODES:
                logger.warning("the lock %s was taken over by another run; left it alone", self.locate(claim.key))
                return
            raise self.error_for(exc, "delete", claim.key) from exc
        except BotoCoreError as exc:
            raise self.error_for(exc, "delete", claim.key) from exc
        self.requests["delete_object"] += 1

    # -- leftovers: multipart uploads -----------------------------------------------------
    async def leftovers(self) -> list[Leftover]:
        """Open multipart uploads under the lake's zones; old ones began more than ``abort_uploads_after`` ago."""
        roots = tuple(self.layout.root(zone) + "/" for zone in ZONE_FOLDERS)
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=self.options.abort_uploads_after)
        found: list[Leftover] = []
        try:
            paginator = self.client.get_paginator("list_multipart_uploads")
            async for page in paginator.paginate(Bucket=self.options.bucket, Prefix=self.layout.prefix):
                for upload in page.get("Uploads", []):
                    key = str(upload["Key"])
                    if not key.startswith(roots):
                        continue
                    initiated = upload.get("Initiated")
                    old = isinstance(initiated, dt.datetime) and initiated < cutoff
                    label = f"the unfinished upload of {self.locate(key)}"
                    found.append(Leftover(f"{key}\n{upload['UploadId']}", label, run_of(key), old))
        except (ClientError, BotoCoreError) as exc:
            raise self.error_for(exc, "list the multipart uploads of", self.layout.prefix) from exc
        return found

    async def remove_leftover(self, leftover: Leftover) -> None:
        """Abort the multipart upload."""
        key, upload_id = leftover.handle.split("\n", 1)
        try:
            await self.client.abort_multipart_upload(Bucket=self.options.bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if _code(exc) == "NoSuchUpload":
                return
            raise self.error_for(exc, "abort the upload of", key) from exc
        except BotoCoreError as exc:
            raise self.error_for(exc, "abort the upload of", key) from exc
        self.requests["abort_multipart_upload"] += 1
        logger.info("aborted %s", leftover.label)

    async def _listed(self, key: str) -> bool:
        """Whether a listing shows ``key``; ``True`` when listing is not allowed either (so we cannot tell)."""
        try:
            response = await self.client.list_objects_v2(Bucket=self.options.bucket, Prefix=key, MaxKeys=1)
        except (ClientError, BotoCoreError):
            return True
        return any(item.get("Key") == key for item in response.get("Contents", []))

    def error_for(self, exc: BaseException, action: str, key: str) -> LoadError:
        """A one-line ``LoadError`` naming the bucket and key (never the credentials)."""
        endpoint = getattr(getattr(self._client, "meta", None), "endpoint_url", None) or self.options.endpoint_url
        return _error(exc, action, self.options.bucket, key, stage=self.name, endpoint=endpoint)
