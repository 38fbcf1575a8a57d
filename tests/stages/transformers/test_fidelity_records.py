"""No single record can fail a run or be stored wrong; the identity of a row is ``(media_type, id)``."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import trends
from pipeline.datalake import formats, schema
from pipeline.stage import Feed, RunContext
from stages.reporters import report_model as rm
from stages.reporters.json_report import entry
from stages.transformers.standardize import INT64_MAX
from tests.support.frames import assert_same_frame
from tests.support.standardize import clean

NOW = dt.datetime(2026, 11, 25, 12, 0, 3, tzinfo=dt.UTC)
ALL = Feed("all", "day")
MOVIES = Feed()


def _context() -> RunContext:
    return RunContext(trend_date=dt.date(2026, 11, 25), run_id="fidelity0001", started_at=NOW)


def bare_movie(tmdb_id: Any, **fields: Any) -> dict[str, Any]:
    return {"id": tmdb_id, "title": f"Movie {tmdb_id}", "media_type": "movie", "popularity": 5.0, **fields}


def show(tmdb_id: Any, **fields: Any) -> dict[str, Any]:
    return {"id": tmdb_id, "name": f"Show {tmdb_id}", "media_type": "tv", "popularity": 4.0, **fields}


# -- defect 1: identity ---------------------------------------------------------------------------
async def test_a_movie_and_a_show_with_the_same_id_are_both_kept() -> None:
    frame, transformer = await clean(
        _context(),
        [{"page": 1, "results": [bare_movie(550), show(550)]}, {"page": 2, "results": [show(550), bare_movie(551)]}],
        ALL,
    )
    assert frame[["media_type", "id", "rank"]].values.tolist() == [
        ["movie", 550, 1],
        ["tv", 550, 2],
        ["movie", 551, 22],
    ]
    assert dict(transformer.statistics()) == {"duplicate_id": 1}


def _day(rows: list[tuple[str, int]]) -> pd.DataFrame:
    frame = pd.DataFrame(
        [
            {
                "trend_date": "2026-11-25",
                "rank": rank,
                "id": tmdb_id,
                "title": f"{media_type} {tmdb_id}",
                "original_title": "",
                "original_language": "en",
                "release_date": "",
                "popularity": 100.0 - rank,
                "vote_average": 5.0,
                "vote_count": 1,
                "genre_ids": "",
                "media_type": media_type,
                "time_window": "day",
                "extracted_at": NOW.isoformat(),
                "genres": "",
                "poster_url": "",
            }
            for rank, (media_type, tmdb_id) in enumerate(rows, start=1)
        ]
    )
    return schema.conform(frame)


def test_report_movement_and_the_json_report_key_on_media_type_and_id() -> None:
    before = _day([("movie", 7), ("tv", 9), ("tv", 7)])
    today = _day([("tv", 7), ("movie", 7), ("movie", 9)])
    movement = rm.compare(today, (dt.date(2026, 11, 24), before), top=3, climbers=5)
    assert [(e.media_type, e.id, e.previous_rank) for e in movement.top] == [
        ("tv", 7, 3),
        ("movie", 7, 1),
        ("movie", 9, None),
    ]
    assert [(e.media_type, e.id) for e in movement.new_in_top] == [("movie", 9)]
    assert [(d.previous.media_type, d.previous.id) for d in movement.dropped] == [("tv", 9)]
    assert entry(movement.top[0], True)["media_type"] == "tv"
    assert len(rm.entries(today)) == 3


def test_the_trend_keeps_a_movie_and_a_show_with_the_same_id_apart() -> None:
    first, last = dt.date(2026, 11, 24), dt.date(2026, 11, 25)
    frames = [_day([("movie", 7), ("tv", 8), ("tv", 7)]), _day([("tv", 7), ("movie", 7), ("tv", 8)])]
    reads = [trends.DayRead(day, "ok", trends.slim(f)) for day, f in zip((first, last), frames, strict=True)]
    model = trends.build(ALL, reads, top_n=3)
    found = model.find("7")
    assert [(t.media_type, t.id, t.ranks) for t in found] == [("movie", 7, (1, 2)), ("tv", 7, (3, 1))]
    assert [(t.media_type, t.id, t.change) for t in model.top] == [("tv", 7, 2), ("movie", 7, -1), ("tv", 8, -1)]


# -- defect 6: poisoned records -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (bare_movie(2**70), "id_out_of_range"),
        (bare_movie(2**63), "id_out_of_range"),
        (bare_movie(-3), "id_out_of_range"),
        (bare_movie(3, vote_count=2**63), "vote_count_out_of_range"),
        (bare_movie(3, title="broken \ud83e emoji"), "invalid_text"),
        (bare_movie(3, original_language="e\udcff"), "invalid_text"),
        (bare_movie(3, media_type=[]), "unknown_media_type"),
        (bare_movie(3, media_type={"x": 1}), "unknown_media_type"),
        (bare_movie(3, popularity=10**400), "non_numeric_popularity"),
        (bare_movie(3, popularity=float("inf")), "non_numeric_popularity"),
    ],
)
async def test_each_poisoned_record_is_dropped_counted_and_named(
    item: dict[str, Any], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="stages.transformers.standardize")
    frame, transformer = await clean(_context(), [{"page": 4, "results": [bare_movie(1), item]}])
    assert frame["id"].tolist() == [1]
    assert dict(transformer.statistics()) == {reason: 1}
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith("page 4, rank 62, id ") and f"dropped ({reason}" in warning


async def test_numbers_that_fit_are_stored_exactly() -> None:
    item = bare_movie(INT64_MAX, vote_count=INT64_MAX, vote_average=10**30, genre_ids=[2**70, 28, True, "12"])
    frame, transformer = await clean(_context(), [{"page": 1, "results": [item]}])
    assert (int(frame.loc[0, "id"]), int(frame.loc[0, "vote_count"])) == (INT64_MAX, INT64_MAX)
    assert frame.loc[0, "genre_ids"] == "28" and frame.loc[0, "vote_average"] == 1e30
    assert not transformer.statistics()
    back = formats.decode("csv", formats.new_encoder("csv").encode(frame))
    assert back["id"].tolist() == [INT64_MAX]


# Arbitrary JSON values, with the numbers and strings that broke the transformer before.
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**62, max_value=2**80)
    | st.integers(max_value=-(2**62), min_value=-(2**80))
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.sampled_from(["movie", "tv", "person", "", "\ud83e", "a\rb", "2024-02-30", "2024-01-05", "/p.jpg"])
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
_fields = st.sampled_from(
    [
        "id",
        "title",
        "name",
        "original_title",
        "original_name",
        "original_language",
        "release_date",
        "first_air_date",
        "popularity",
        "vote_average",
        "vote_count",
        "genre_ids",
        "media_type",
        "poster_path",
    ]
)
_records = st.one_of(
    st.dictionaries(_fields, _json, max_size=14),
    st.fixed_dictionaries({"id": st.integers(min_value=1, max_value=2**40), "popularity": st.floats(0, 1e6)}).flatmap(
        lambda base: st.dictionaries(_fields, _json, max_size=14).map(lambda extra: {**extra, **base})
    ),
    _json,
)


def _stored_from(row: dict[str, Any], source: dict[str, Any]) -> bool:
    """Whether ``row`` holds ``source``'s title, vote count and popularity exactly."""
    sent = source.get("title" if row["media_type"] == "movie" else "name")
    if row["title"] != (sent if isinstance(sent, str) else ""):
        return False
    votes = source.get("vote_count")
    if isinstance(votes, int) and not isinstance(votes, bool) and row["vote_count"] != votes:
        return False
    return bool(row["popularity"] == float(source["popularity"]))


