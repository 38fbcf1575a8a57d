"""The cleaned zone's encoders and decoders, edge by edge (docs/testing.md, mutation testing)."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import sys
import time
from collections.abc import Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.datalake import formats, schema
from pipeline.datalake.formats import CsvEncoder, ParquetEncoder, _Drain
from pipeline.errors import ConfigError
from tests.support.lake import rows

DAY = dt.date(2026, 11, 25)


def test_without_pyarrow_parquet_is_a_config_error_that_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ConfigError, match=r"needs pyarrow.*make run EXTRAS=parquet"):
        formats.require_pyarrow()


def test_with_pyarrow_the_module_is_returned() -> None:
    assert formats.require_pyarrow() is pa


@pytest.mark.parametrize(
    ("fmt", "kind", "content_type"),
    [("csv", CsvEncoder, "text/csv; charset=utf-8"), ("parquet", ParquetEncoder, "application/vnd.apache.parquet")],
)
def test_each_format_has_its_encoder_and_content_type(fmt: str, kind: type, content_type: str) -> None:
    encoder = formats.new_encoder(fmt)
    assert type(encoder) is kind and encoder.format == fmt
    assert encoder.content_type == content_type


@pytest.mark.parametrize("call", [formats.new_encoder, lambda fmt: formats.decode(fmt, b"")], ids=["encode", "decode"])
def test_an_unknown_format_is_named_with_the_known_ones(call: object) -> None:
    with pytest.raises(ValueError, match=r"unknown format 'json'; known: csv, parquet$"):
        call("json")  # type: ignore[operator]


def test_csv_writes_the_header_once_before_the_first_chunk() -> None:
    frame = rows(DAY, range(1, 5))
    encoder = CsvEncoder()
    data = encoder.encode(frame.iloc[:2]) + encoder.encode(frame.iloc[2:]) + encoder.finish()
    assert data == schema.to_csv_bytes(frame, header=True)
    assert encoder.finish() == b""


def test_an_empty_csv_day_is_its_header_alone() -> None:
    header = (",".join(schema.COLUMN_NAMES) + "\n").encode()
    assert CsvEncoder().finish() == header
    encoder = CsvEncoder()
    assert encoder.encode(schema.empty_frame()) == header
    assert encoder.finish() == b""


def test_the_drain_counts_across_drains_and_closes() -> None:
    drain = _Drain()
    assert (drain.tell(), drain.closed) == (0, False)
    assert drain.write(memoryview(b"abc")) == 3
    assert drain.write(b"de") == 2
    assert drain.drain() == b"abcde" and drain.drain() == b""
    drain.write(bytearray(b"f"))
    drain.flush()
    assert drain.tell() == 6 and drain.drain() == b"f"
    drain.close()
    assert drain.closed


def _parquet(chunks: list[pd.DataFrame], row_group_rows: int) -> tuple[list[bytes], bytes]:
    encoder = ParquetEncoder(row_group_rows=row_group_rows)
    streamed = [encoder.encode(chunk) for chunk in chunks]
    return streamed, encoder.finish()


def test_parquet_row_groups_close_once_enough_rows_are_held() -> None:
    frame = rows(DAY, range(1, 9))
    bounds = [0, 2, 3, 4, 6, 7, 8]  # chunks of 2, 1, 1, 2, 1, 1 rows
    chunks = [frame.iloc[a:b] for a, b in itertools.pairwise(bounds)]
    streamed, last = _parquet(chunks, row_group_rows=4)
    data = b"".join(streamed) + last
    metadata = pq.ParquetFile(io.BytesIO(data)).metadata
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [4, 4]
    assert [bool(part) for part in streamed] == [True, False, True, False, False, True]  # PAR1, then each group
    assert metadata.metadata is None  # no serialized Arrow schema in the footer
    assert metadata.row_group(0).column(0).compression == "ZSTD"
    pd.testing.assert_frame_equal(formats.decode("parquet", data), frame)


def test_an_empty_chunk_adds_nothing_and_an_empty_parquet_day_reads_back_empty() -> None:
    streamed, last = _parquet([schema.empty_frame()], row_group_rows=1)
    data = b"".join(streamed) + last
    assert pq.ParquetFile(io.BytesIO(data)).metadata.num_rows == 0
    pd.testing.assert_frame_equal(formats.decode("parquet", data), schema.empty_frame())


def test_one_parquet_row_reads_back() -> None:
    frame = rows(DAY, range(7, 8))
    streamed, last = _parquet([frame], row_group_rows=10)
    pd.testing.assert_frame_equal(formats.decode("parquet", b"".join(streamed) + last), frame)


def test_blank_and_missing_dates_and_text_read_back_as_empty_strings() -> None:
    frame = rows(DAY, range(1, 4))
    frame["release_date"] = pd.array(["", None, "2026-01-02"], dtype="string")
    frame["extracted_at"] = pd.array([None, "", "2026-11-25T12:00:04+00:00"], dtype="string")
    frame["title"] = pd.array([None, "", "x"], dtype="string")
    frame["popularity"] = [float("nan"), 1.0, 2.0]
    frame["vote_average"] = float("nan")  # a column of nulls only
    batch = formats.to_arrow(frame, schema.arrow_schema())
    assert batch.column("release_date").to_pylist() == [None, None, dt.date(2026, 1, 2)]
    assert batch.column("title").to_pylist() == [None, "", "x"]
    streamed, last = _parquet([frame], row_group_rows=10)
    back = formats.decode("parquet", b"".join(streamed) + last)
    assert back["release_date"].tolist() == ["", "", "2026-01-02"]
    assert back["extracted_at"].tolist() == ["", "", "2026-11-25T12:00:04+00:00"]
    assert back["title"].tolist() == ["", "", "x"]
    assert str(back["popularity"].dtype) == "float64" and pd.isna(back["popularity"][0])
    pd.testing.assert_frame_equal(
        back.drop(columns=["release_date", "extracted_at", "title"]),
        frame.drop(columns=["release_date", "extracted_at", "title"]),
    )


@pytest.fixture
def far_from_utc() -> Iterator[None]:
    """Local time 5 hours behind UTC, so a naive time taken as local would shift."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TZ", "EST+05")
        time.tzset()
        yield
    time.tzset()


