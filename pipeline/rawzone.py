"""The raw zone's line format: one JSON document per line, gzip-compressed.

A line is either a TMDB trending page exactly as TMDB returned it (it has ``results``)
or, first in the file, one ``{"lookups": {...}}`` line with the reference data the
run used for enrichment, so that ``replay`` rebuilds the same cleaned rows offline.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pipeline.stage import Batch, Lookups

LOOKUPS_KEY = "lookups"


def dumps(document: Mapping[str, Any]) -> bytes:
    """One compact JSON line, UTF-8, newline-terminated."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def page_line(batch: Batch) -> bytes:
    """The raw-zone line that archives one page."""
    return dumps(batch.payload)


def lookups_document(lookups: Lookups) -> dict[str, Any] | None:
    """The ``{"lookups": ...}`` line for ``lookups``, or ``None`` when there is nothing to record."""
    if not lookups.genres and lookups.poster_base_url is None:
        return None
    return {
        LOOKUPS_KEY: {
            "genres": [{"id": k, "name": v} for k, v in sorted(lookups.genres.items())],
            "poster_base_url": lookups.poster_base_url,
        }
    }


def parse_lookups(document: Mapping[str, Any]) -> Lookups | None:
    """``Lookups`` from a lookups line, or ``None`` if ``document`` is not one."""
    body = document.get(LOOKUPS_KEY)
    if not isinstance(body, Mapping):
        return None
    genres = {int(g["id"]): str(g["name"]) for g in body.get("genres") or [] if "id" in g and "name" in g}
    base = body.get("poster_base_url")
    return Lookups(genres=genres, poster_base_url=str(base) if base else None)
