"""The cleaned schema's CSV codec and conforming, edge by edge."""

from __future__ import annotations

import datetime as dt
import io
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.datalake import schema
from tests.support.frames import assert_same_frame
from tests.support.lake import rows

DAY = dt.date(2026, 11, 25)


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False, lineterminator="\n").encode()


def test_an_empty_frame_has_the_schemas_columns_and_dtypes_and_is_new_each_time() -> None:
    first = schema.empty_frame()
    assert tuple(first.columns) == schema.COLUMN_NAMES and len(first) == 0
    assert {name: str(dtype) for name, dtype in first.dtypes.items()} == schema.DTYPES
    first["title"] = first["title"].astype(object)
    assert str(schema.empty_frame()["title"].dtype) == "string"


def test_a_conformed_frame_is_returned_as_it_is() -> None:
    frame = rows(DAY, range(1, 3))
    assert schema.conform(frame) is frame


def test_a_frame_with_the_right_columns_but_loose_dtypes_is_cast() -> None:
    loose = rows(DAY, range(1, 3)).astype({"rank": "float64", "title": object})
    conformed = schema.conform(loose)
    assert conformed is not loose
    assert str(conformed["rank"].dtype) == "int64" and str(conformed["title"].dtype) == "string"
    assert conformed["rank"].tolist() == [1, 2]


def test_columns_are_put_in_schema_order_and_extra_ones_dropped() -> None:
    frame = rows(DAY, range(1, 3))
    shuffled = frame[list(reversed(schema.COLUMN_NAMES))].assign(extra=1)
    pd.testing.assert_frame_equal(schema.conform(shuffled), frame)


def test_missing_columns_are_named() -> None:
    frame = rows(DAY, range(1, 3)).drop(columns=["rank", "genres"])
    with pytest.raises(ValueError, match=r"frame lacks schema columns: rank, genres$"):
        schema.conform(frame)


_INT64 = st.integers(-(2**63), 2**63 - 1)
_KINDS = {
    "string": st.text(),
    "int64": _INT64,
    "float64": st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False), _INT64),
}


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries({c.name: _KINDS[c.dtype] for c in schema.COLUMNS}, optional={"extra": st.integers()}),
        min_size=1,
        max_size=5,
    )
)
def test_a_frame_from_rows_is_the_frame_conform_makes_of_them(records: list[dict[str, object]]) -> None:
    built, cast = schema.frame_from_rows(records), schema.conform(pd.DataFrame(records))
    assert_same_frame(built, cast)
    assert schema.conform(built) is built
    assert schema.to_csv_bytes(built, header=True) == schema.to_csv_bytes(cast, header=True)


@pytest.mark.parametrize("header", [True, False], ids=["header", "no-header"])
def test_a_large_chunk_is_written_in_slices_as_one_csv(header: bool) -> None:
    frame = rows(DAY, range(1, schema.WRITE_CHUNK_ROWS * 2 + 2))
    expected = frame.to_csv(index=False, header=header, lineterminator="\n").encode()
    assert schema.to_csv_bytes(frame, header=header) == expected


def test_a_chunk_is_written_without_its_index() -> None:
    frame = rows(DAY, range(1, 3))
    frame.index = pd.Index([7, 8])
    assert schema.to_csv_bytes(frame, header=False).startswith(b"2026-11-25,1,1,")


def test_a_bare_carriage_return_is_quoted_and_rows_end_with_a_newline() -> None:
    frame = rows(DAY, range(1, 4))
    frame.loc[0, "title"] = "a\rb"
    frame.loc[1, "title"] = 'say "hi"\r\n'
    data = schema.to_csv_bytes(frame, header=True)
    assert b'"a\rb"' in data and b'"say ""hi""\r\n"' in data
    outside_quotes = re.sub(rb'"[^"]*"', b"", data)
    assert b"\r" not in outside_quotes and outside_quotes.count(b"\n") == 4  # the header and three rows
    pd.testing.assert_frame_equal(schema.read_csv_bytes(data), frame)


def test_a_frame_with_a_carriage_return_is_written_without_its_index() -> None:
    frame = rows(DAY, range(1, 2))
    frame.loc[0, "genres"] = "x\ry"
    frame.index = pd.Index([5])
    assert schema.to_csv_bytes(frame, header=False).startswith(b"2026-11-25,1,1,")