# derandomize: the same 80 examples on every machine, so CI is reproducible. To explore further, run it
# with derandomize=False and a larger max_examples (500 random examples passed when this was set).
@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(_records, min_size=1, max_size=6), feed=st.sampled_from([Feed(), Feed("tv"), ALL]))
async def test_no_record_can_fail_a_page_or_be_stored_wrong(records: list[Any], feed: Feed) -> None:
    frame, transformer = await clean(_context(), [{"page": 2, "results": records}], feed)
    assert len(frame) + sum(transformer.statistics().values()) == len(records)
    assert list(frame.columns) == list(schema.COLUMN_NAMES)
    kept = [r for r in records if isinstance(r, dict) and any(int(i) == r.get("id") for i in frame["id"])]
    for row in frame.to_dict("records"):
        # Records sharing an id may have been dropped (another media type, a duplicate): the row
        # must be stored exactly from one of them.
        sources = [r for r in kept if r.get("id") == row["id"]]
        assert sources and all(isinstance(r["id"], int) for r in sources)  # never wrapped or rounded
        assert any(_stored_from(row, source) for source in sources), (row, sources)
    # Whatever was kept is stored, and reads back equal, in every format.
    for fmt in ("csv", "parquet"):
        encoder = formats.new_encoder(fmt)
        data = encoder.encode(frame) + encoder.finish()
        assert_same_frame(formats.decode(fmt, data), frame if len(frame) else schema.empty_frame())


