"""The raw zone keeps every response body exactly, and replaying it rebuilds the cleaned file byte for byte."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from aioresponses import aioresponses

from pipeline.datalake import rawzone
from pipeline.errors import ExtractError
from pipeline.options import build_options
from pipeline.runner import run_pipeline
from pipeline.stage import Batch, Feed, Lookups, RunContext
from stages.extractors.replay import ReplayExtractor, ReplayOptions
from stages.extractors.tmdb.extractor import TmdbOptions, TmdbTrendingExtractor
from tests.support.fixtures_tmdb import StandinFactory, today_context

TOKEN = "fidelity-token-0123456789abcdef"
KEY = "fidelity-v3-key-fedcba9876543210"
FETCHED = dt.datetime(2026, 11, 25, 12, 0, 3, 120000, tzinfo=dt.UTC)
TRENDING = re.compile(r"^https://tmdb\.test/3/trending/movie/day(\?.*)?$")
# Pretty-printed, \u escapes, a popularity beyond any float, a key order of the server's own.
HOSTILE_BODY = (
    b'{\n  "page": 1,\n  "results": [\n    {"id": 7, "title": "Am\\u00e9lie \\ud83c\\udfac", '
    b'"popularity": 1e309, "media_type": "movie"},\n    {"title": "B\xc3\xa9", "id": 8, "popularity": 2.50}\n  ],\n'
    b'  "total_results": 2, "total_pages": 1\n}\n'
)


def strict_json(line: bytes) -> Any:
    """Parse as standard JSON: ``Infinity`` and ``NaN`` are not JSON."""

    def refuse(name: str) -> Any:
        raise ValueError(f"not JSON: {name}")

    return json.loads(line, parse_constant=refuse)


# -- the record format ---------------------------------------------------------------------------
def test_a_page_line_keeps_the_body_bytes_and_the_request() -> None:
    batch = Batch(
        page=3,
        payload=json.loads(HOSTILE_BODY),
        feed=Feed(),
        extracted_at=FETCHED,
        body=HOSTILE_BODY,
        status=200,
        request="/3/trending/movie/day?page=3&language=en-US",
    )
    line = rawzone.page_line(batch)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    record = strict_json(line)
    assert record == {
        "v": 1,
        "page": 3,
        "fetched_at": "2026-11-25T12:00:03.120000+00:00",
        "status": 200,
        "request": "/3/trending/movie/day?page=3&language=en-US",
        "sha256": hashlib.sha256(HOSTILE_BODY).hexdigest(),
        "body": HOSTILE_BODY.decode("utf-8"),
    }
    assert record["body"].encode("utf-8") == HOSTILE_BODY
    parsed = rawzone.parse_record(record)
    assert (parsed.page, parsed.fetched_at, parsed.body, parsed.status) == (3, FETCHED, HOSTILE_BODY, 200)


def test_a_body_that_is_not_utf8_is_kept_as_base64() -> None:
    body = '{"page": 1, "results": [], "note": "é"}'.encode("utf-16")  # JSON allows it; json.loads reads it
    batch = Batch(page=1, payload={"page": 1, "results": []}, feed=Feed(), extracted_at=FETCHED, body=body)
    record = strict_json(rawzone.page_line(batch))
    assert "body" not in record and rawzone.parse_record(record).body == body


def test_without_body_bytes_the_payload_is_serialised_into_a_record() -> None:
    batch = Batch(page=2, payload={"page": 2, "results": []}, feed=Feed(), extracted_at=FETCHED)
    record = strict_json(rawzone.page_line(batch))
    assert (record["page"], record["status"], record["request"]) == (2, None, None)
    assert json.loads(record["body"]) == {"page": 2, "results": []}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"body": '{"page": 1, "results": []} '}, "does not match its sha256"),
        ({"page": 0}, "invalid 'page'"),
        ({"fetched_at": "2026-11-25T12:00:00"}, "no UTC offset"),
        ({"fetched_at": None}, "missing 'fetched_at'"),
    ],
)
def test_a_damaged_record_is_refused_with_the_reason(change: dict[str, Any], message: str) -> None:
    batch = Batch(page=1, payload={}, feed=Feed(), extracted_at=FETCHED, body=b'{"page": 1, "results": []}')
    record = {**json.loads(rawzone.page_line(batch)), **change}
    with pytest.raises(rawzone.RawRecordError, match=message):
        rawzone.parse_record(record)


# -- the live extractor hands the bytes over -------------------------------------------------------
@pytest.mark.usefixtures("aioresponses_compat")
async def test_the_extractor_keeps_the_body_as_received_and_the_request_without_the_key() -> None:
    opts = build_options(
        TmdbOptions, {"base_url": "https://tmdb.test", "enrich": False, "language": "en-US"}, "extractor.options"
    )
    with aioresponses() as mocked:
        mocked.get(TRENDING, body=HOSTILE_BODY, content_type="application/json")
        extractor = TmdbTrendingExtractor(opts, today_context(), env={"TMDB_API_KEY": KEY})
        async with extractor:
            [batch] = [b async for b in extractor.batches()]
    assert batch.body == HOSTILE_BODY and batch.status == 200
    assert batch.request == "/3/trending/movie/day?page=1&language=en-US"
    line = rawzone.page_line(batch)
    assert KEY.encode() not in line
    assert b"Infinity" not in line and strict_json(line)["body"].encode("utf-8") == HOSTILE_BODY


# -- replay ---------------------------------------------------------------------------------------
async def replay(path: Path, context: RunContext, **options: Any) -> list[Batch]:
    async with ReplayExtractor(ReplayOptions(path=path, **options), context) as extractor:
        return [b async for b in extractor.batches()]


async def test_replay_uses_the_requested_page_and_the_fetch_time(context: RunContext, tmp_path: Path) -> None:
    # A body that claims page 1 although page 2 was asked for (a misbehaving cache): ranks follow the request.
    body = b'{"page": 1, "results": [{"id": 5, "title": "T", "popularity": 1.0}]}'
    batch = Batch(page=2, payload=json.loads(body), feed=Feed(), extracted_at=FETCHED, body=body, status=200)
    lookups = rawzone.lookups_document(Lookups({28: "Action"}, "https://img/w500"))
    assert lookups is not None
    archive = tmp_path / "day.jsonl.gz"
    archive.write_bytes(gzip.compress(rawzone.dumps(lookups) + rawzone.page_line(batch)))
    [back] = await replay(archive, context)
    assert (back.page, back.extracted_at, back.body, back.status) == (2, FETCHED, body, 200)
    assert back.lookups.genres == {28: "Action"}
    assert rawzone.page_line(back) == rawzone.page_line(batch)  # replaying a raw zone re-archives it unchanged


async def test_a_bare_page_is_not_a_raw_zone_line(context: RunContext, tmp_path: Path) -> None:
    archive = tmp_path / "old.jsonl"
    archive.write_text('{"page": 1, "results": [{"id": 1, "title": "A"}], "total_pages": 1}\n')
    with pytest.raises(ExtractError, match=r"old\.jsonl:1: not a raw-zone response record"):
        await replay(archive, context)


async def test_a_damaged_record_fails_the_replay_naming_the_line(context: RunContext, tmp_path: Path) -> None:
    batch = Batch(page=1, payload={}, feed=Feed(), extracted_at=FETCHED, body=b'{"page": 1, "results": []}')
    record = json.loads(rawzone.page_line(batch))
    record["body"] = record["body"].replace("[]", "[1]")
    archive = tmp_path / "day.jsonl"
    archive.write_bytes(rawzone.dumps(record))
    with pytest.raises(ExtractError, match=r"day\.jsonl:1: the body does not match its sha256"):
        await replay(archive, context)


# -- the guarantee, end to end -------------------------------------------------------------------
def _lake_config(root: Path, fmt: str, extractor: dict[str, Any]) -> dict[str, Any]:
    return {
        "extractor": extractor,
        "transformer": {"type": "standardize"},
        "loader": {"type": "local", "options": {"root": str(root), "format": fmt}},
    }


def _committed(root: Path) -> tuple[bytes, Path]:
    """The cleaned bytes and the raw file of the one day in a local lake, found through its manifest."""
    [manifest_path] = [p for p in (root / "_manifests").rglob("*.json") if not p.name.startswith(".")]
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    objects = manifest["objects"]
    return (root / objects["cleaned"]["key"]).read_bytes(), root / objects["raw"]["key"]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
async def test_replaying_a_days_raw_zone_rebuilds_the_cleaned_file_byte_for_byte(
    fmt: str, tmdb_standin: StandinFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMDB_ACCESS_TOKEN", TOKEN)
    # Every body claims page 1, bodies are pretty-printed with \u escapes, the list churns, faults are retried.
    standin = await tmdb_standin(
        token=TOKEN, total_pages=100, churn=2, fault_rate=0.05, seed=11, pretty=True, body_page=1
    )
    live_lake, replay_lake = tmp_path / "live", tmp_path / "replayed"
    extractor = {
        "type": "tmdb-trending",
        "options": {
            "base_url": standin.base_url,
            "media_type": "all",
            "pages": 8,
            "concurrency": 4,
            "backoff": 0.01,
            "max_backoff": 0.05,
            "rate_limit": 1000,  # far above this run: no waiting
        },
    }
    live = await run_pipeline(_lake_config(live_lake, fmt, extractor))
    live_cleaned, raw = _committed(live_lake)
    assert live.rows > 100 and live.dropped["person_set_aside"] > 0

    # The raw zone holds exactly the bytes the server sent, one record per page, in page order.
    lines = gzip.decompress(raw.read_bytes()).splitlines()
    assert "lookups" in strict_json(lines[0])
    records = [strict_json(line) for line in lines[1:]]
    assert [r["page"] for r in records] == list(range(1, 9))
    assert all(r["body"].encode("utf-8") == standin.stats.bodies[r["page"]] for r in records)
    assert all(r["status"] == 200 and TOKEN not in r["request"] for r in records)

    replayed = await run_pipeline(
        _lake_config(replay_lake, fmt, {"type": "replay", "options": {"path": str(raw), "media_type": "all"}}),
        trend_date=live.trend_date,
    )
    replay_cleaned, replay_raw = _committed(replay_lake)
    assert replayed.rows == live.rows and replayed.dropped == live.dropped
    assert replay_cleaned == live_cleaned
    # ... and the replay's own raw zone is the same archive again.
    assert gzip.decompress(replay_raw.read_bytes()) == gzip.decompress(raw.read_bytes())
