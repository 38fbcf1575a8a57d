"""botocore's errors, translated in one place into the pipeline's: one line naming the bucket and key.

Every S3 call of the store goes through ``S3Errors.call``; the few answers that are not errors to the
protocol (a missing key, a missing upload, a failed condition) are told apart by ``code``. Credentials are
never read, logged or put in a message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Collection
from typing import TypeVar

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

from pipeline.errors import CommitConflict, LoadError, TransientLoadError
from pipeline.redact import redact

T = TypeVar("T")

BOTO_ERRORS = (ClientError, BotoCoreError)
MISSING_KEY = frozenset({"NoSuchKey", "404"})
MISSING_UPLOAD = frozenset({"NoSuchUpload"})
CONFLICT = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})

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
_UNREACHABLE = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError)
_NO_CREDENTIALS = (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)


def code(exc: BaseException | None) -> str:
    """S3's error code of a ``ClientError`` (``""`` for anything else, ``None`` included)."""
    if not isinstance(exc, ClientError):
        return ""
    return str(exc.response.get("Error", {}).get("Code", ""))


def refused_at_once(exc: ClientError) -> bool:
    """S3 answered the request's only attempt with a refusal, so it was not applied.

    A 4xx or a 503 (SlowDown, ServiceUnavailable) is answered before anything is stored. After a retry the
    final answer says nothing of the earlier attempts (the first may have been applied and its answer lost),
    and a 500 may come after the write; both leave the outcome unknown.
    """
    metadata = exc.response.get("ResponseMetadata", {})
    status = int(metadata.get("HTTPStatusCode") or 0)
    return int(metadata.get("RetryAttempts") or 0) == 0 and (400 <= status < 500 or status == 503)


def translate(
    exc: BaseException, action: str, bucket: str, key: str, *, stage: str | None, endpoint: str | None
) -> LoadError:
    """One line naming the bucket and key; never the credentials."""
    where = f"s3://{bucket}/{key}" if key else f"s3://{bucket}"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        found = str(error.get("Code") or status or "Error")
        detail = _HINTS.get(found) or str(error.get("Message") or "no message")
        cls = TransientLoadError if found in _TRANSIENT_CODES else LoadError
        translated = cls(f"cannot {action} {where}: {found}: {redact(detail)}", stage=stage)
        translated.applied = False if refused_at_once(exc) else None
        return translated
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


class S3Errors:
    """Runs S3 calls for one bucket and turns their errors into ours."""

    def __init__(self, bucket: str, stage: str | None, endpoint: str | None) -> None:
        self.bucket, self.stage, self.endpoint = bucket, stage, endpoint

    def error(self, exc: BaseException, action: str, key: str) -> LoadError:
        """The ``LoadError`` for ``exc`` (a one-liner naming the bucket and ``key``)."""
        return translate(exc, action, self.bucket, key, stage=self.stage, endpoint=self.endpoint)

    async def call(
        self,
        request: Awaitable[T],
        action: str,
        key: str,
        *,
        absent: Collection[str] = (),
        conflict: bool = False,
    ) -> T | None:
        """``await request``; ``None`` when S3 answers one of the ``absent`` codes.

        With ``conflict``, a failed condition is a ``CommitConflict`` (``applied`` says whether it is certain).
        """
        try:
            return await request
        except ClientError as exc:
            found = code(exc)
            if found in absent:
                return None
            if conflict and found in CONFLICT:
                failed = CommitConflict(f"s3://{self.bucket}/{key} changed ({found})", stage=self.stage)
                failed.applied = False if refused_at_once(exc) else None
                raise failed from None
            raise self.error(exc, action, key) from exc
        except BotoCoreError as exc:
            raise self.error(exc, action, key) from exc

    async def must(self, request: Awaitable[T], action: str, key: str) -> T:
        """``await request``; every error is ours."""
        try:
            return await request
        except BOTO_ERRORS as exc:
            raise self.error(exc, action, key) from exc