# -- defect 7: control characters -----------------------------------------------------------------
CONTROLS = [chr(c) for c in [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029, 0xFEFF]]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
async def test_every_control_character_round_trips(fmt: str) -> None:
    items = [bare_movie(n + 1, title=f"a{c}b", original_title=c) for n, c in enumerate(CONTROLS)]
    items.append(bare_movie(999, title="\r\n\r", original_title='"\r"'))
    frame, transformer = await clean(
        _context(), [{"page": 1, "results": items[:20]}, {"page": 2, "results": items[20:]}]
    )
    assert not transformer.statistics() and len(frame) == len(items)
    encoder = formats.new_encoder(fmt)
    data = encoder.encode(frame[:30]) + encoder.encode(frame[30:].reset_index(drop=True)) + encoder.finish()
    back = formats.decode(fmt, data)
    pd.testing.assert_frame_equal(back, frame)
    assert [t.encode() for t in back["title"]] == [t.encode() for t in frame["title"]]


def test_a_bare_carriage_return_is_quoted_and_rows_end_with_a_newline() -> None:
    frame = pd.DataFrame({"a": ["x\ry", "plain", 'q"\r'], "b": [1, 2, 3]})
    assert schema.to_csv_bytes(frame, header=True) == b'a,b\n"x\ry",1\nplain,2\n"q""\r",3\n'


# -- people: a person feed's records are untrusted too --------------------------------------------
PEOPLE_FEED = Feed("person", "day")
_person_fields = st.sampled_from(
    [
        "id",
        "name",
        "original_name",
        "known_for_department",
        "gender",
        "popularity",
        "adult",
        "known_for",
        "profile_path",
        "media_type",
    ]
)
_known_for = st.lists(
    st.fixed_dictionaries(
        {"media_type": st.sampled_from(["movie", "tv", "person", None]), "id": _json},
        optional={"title": _json, "name": _json},
    )
    | _json,
    max_size=3,
)
_people = st.one_of(
    st.dictionaries(_person_fields, _json, max_size=10),
    st.fixed_dictionaries(
        {"id": st.integers(min_value=1, max_value=2**40), "popularity": st.floats(0, 1e6) | st.just(0)},
        optional={
            "name": st.text(),
            "known_for_department": st.none() | st.text(max_size=8),
            "profile_path": st.none() | st.text(max_size=8),
            "known_for": _known_for,
            "gender": _json,
        },
    ),
    _json,
)


def _person_stored_from(row: dict[str, Any], source: dict[str, Any]) -> bool:
    """Whether ``row`` holds ``source``'s popularity, name and department exactly ("" for what is not text)."""
    name, department = source.get("name"), source.get("known_for_department")
    return (
        isinstance(source.get("popularity"), int | float)
        and row["popularity"] == float(source["popularity"])
        and row["name"] == (name if isinstance(name, str) else "")
        and row["known_for_department"] == (department if isinstance(department, str) else "")
    )


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(_people, min_size=1, max_size=6))
async def test_no_person_record_can_fail_a_page_or_be_stored_wrong(records: list[Any]) -> None:
    frame, transformer = await clean(_context(), [{"page": 3, "results": records}], PEOPLE_FEED)
    assert len(frame) + sum(transformer.statistics().values()) == len(records)
    assert list(frame.columns) == list(schema.PEOPLE.column_names)
    for row in frame.to_dict("records"):
        sources = [r for r in records if isinstance(r, dict) and r.get("id") == row["id"]]
        assert any(_person_stored_from(row, source) for source in sources), (row, sources)
        pairs = [p.split(":") for p in row["known_for"].split("|")] if row["known_for"] else []
        assert len(pairs) == len(json.loads(row["known_for_titles"]))  # the two encodings stay in step
        assert all(media in ("movie", "tv") and int(i) >= 0 for media, i in pairs)
    if not len(frame):
        return
    for fmt in ("csv", "parquet"):
        encoder = formats.new_encoder(fmt, schema.PEOPLE)
        data = encoder.encode(frame) + encoder.finish()
        assert_same_frame(formats.decode(fmt, data, schema.PEOPLE), frame)
