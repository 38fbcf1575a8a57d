"""``MultipartSink``: one S3 object streamed as a multipart upload, visible only once it completes.

Each object is buffered up to ``part_size``; every full buffer is uploaded as a part while extraction goes
on, so memory stays near two parts plus one chunk whatever the size of the day. An object smaller than one
part goes up as a single ``put_object``. On failure the upload is aborted (twice if parts still linger, as S3
documents) and the previous object stays.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections import Counter
from typing import Any

from pipeline.datalake import ObjectSink
from pipeline.errors import LoadError
from stages.loaders.s3_errors import MISSING_UPLOAD, S3Errors, code

logger = logging.getLogger(__name__)

MAX_PARTS = 10_000
CHECKSUM_ALGORITHM = "SHA256"


class MultipartSink(ObjectSink):
    """Buffers to ``part_size``; a single put if the object stays small, else a multipart upload.

    ``requests`` counts the calls made, by method (shared with the store that opened the sink).
    """

    def __init__(
        self, client: Any, errors: S3Errors, key: str, content_type: str, *, part_size: int, requests: Counter[str]
    ) -> None:
        self._client, self._errors, self.requests = client, errors, requests
        self._bucket = errors.bucket
        self._part_size = part_size
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
            raise LoadError(f"write to s3://{self._bucket}/{self.key} after commit or abort", stage=self._errors.stage)
        self._buffer += data
        while len(self._buffer) >= self._part_size:
            with memoryview(self._buffer) as view:
                part = bytes(view[: self._part_size])
            del self._buffer[: self._part_size]
            await self._start_part(part)

    async def commit(self) -> None:
        """Complete the upload (or put the small object); the object appears only now."""
        if self._finished:
            raise LoadError(f"commit of s3://{self._bucket}/{self.key} after commit or abort", stage=self._errors.stage)
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
            self.requests["put_object"] += 1
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
            self.requests["complete_multipart_upload"] += 1
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
                stage=self._errors.stage,
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
        self.requests["create_multipart_upload"] += 1

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
        self.requests["upload_part"] += 1
        logger.debug("uploaded part %d (%d bytes) of s3://%s/%s", number, len(body), self._bucket, self.key)

    async def _wait_inflight(self) -> None:
        if self._inflight is not None:
            # Shielded: if the run is cancelled here, the part finishes and abort() then aborts the upload.
            await asyncio.shield(self._inflight)
            self._inflight = None

    async def _abort_upload(self, upload_id: str) -> None:
        # S3: parts still in flight may land after an abort, so check and abort once more.
        for attempt in (1, 2):
            request = self._client.abort_multipart_upload(Bucket=self._bucket, Key=self.key, UploadId=upload_id)
            try:
                answer = await self._errors.call(request, "abort the upload of", self.key, absent=MISSING_UPLOAD)
            except LoadError as exc:
                if attempt == 2:
                    raise
                found = code(exc.__cause__)
                reason = f" ({found})" if found else ""  # the S3 error code; the full error is raised if it fails again
                logger.warning("aborting the upload of s3://%s/%s failed%s; retrying", self._bucket, self.key, reason)
                continue
            if answer is None:  # no such upload: nothing left to abort
                return
            self.requests["abort_multipart_upload"] += 1
            if not await self._upload_remains(upload_id):
                logger.info("aborted the upload of s3://%s/%s", self._bucket, self.key)
                return
            logger.warning("parts of s3://%s/%s landed after the abort; aborting again", self._bucket, self.key)
        raise LoadError(
            f"the multipart upload {upload_id} of s3://{self._bucket}/{self.key} is still open after two aborts; "
            "the bucket's lifecycle rule will remove it",
            stage=self._errors.stage,
        )

    async def _upload_remains(self, upload_id: str) -> bool:
        request = self._client.list_parts(Bucket=self._bucket, Key=self.key, UploadId=upload_id)
        try:
            return await self._errors.call(request, "list the parts of", self.key, absent=MISSING_UPLOAD) is not None
        except LoadError:
            return True  # without s3:ListMultipartUploadParts we cannot tell; a second abort is harmless

    async def _call(self, action: str, method: str, **kwargs: Any) -> Any:
        return await self._errors.must(getattr(self._client, method)(**kwargs), action, self.key)
