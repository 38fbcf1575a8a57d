"""The bundled synthetic sample (``tests/data/sample/``): raw-zone response records, one page per file."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.datalake import rawzone
from pipeline.stage import Batch, Feed
from tests.support.cli import ROOT

SAMPLE = ROOT / "tests" / "data" / "sample"
FETCHED = dt.datetime(2026, 11, 25, 12, tzinfo=dt.UTC)


def sample_pages(day: str = "2026-11-25") -> list[dict[str, Any]]:
    """The TMDB page documents of a sample day, in page order: the bodies its records archive."""
    records = [json.loads(p.read_bytes()) for p in sorted((SAMPLE / day).glob("page-*.json"))]
    return [dict(rawzone.parse_record(r).document) for r in records]


def record_line(page: dict[str, Any], fetched_at: dt.datetime = FETCHED) -> bytes:
    """The raw-zone record of the page document ``page`` (its ``page`` is the page requested)."""
    body = json.dumps(page, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    batch = Batch(page=int(page["page"]), payload=page, feed=Feed(), extracted_at=fetched_at, body=body)
    return rawzone.page_line(batch)


def replay_config(
    loader: Mapping[str, Any], pages: Path = SAMPLE / "2026-11-25", reporters: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """A config mapping: replay ``pages`` (the sample's 2026-11-25) → standardize → ``loader`` → ``reporters``."""
    document: dict[str, Any] = {
        "extractor": {"type": "replay", "options": {"path": str(pages)}},
        "transformer": {"type": "standardize"},
        "loader": dict(loader),
    }
    if reporters:
        document["reporter"] = [dict(r) for r in reporters]
    return document


def write_config(path: Path, document: Mapping[str, Any]) -> Path:
    """Write ``document`` to ``path`` as a config file (JSON is YAML); returns ``path``."""
    path.write_text(json.dumps(document), encoding="utf-8")
    return path
