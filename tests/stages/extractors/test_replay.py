"""The replay extractor: folders of pages and raw-zone files, with clear errors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from pipeline.errors import ExtractError
from pipeline.stage import RunContext
from stages.extractors.replay import ReplayExtractor, ReplayOptions

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "2026-11-25"


async def replayed(context: RunContext, path: Path) -> list[tuple[int, int, int]]:
    async with ReplayExtractor(ReplayOptions(path=path), context) as extractor:
        return [(b.page, len(b.payload["results"]), len(b.lookups.genres)) async for b in extractor.batches()]


async def test_a_folder_replays_pages_in_order_with_its_lookups(context: RunContext) -> None:
    assert await replayed(context, SAMPLE) == [(1, 20, 18), (2, 20, 18), (3, 20, 18)]


async def test_statistics_count_the_pages_replayed_in_a_snapshot(context: RunContext) -> None:
    async with ReplayExtractor(ReplayOptions(path=SAMPLE), context) as extractor:
        before = extractor.statistics()
        pages = [b.page async for b in extractor.batches()]
        after = extractor.statistics()
    assert pages == [1, 2, 3]
    assert (before, after) == ({"pages": 0}, {"pages": 3})
    with pytest.raises(TypeError):
        after["pages"] = 0  # type: ignore[index]


async def test_a_raw_zone_file_replays_the_same_pages(context: RunContext, tmp_path: Path) -> None:
    lines = [json.loads((SAMPLE / "_lookups.json").read_text())]
    lines += [json.loads(p.read_text()) for p in sorted(SAMPLE.glob("page-*.json"))]
    archive = tmp_path / "day.jsonl.gz"
    archive.write_bytes(gzip.compress(b"".join(json.dumps(d).encode() + b"\n" for d in lines)))
    assert await replayed(context, archive) == await replayed(context, SAMPLE)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ((SAMPLE / "page-001.json").read_bytes() + b"{not json\n", r"day.jsonl:2: invalid JSON"),
        (b'{"page": 1, "results": []}\n', r"day.jsonl:1: not a raw-zone response record or lookups line"),
        (b"[1, 2]\n", r"day.jsonl:1: expected a JSON object"),
    ],
)
async def test_bad_archives_fail_with_the_line(
    context: RunContext, tmp_path: Path, content: bytes, message: str
) -> None:
    archive = tmp_path / "day.jsonl"
    archive.write_bytes(content)
    with pytest.raises(ExtractError, match=message):
        await replayed(context, archive)


async def test_a_missing_path_fails_before_reading(context: RunContext, tmp_path: Path) -> None:
    with pytest.raises(ExtractError, match="replay path not found"):
        await replayed(context, tmp_path / "nope")