@pytest.mark.parametrize(
    ("column", "dtype", "message"),
    [
        ("title", object, "id 2: column 'title' holds text that is not valid Unicode"),
        ("genres", pd.StringDtype("python"), "id 2: column 'genres' holds text that is not valid Unicode"),
        ("genres", pd.StringDtype("python", na_value=np.nan), "id 2: column 'genres' holds text"),
    ],
    ids=["object", "string", "str"],
)
def test_a_lone_surrogate_is_named_by_the_rows_id_and_its_column(column: str, dtype: object, message: str) -> None:
    frame = rows(DAY, range(1, 4)).astype({column: dtype})
    frame.loc[1, column] = "bad \ud800"
    with pytest.raises(ValueError, match=message):
        schema.to_csv_bytes(frame, header=True)


def test_without_an_id_column_the_row_number_is_named() -> None:
    frame = pd.DataFrame({"a": ["ok", "ok", "bad \udc80"]}, dtype=pd.StringDtype("python"))
    with pytest.raises(ValueError, match=r"^row 3: column 'a' holds"):
        schema.to_csv_bytes(frame, header=True)


def test_a_lone_surrogate_outside_the_cells_still_gets_a_message() -> None:
    frame = pd.DataFrame([[1, 2]], columns=pd.Index(["id", "n\ud800"], dtype=object))
    with pytest.raises(ValueError, match=r"^text that is not valid Unicode \(a lone surrogate\)$"):
        schema.to_csv_bytes(frame, header=True)


def test_blank_cells_read_as_missing_numbers_but_empty_text_and_na_stays_text() -> None:
    frame = rows(DAY, range(1, 6))
    frame.loc[0, "popularity"] = float("nan")
    frame.loc[1, "title"] = ""
    frame.loc[2, "title"] = "NA"
    back = schema.read_csv_bytes(_csv(frame))
    assert pd.isna(back.loc[0, "popularity"])
    assert back["title"].tolist()[1:3] == ["", "NA"]
    assert not back["title"].isna().any()
    pd.testing.assert_frame_equal(back, frame)


@pytest.mark.parametrize("data", [b"", _csv(schema.empty_frame())], ids=["no-bytes", "header-only"])
def test_an_empty_file_reads_as_an_empty_frame_of_the_schema(data: bytes) -> None:
    pd.testing.assert_frame_equal(schema.read_csv_bytes(data), schema.empty_frame())


@pytest.mark.parametrize("count", [1, schema.READ_CHUNK_ROWS + 1], ids=["one-chunk", "two-chunks"])
def test_a_file_reads_back_whole_whatever_its_chunks(count: int) -> None:
    frame = rows(DAY, range(1, count + 1))
    back = schema.read_csv_bytes(_csv(frame))
    assert isinstance(back.index, pd.RangeIndex) and back.index.equals(pd.RangeIndex(count))
    pd.testing.assert_frame_equal(back, frame)


def test_the_markdown_table_numbers_the_columns_and_escapes_pipes() -> None:
    lines = schema.markdown_table().split("\n")
    assert lines[:3] == [
        "| # | column | pandas dtype | meaning |",
        "|---:|---|---|---|",
        "| 1 | `trend_date` | `string` | The partition date (UTC) the list is for, `YYYY-MM-DD`. |",
    ]
    assert len(lines) == 2 + len(schema.COLUMNS)
    assert lines[12] == "| 11 | `genre_ids` | `string` | TMDB genre ids, `\\|`-joined, e.g. `28\\|12`. |"


def test_the_arrow_schema_types_each_kind() -> None:
    arrow = schema.arrow_schema()
    assert arrow.names == list(schema.COLUMN_NAMES)
    assert [arrow.field(name).type for name in ("release_date", "rank", "popularity", "title", "extracted_at")] == [
        pa.date32(),
        pa.int64(),
        pa.float64(),
        pa.string(),
        pa.timestamp("us", tz="UTC"),
    ]


def test_text_round_trips_through_the_csv_byte_for_byte() -> None:
    frame = rows(DAY, range(1, 3))
    frame.loc[0, "title"] = ' lead, "quoted"\n trail '
    data = schema.to_csv_bytes(frame, header=True)
    assert pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)["title"][0] == ' lead, "quoted"\n trail '
