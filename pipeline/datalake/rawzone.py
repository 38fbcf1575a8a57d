"""The raw zone's line format: one JSON document per line, gzip-compressed.

The first line may be ``{"lookups": {...}}``: the reference data the run used for
enrichment, so that ``replay`` rebuilds the same cleaned rows offline. Every other line
archives one response exactly as it arrived, with the request it answered::

    {"v": 1, "page": 2, "fetched_at": "2026-11-25T12:00:03.120000+00:00", "status": 200,
     "request": "/3/trending/movie/day?page=2", "sha256": "<hex of the body bytes>",
     "body": "<the body bytes decoded as UTF-8, exactly>"}

``body`` holds the bytes as text, so ``body.encode("utf-8")`` gives them back byte for
byte (``sha256`` proves it); a body that is not valid UTF-8 is kept as ``body_base64``
instead. See ``docs/fidelity.md``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pipeline.datalake import schema
from pipeline.stage import Batch, Lookups

LOOKUPS_KEY = "lookups"
RECORD_VERSION = 1


class RawRecordError(ValueError):
    """A raw-zone line that cannot be read back as a page."""


@dataclasses.dataclass(frozen=True)
class RawPage:
    """One archived page: the parsed body plus, for records, the request it answered."""

    page: int
    document: Mapping[str, Any]
    body: bytes
    fetched_at: dt.datetime
    status: int | None = None
    request: str | None = None


def dumps(document: Mapping[str, Any]) -> bytes:
    """One compact JSON line, UTF-8, newline-terminated."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def page_line(batch: Batch) -> bytes:
    """The raw-zone line that archives one page: the response body verbatim, with its request."""
    body = batch.body if batch.body is not None else _serialise(batch.payload)
    record: dict[str, Any] = {
        "v": RECORD_VERSION,
        "page": batch.page,
        "fetched_at": batch.extracted_at.astimezone(dt.UTC).isoformat(),
        "status": batch.status,
        "request": batch.request,
        "sha256": hashlib.sha256(body).hexdigest(),
    }
    try:
        record["body"] = body.decode("utf-8")
    except UnicodeDecodeError:
        record["body_base64"] = base64.b64encode(body).decode("ascii")
    return dumps(record)


def is_record(document: Mapping[str, Any]) -> bool:
    """Whether ``document`` is a response record (rather than a lookups line)."""
    return "sha256" in document and ("body" in document or "body_base64" in document)


def parse_record(document: Mapping[str, Any]) -> RawPage:
    """The page a response record archives; ``RawRecordError`` if it is damaged or not a page."""
    body = _record_body(document)
    digest = document.get("sha256")
    if not isinstance(digest, str) or hashlib.sha256(body).hexdigest() != digest.lower():
        raise RawRecordError("the body does not match its sha256")
    page = document.get("page")
    if isinstance(page, bool) or not isinstance(page, int) or page < 1:
        raise RawRecordError("missing or invalid 'page' number")
    fetched_at = _timestamp(document.get("fetched_at"))
    status = document.get("status")
    request = document.get("request")
    try:
        parsed = schema.parse_json(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RawRecordError(f"the archived body is not JSON ({exc})") from None
    if not isinstance(parsed, Mapping):
        raise RawRecordError("the archived body is not a JSON object")
    return RawPage(
        page=page,
        document=parsed,
        body=body,
        fetched_at=fetched_at,
        status=status if isinstance(status, int) and not isinstance(status, bool) else None,
        request=request if isinstance(request, str) else None,
    )


def lookups_document(lookups: Lookups) -> dict[str, Any] | None:
    """The ``{"lookups": ...}`` line for ``lookups``, or ``None`` when there is nothing to record."""
    if not lookups.genres and lookups.poster_base_url is None and lookups.profile_base_url is None:
        return None
    body: dict[str, Any] = {
        "genres": [{"id": k, "name": v} for k, v in sorted(lookups.genres.items())],
        "poster_base_url": lookups.poster_base_url,
    }
    if lookups.profile_base_url is not None:  # only runs that fetch people record it
        body["profile_base_url"] = lookups.profile_base_url
    return {LOOKUPS_KEY: body}


def parse_lookups(document: Mapping[str, Any]) -> Lookups | None:
    """``Lookups`` from a lookups line, or ``None`` if ``document`` is not one."""
    body = document.get(LOOKUPS_KEY)
    if not isinstance(body, Mapping):
        return None
    genres = {int(g["id"]): str(g["name"]) for g in body.get("genres") or [] if "id" in g and "name" in g}
    base, profiles = body.get("poster_base_url"), body.get("profile_base_url")
    return Lookups(
        genres=genres, poster_base_url=str(base) if base else None, profile_base_url=str(profiles) if profiles else None
    )


def _serialise(payload: Mapping[str, Any]) -> bytes:
    # Only for extractors that do not hand over the bytes they received.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _record_body(document: Mapping[str, Any]) -> bytes:
    text = document.get("body")
    if isinstance(text, str):
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            raise RawRecordError("the body is not valid Unicode text") from None
    encoded = document.get("body_base64")
    if isinstance(encoded, str):
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise RawRecordError("body_base64 is not valid base64") from None
    raise RawRecordError("the record has no 'body' text")


def _timestamp(value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise RawRecordError("missing 'fetched_at' time")
    try:
        stamp = dt.datetime.fromisoformat(value)
    except ValueError:
        raise RawRecordError(f"invalid 'fetched_at' time {value!r}") from None
    if stamp.tzinfo is None:
        raise RawRecordError(f"'fetched_at' has no UTC offset: {value!r}")
    return stamp
