"""Record fidelity (issue 18): wrong JSON types are counted drops, ranks stay unique, any integer parses."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.datalake import rawzone, schema
from pipeline.stage import Batch, Feed, Lookups, RunContext
from stages.transformers.standardize import StandardizeOptions, StandardizeTransformer
from tests.support.cli import CliRunner
from tests.support.sample import FETCHED

NOW = dt.datetime(2026, 11, 25, 12, 0, 3, tzinfo=dt.UTC)


def transformer() -> StandardizeTransformer:
    context = RunContext(trend_date=dt.date(2026, 11, 25), run_id="types0000001", started_at=NOW)
    return StandardizeTransformer(StandardizeOptions(), context)


async def clean(pages: list[list[Any]]) -> tuple[pd.DataFrame, StandardizeTransformer]:
    cleaner = transformer()
    chunks = [
        await cleaner.transform(Batch(number, {"page": number, "results": results}, Feed(), NOW, Lookups()))
        for number, results in enumerate(pages, start=1)
    ]
    return pd.concat(chunks, ignore_index=True), cleaner


def movie(tmdb_id: int, **fields: Any) -> dict[str, Any]:
    return {"id": tmdb_id, "title": f"Movie {tmdb_id}", "media_type": "movie", "popularity": 5.0, **fields}


@pytest.mark.parametrize(
    ("fields", "reason", "detail"),
    [
        ({"title": 12345}, "non_string_text", "expected text, got title int 12345"),
        ({"title": ["A", "B"]}, "non_string_text", "expected text, got title list ['A', 'B']"),
        ({"original_title": False}, "non_string_text", "expected text, got original_title bool False"),
        ({"original_language": {"iso": "en"}}, "non_string_text", "expected text, got original_language dict"),
        ({"vote_count": "abc"}, "non_integer_vote_count", "got str 'abc'"),
        ({"vote_count": 12.0}, "non_integer_vote_count", "got float 12.0"),
        ({"vote_count": True}, "non_integer_vote_count", "got bool True"),
        ({"vote_average": "7.5"}, "non_numeric_vote_average", "got str '7.5'"),
        ({"vote_average": float("nan")}, "non_numeric_vote_average", "got float nan"),
    ],
)
async def test_a_field_of_the_wrong_type_is_a_counted_drop_not_a_silent_default(
    fields: dict[str, Any], reason: str, detail: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="stages.transformers.standardize")
    frame, cleaner = await clean([[movie(1), movie(2, **fields)]])
    assert frame["id"].tolist() == [1]
    assert dict(cleaner.statistics()) == {reason: 1}
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith(f"page 1, rank 2, id 2: dropped ({reason}: {detail}")


async def test_null_fields_are_absent_and_a_dropped_copy_does_not_hide_a_good_one() -> None:
    absent = movie(1, title=None, vote_count=None, vote_average=None)
    frame, cleaner = await clean([[absent, movie(2, title=7), movie(2)]])
    assert frame[["id", "title", "vote_count", "rank"]].values.tolist() == [[1, "", 0, 1], [2, "Movie 2", 0, 3]]
    assert dict(cleaner.statistics()) == {"non_string_text": 1}


@settings(max_examples=40, deadline=None, derandomize=True)
@given(lengths=st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=5))
async def test_ranks_are_unique_and_follow_on_across_pages_of_any_length(lengths: list[int]) -> None:
    pages, next_id = [], 1
    for length in lengths:
        pages.append([movie(tmdb_id) for tmdb_id in range(next_id, next_id + length)])
        next_id += length
    frame, cleaner = await clean(pages)
    ranks = frame["rank"].tolist()
    assert len(ranks) == sum(lengths) and not cleaner.statistics()
    assert ranks == sorted(set(ranks))  # unique, in list order
    firsts = [sum(lengths[:n]) for n in range(len(lengths))]  # index of each page's first row
    for number, (first, length) in enumerate(zip(firsts, lengths, strict=True), start=1):
        # never above the place TMDB's page puts it (rank = (page - 1) * 20 + index + 1)
        assert all(ranks[first + index] >= (number - 1) * 20 + index + 1 for index in range(length))
    if all(length >= 20 for length in lengths[:-1]):  # no short page before the last: no gap at all
        assert ranks == list(range(1, len(ranks) + 1))


async def test_a_page_of_25_results_gives_25_unique_ranks_and_the_next_page_follows_on() -> None:
    frame, _ = await clean([[movie(n) for n in range(1, 26)], [movie(n) for n in range(26, 46)]])
    assert frame["rank"].tolist() == list(range(1, 46))


def test_an_integer_of_any_length_parses() -> None:
    huge, negative = "9" * 5000, "-" + "1" * 401
    parsed = schema.parse_json(f'{{"id": {huge}, "n": {negative}, "ok": [12, -3, {"7" * 400}]}}')
    assert parsed["id"] > 2**63 and parsed["n"] < -(2**63)
    assert parsed["ok"] == [12, -3, int("7" * 400)]
    with pytest.raises(ValueError, match="Exceeds the limit"):
        json.loads(f'{{"id": {huge}}}')  # what made the whole page invalid JSON


def test_a_5000_digit_id_drops_one_record_on_replay_not_the_day(tmp_path: Path, run_cli: CliRunner) -> None:
    pages = tmp_path / "pages"
    pages.mkdir()
    body = json.dumps({"page": 1, "results": [movie(1), movie(2)], "total_pages": 1, "total_results": 2})
    raw = body.replace('"id": 2', '"id": ' + "9" * 5000).encode("utf-8")
    batch = Batch(page=1, payload=schema.parse_json(raw), feed=Feed(), extracted_at=FETCHED, body=raw)
    (pages / "page_001.json").write_bytes(rawzone.page_line(batch))  # as the raw zone archives it
    config = tmp_path / "c.yml"
    config.write_text(
        f"extractor: {{type: replay, options: {{path: '{pages}'}}}}\n"
        "transformer: {type: standardize}\n"
        f"loader: {{type: local, options: {{root: '{tmp_path / 'lake'}'}}}}\n",
        encoding="utf-8",
    )
    done = run_cli("run", "--config", str(config), "--date", "2026-11-25")
    assert done.returncode == 0, done.stderr
    assert "wrote 1 rows from 1 pages" in done.stdout and "dropped: id_out_of_range: 1" in done.stdout