@pytest.mark.usefixtures("far_from_utc")
def test_timestamps_are_stored_in_utc_and_a_naive_one_is_taken_as_utc() -> None:
    frame = rows(DAY, range(1, 3))
    frame["extracted_at"] = pd.array(["2026-11-25T12:00:00", "2026-11-25T12:00:00+01:00"], dtype="string")
    batch = formats.to_arrow(frame, schema.arrow_schema())
    assert batch.column("extracted_at").to_pylist() == [
        dt.datetime(2026, 11, 25, 12, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 25, 11, tzinfo=dt.UTC),
    ]


def test_a_concatenated_frame_with_chunked_text_is_one_record_batch() -> None:
    frame = pd.concat([rows(DAY, range(1, 3)), rows(DAY, range(3, 5))], ignore_index=True)
    batch = formats.to_arrow(frame, schema.arrow_schema())
    assert batch.num_rows == 4 and batch.column("title").to_pylist() == [f"Title {i}" for i in range(1, 5)]


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("release_date", "2026-13-01", "column 'release_date' cannot be written as date32"),
        ("extracted_at", "noon", "column 'extracted_at' cannot be written as timestamp"),
    ],
)
def test_a_value_the_schema_cannot_hold_names_its_column(column: str, value: str, message: str) -> None:
    frame = rows(DAY, range(1, 3))
    frame[column] = pd.array([value, value], dtype="string")
    with pytest.raises(ValueError, match=message):
        formats.to_arrow(frame, schema.arrow_schema())


def test_csv_decodes_through_the_schema() -> None:
    frame = rows(DAY, range(1, 4))
    pd.testing.assert_frame_equal(formats.decode("csv", schema.to_csv_bytes(frame, header=True)), frame)
