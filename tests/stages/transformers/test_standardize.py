"""The standardize transformer on the hostile, messy sample and on edge cases."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pipeline.datalake import schema
from pipeline.errors import TransformError
from pipeline.stage import Batch, Feed, Lookups, RunContext
from stages.transformers.standardize import StandardizeOptions, StandardizeTransformer
from tests.support.sample import sample_pages
from tests.support.standardize import clean

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "2026-11-25"
NOW = dt.datetime(2026, 11, 25, 12, 0, 3, tzinfo=dt.UTC)
DEFAULT_FEED = Feed()
NO_LOOKUPS = Lookups()


def sample_lookups() -> Lookups:
    body = json.loads((SAMPLE / "_lookups.json").read_text())["lookups"]
    return Lookups({g["id"]: g["name"] for g in body["genres"]}, body["poster_base_url"])


async def test_sample_is_cleaned_into_the_schema_with_counted_drops(context: RunContext) -> None:
    pages = sample_pages()
    frame, transformer = await clean(context, pages, lookups=sample_lookups())
    raw_count = sum(len(p["results"]) for p in pages)
    assert list(frame.columns) == list(schema.COLUMN_NAMES)
    assert dict(transformer.statistics()) == {"duplicate_id": 1, "missing_id": 1, "non_numeric_popularity": 1}
    assert len(frame) == raw_count - 3
    assert frame["id"].is_unique
    assert frame["rank"].is_monotonic_increasing
    assert frame["rank"].min() == 1 and frame["rank"].max() <= 60
    assert (frame["trend_date"] == "2026-11-25").all()
    assert (frame["extracted_at"] == "2026-11-25T12:00:03+00:00").all()
    assert (frame["time_window"] == "day").all()
    assert frame.dtypes["popularity"] == "float64" and frame.dtypes["vote_count"] == "int64"


async def test_duplicate_ids_keep_the_best_rank(context: RunContext) -> None:
    pages = [
        {"page": 1, "results": [_movie(10), _movie(11)]},
        {"page": 2, "results": [_movie(11), _movie(12)]},
    ]
    frame, transformer = await clean(context, pages)
    assert frame[["id", "rank"]].values.tolist() == [[10, 1], [11, 2], [12, 22]]
    assert transformer.statistics()["duplicate_id"] == 1


async def test_titles_survive_a_csv_round_trip_byte_for_byte(context: RunContext) -> None:
    frame, _ = await clean(context, sample_pages())
    hostile = {
        "Line\nBreak Story",
        "<script>alert('x')</script>",
        "NA",
        '=HYPERLINK("http://evil.example","click")',
        "+Plus Side",
        "-Minus World",
        "@everyone Premiere Night",
        "Amélie's Café — 東京物語 🎬",
        '"Quoted", With Comma',
        "Pipes | Between | Cells",
    }
    assert hostile <= set(frame["title"]), "the sample must keep its hostile titles"
    data = schema.to_csv_bytes(frame, header=True)
    back = schema.read_csv_bytes(data)
    pd.testing.assert_frame_equal(back, frame)
    assert [t.encode() for t in back["title"]] == [t.encode() for t in frame["title"]]


async def test_missing_and_null_fields_become_empty_not_errors(context: RunContext) -> None:
    item = _movie(5, release_date="", poster_path=None, title=None, vote_average=None, vote_count=None, genre_ids=None)
    frame, _ = await clean(
        context, [{"page": 1, "results": [item]}], lookups=Lookups({28: "Action"}, "https://img/w500")
    )
    row = frame.iloc[0]
    assert (row["release_date"], row["title"], row["genre_ids"], row["poster_url"]) == ("", "", "", "")
    assert pd.isna(row["vote_average"]) and row["vote_count"] == 0


async def test_enrichment_adds_genre_names_and_poster_urls(context: RunContext) -> None:
    item = _movie(5, genre_ids=[28, 999, 12], poster_path="/abc.jpg")
    lookups = Lookups({28: "Action", 12: "Adventure"}, "https://image.tmdb.org/t/p/w500")
    frame, _ = await clean(context, [{"page": 1, "results": [item]}], lookups=lookups)
    assert frame.loc[0, "genre_ids"] == "28|999|12"
    assert frame.loc[0, "genres"] == "Action|Adventure"
    assert frame.loc[0, "poster_url"] == "https://image.tmdb.org/t/p/w500/abc.jpg"


async def test_tv_results_map_onto_the_movie_columns_and_people_are_dropped(context: RunContext) -> None:
    tv = {
        "id": 7,
        "name": "A Show",
        "original_name": "Une Série",
        "first_air_date": "2024-05-06",
        "media_type": "tv",
        "popularity": 50.0,
    }
    person = {"id": 8, "name": "Someone", "media_type": "person", "popularity": 60.0}
    frame, transformer = await clean(context, [{"page": 1, "results": [person, tv, _movie(9)]}], Feed("all", "week"))
    assert frame[["id", "rank", "title", "original_title", "release_date", "media_type"]].values.tolist() == [
        [7, 2, "A Show", "Une Série", "2024-05-06", "tv"],
        [9, 3, "Title 9", "Title 9", "2026-01-02", "movie"],
    ]
    assert (frame["time_window"] == "week").all()
    assert transformer.statistics()["person_set_aside"] == 1


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ({"title": "no id", "popularity": 1.0}, "missing_id"),
        ({"id": "12", "title": "string id", "popularity": 1.0}, "missing_id"),
        ({"id": 3, "title": "nan", "popularity": float("nan")}, "non_numeric_popularity"),
        ({"id": 3, "title": "text", "popularity": "high"}, "non_numeric_popularity"),
        ("not an object", "not_an_object"),
        ({"id": 3, "media_type": "collection", "popularity": 1.0}, "unknown_media_type"),
    ],
)
async def test_bad_records_are_dropped_and_counted(context: RunContext, item: Any, reason: str) -> None:
    frame, transformer = await clean(context, [{"page": 1, "results": [item, _movie(1)]}])
    assert frame["id"].tolist() == [1]
    assert dict(transformer.statistics()) == {reason: 1}


async def test_statistics_are_a_snapshot_the_caller_cannot_change(context: RunContext) -> None:
    transformer = StandardizeTransformer(StandardizeOptions(), context)
    await transformer.transform(Batch(1, {"page": 1, "results": [_movie(10), _movie(10)]}, DEFAULT_FEED, NOW))
    after_page_1 = transformer.statistics()
    with pytest.raises(TypeError):
        after_page_1["duplicate_id"] = 0  # type: ignore[index]
    await transformer.transform(Batch(2, {"page": 2, "results": [{"title": "no id"}, _movie(11)]}, DEFAULT_FEED, NOW))
    assert after_page_1 == {"duplicate_id": 1}
    assert transformer.statistics() == {"duplicate_id": 1, "missing_id": 1}


async def test_a_page_without_results_is_a_clear_error(context: RunContext) -> None:
    with pytest.raises(TransformError, match="page 4: the body has no 'results' list"):
        await clean(context, [{"page": 4, "status_message": "oops"}])


async def test_invalid_release_dates_are_blanked(context: RunContext) -> None:
    frame, _ = await clean(
        context, [{"page": 1, "results": [_movie(1, release_date="2024-13-45"), _movie(2, release_date="2024")]}]
    )
    assert frame["release_date"].tolist() == ["", ""]


def _movie(movie_id: int, **fields: Any) -> dict[str, Any]:
    base = {
        "id": movie_id,
        "title": f"Title {movie_id}",
        "original_title": f"Title {movie_id}",
        "original_language": "en",
        "media_type": "movie",
        "popularity": 10.0,
        "release_date": "2026-01-02",
        "vote_average": 7.0,
        "vote_count": 3,
        "genre_ids": [28],
        "poster_path": None,
    }
    base.update(fields)
    return base


def test_options_reject_a_bad_page_size() -> None:
    from pipeline.errors import ConfigError
    from pipeline.options import build_options

    with pytest.raises(ConfigError, match=r"transformer\.options\.page_size: must be at least 1"):
        build_options(StandardizeOptions, {"page_size": 0}, "transformer.options")
    assert build_options(StandardizeOptions, None, "t").model_dump() == {"page_size": 20}
