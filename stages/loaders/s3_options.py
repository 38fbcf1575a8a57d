"""``S3Options``: the ``s3`` loader's options (bucket, prefix, region, endpoint, part size, upload age)."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from pipeline.datalake import LakeFormatOptions, validate_prefix

MiB = 1024 * 1024
MIN_PART_SIZE = 5 * MiB  # S3's minimum for every part but the last
MAX_PART_SIZE = 5 * 1024 * MiB

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


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
