"""The lake contract in every format and layout: local × {csv, parquet} × {monthly, hive}."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import itertools
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.datalake import Layout, formats, schema
from pipeline.datalake.formats import CsvEncoder, ParquetEncoder, _Drain
from pipeline.errors import ConfigError, LoadError
from pipeline.options import build_options
from pipeline.stage import Feed
from stages.loaders.local import LocalOptions
from tests.support.fakes import commit_info
from tests.support.lake import loader_for, rows

DAY = dt.date(2026, 11, 25)
PREVIOUS = dt.date(2026, 11, 24)
FEED = Feed()

COMBOS = [
    pytest.param(
        "csv",
        "monthly",
        {
            "cleaned": "cleaned_data/2026/11/2026-11-25_movies.csv",
            "raw": "raw_data/2026/11/2026-11-25_movies.run-run-25.jsonl.gz",
            "manifest": "_manifests/2026/11/2026-11-25_movies.json",
        },
        id="csv-monthly",
    ),
    pytest.param(
        "parquet",
        "monthly",
        {
            "cleaned": "cleaned_data/2026/11/2026-11-25_movies.parquet",
            "raw": "raw_data/2026/11/2026-11-25_movies.run-run-25.jsonl.gz",
            "manifest": "_manifests/2026/11/2026-11-25_movies.json",
        },
        id="parquet-monthly",
    ),
    pytest.param(
        "csv",
        "hive",
        {
            "cleaned": "cleaned_data/media_type=movie/time_window=day/year=2026/month=11/day=25/part-0.csv",
            "raw": "raw_data/media_type=movie/time_window=day/year=2026/month=11/day=25/part-0.run-run-25.jsonl.gz",
            "manifest": "_manifests/media_type=movie/time_window=day/year=2026/month=11/day=25/manifest.json",
        },
        id="csv-hive",
    ),
    pytest.param(
        "parquet",
        "hive",
        {
            "cleaned": "cleaned_data/media_type=movie/time_window=day/year=2026/month=11/day=25/part-0.parquet",
            "raw": "raw_data/media_type=movie/time_window=day/year=2026/month=11/day=25/part-0.run-run-25.jsonl.gz",
            "manifest": "_manifests/media_type=movie/time_window=day/year=2026/month=11/day=25/manifest.json",
        },
        id="parquet-hive",
    ),
]
FORMAT_LAYOUTS = [pytest.param(*p.values[:2], id=p.id) for p in COMBOS]


async def commit_chunks(
    root: Path,
    fmt: str,
    layout: str,
    day: dt.date,
    chunks: list[pd.DataFrame],
    run_id: str | None = None,
    *,
    force: bool = False,
) -> dict[str, str]:
    async with loader_for(root, fmt, layout, day, run_id, force=force) as loader:
        loader_day = await loader.begin(FEED)
        for chunk in chunks:
            await loader_day.write(chunk)
        return dict((await loader_day.commit(commit_info(loader))).outputs)


def expected_files(keys: dict[str, str], fmt: str, layout: str, run_id: str = "run-25") -> list[str]:
    """The reader-facing keys plus the day's immutable version object."""
    version = Layout("", layout, fmt).run_key("version", DAY, FEED, run_id)  # type: ignore[arg-type]
    return sorted([*keys.values(), version])


def contents(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("fmt", "layout", "keys"), COMBOS)
async def test_a_day_is_written_where_the_layout_says_and_reads_back_identically(
    tmp_path: Path, fmt: str, layout: str, keys: dict[str, str]
) -> None:
    written = [rows(DAY, range(100, 120)), rows(DAY, range(200, 220)), rows(DAY, range(300, 305))]
    outputs = await commit_chunks(tmp_path, fmt, layout, DAY, written)

    assert sorted(contents(tmp_path)) == expected_files(keys, fmt, layout)
    assert outputs == {zone: str(tmp_path / key) for zone, key in keys.items()}
    back = await loader_for(tmp_path, fmt, layout).read_day(DAY, FEED)
    expected = pd.concat(written, ignore_index=True)
    assert back is not None
    assert back.dtypes.to_dict() == schema.empty_frame().dtypes.to_dict()
    pd.testing.assert_frame_equal(back, expected)


@pytest.mark.parametrize(("fmt", "layout", "keys"), COMBOS)
async def test_the_manifest_records_format_layout_and_the_stored_bytes(
    tmp_path: Path, fmt: str, layout: str, keys: dict[str, str]
) -> None:
    await commit_chunks(tmp_path, fmt, layout, DAY, [rows(DAY, range(1, 21))])
    manifest = json.loads((tmp_path / keys["manifest"]).read_text())
    assert (manifest["format"], manifest["layout"], manifest["rows"]) == (fmt, layout, 20)
    cleaned = manifest["objects"]["cleaned"]
    stored = (tmp_path / keys["cleaned"]).read_bytes()
    assert cleaned["key"] == keys["cleaned"]
    assert cleaned["sha256"] == hashlib.sha256(stored).hexdigest() and cleaned["bytes"] == len(stored)
    assert (
        cleaned["content_type"] == {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}[fmt]
    )


@pytest.mark.parametrize(("fmt", "layout"), FORMAT_LAYOUTS)
async def test_abort_leaves_nothing_new_and_earlier_days_intact(tmp_path: Path, fmt: str, layout: str) -> None:
    await commit_chunks(tmp_path, fmt, layout, PREVIOUS, [rows(PREVIOUS, range(1, 21))])
    await commit_chunks(tmp_path, fmt, layout, DAY, [rows(DAY, range(1, 11))])
    before = contents(tmp_path)

    # A re-run of DAY that fails half-way, and a first run of a new day that fails: both abort.
    for day in (DAY, DAY + dt.timedelta(days=1)):
        async with loader_for(tmp_path, fmt, layout, day, "failing") as loader:
            loader_day = await loader.begin(FEED)
            await loader_day.write(rows(day, range(500, 520)))
            await loader_day.write(rows(day, range(600, 620)))
            await loader_day.abort()

    assert contents(tmp_path) == before, "aborted days must leave no files (nor temp files) and change nothing"
    reader = loader_for(tmp_path, fmt, layout)
    today = await reader.read_day(DAY, FEED)
    assert today is not None and today["id"].tolist() == list(range(1, 11))
    assert await reader.read_day(DAY + dt.timedelta(days=1), FEED) is None


@pytest.mark.parametrize(("fmt", "layout"), FORMAT_LAYOUTS)
async def test_re_running_a_day_replaces_it(tmp_path: Path, fmt: str, layout: str) -> None:
    await commit_chunks(tmp_path, fmt, layout, DAY, [rows(DAY, range(1, 21)), rows(DAY, range(21, 41))], "first")
    second = [rows(DAY, range(900, 905), title="Second run {id}")]
    await commit_chunks(tmp_path, fmt, layout, DAY, second, "second", force=True)
    await commit_chunks(tmp_path, fmt, layout, DAY, second, "third")

    layout_ = Layout("", layout, fmt)  # type: ignore[arg-type]
    names = sorted(contents(tmp_path))
    runs = [layout_.run_key("raw", DAY, FEED, run) for run in ("first", "second", "third")]
    assert names == sorted(
        [
            layout_.key("cleaned", DAY, FEED),
            layout_.key("manifest", DAY, FEED),
            layout_.run_key("version", DAY, FEED, "third"),
            *runs,
        ]
    ), "one cleaned file, one manifest, the last run's version, and every run's raw pages (append-only)"
    back = await loader_for(tmp_path, fmt, layout).read_day(DAY, FEED)
    assert back is not None
    pd.testing.assert_frame_equal(back, second[0])


@pytest.mark.parametrize(("fmt", "layout"), FORMAT_LAYOUTS)
async def test_an_empty_day_reads_back_as_an_empty_frame_with_the_schema(tmp_path: Path, fmt: str, layout: str) -> None:
    await commit_chunks(tmp_path, fmt, layout, DAY, [], force=True)
    back = await loader_for(tmp_path, fmt, layout).read_day(DAY, FEED)
    assert back is not None and len(back) == 0
    assert list(back.columns) == list(schema.COLUMN_NAMES)
    assert back.dtypes.to_dict() == schema.empty_frame().dtypes.to_dict()


@pytest.mark.parametrize(("fmt", "layout"), FORMAT_LAYOUTS)
async def test_a_day_reads_in_the_format_its_manifest_names_and_another_layout_is_a_gap(
    tmp_path: Path, fmt: str, layout: str
) -> None:
    written = rows(DAY, range(1, 4))
    await commit_chunks(tmp_path, fmt, layout, DAY, [written])
    other_format = "csv" if fmt == "parquet" else "parquet"
    other_layout = "hive" if layout == "monthly" else "monthly"
    back = await loader_for(tmp_path, other_format, layout).read_day(DAY, FEED)
    assert back is not None, "the manifest says which format the day was written in"
    pd.testing.assert_frame_equal(back, written)
    assert await loader_for(tmp_path, fmt, other_layout).read_day(DAY, FEED) is None


async def test_parquet_columns_are_typed_as_the_schema_says_and_compressed_with_zstd(tmp_path: Path) -> None:
    outputs = await commit_chunks(tmp_path, "parquet", "monthly", DAY, [rows(DAY, range(1, 7))])
    path = Path(outputs["cleaned"])
    stored = pq.read_schema(path)
    assert {f.name: str(f.type) for f in stored} == {
        "trend_date": "date32[day]",
        "rank": "int64",
        "id": "int64",
        "title": "string",
        "original_title": "string",
        "original_language": "string",
        "release_date": "date32[day]",
        "popularity": "double",
        "vote_average": "double",
        "vote_count": "int64",
        "genre_ids": "string",
        "media_type": "string",
        "time_window": "string",
        "extracted_at": "timestamp[us, tz=UTC]",
        "genres": "string",
        "poster_url": "string",
    }
    table = pq.read_table(path)
    assert table.column("release_date").to_pylist()[:2] == [None, dt.date(2026, 1, 2)], "an empty date is null"
    assert table.column("vote_average").null_count == 2, "NaN is stored as null"
    assert table.column("extracted_at").to_pylist()[0] == dt.datetime(2026, 11, 25, 12, 0, 3, 120000, tzinfo=dt.UTC)
    metadata = pq.ParquetFile(path).metadata
    assert metadata.row_group(0).column(0).compression == "ZSTD"


def test_the_parquet_encoder_streams_row_groups_before_the_footer() -> None:
    encoder = formats.ParquetEncoder(row_group_rows=20)
    emitted = [encoder.encode(rows(DAY, range(start, start + 20))) for start in (1, 21, 41)]
    footer = encoder.finish()
    assert all(len(part) > 0 for part in emitted), "each full row group reaches the sink as its chunk arrives"
    data = b"".join(emitted) + footer
    assert data.startswith(b"PAR1") and data.endswith(b"PAR1")
    parquet = pq.ParquetFile(io.BytesIO(data))
    assert parquet.metadata.num_row_groups == 3 and parquet.metadata.num_rows == 60


def test_the_parquet_encoder_holds_small_chunks_until_a_row_group_is_worth_writing() -> None:
    encoder = formats.ParquetEncoder(row_group_rows=50)
    parts = [encoder.encode(rows(DAY, range(start, start + 20))) for start in (1, 21, 41)]
    parts.append(encoder.finish())
    assert [len(p) for p in parts[:2]] == [4, 0], "below the threshold only the magic bytes have gone out"
    assert len(parts[2]) > 0, "the third chunk crosses 50 rows and flushes one row group"
    parquet = pq.ParquetFile(io.BytesIO(b"".join(parts)))
    assert parquet.metadata.num_row_groups == 1 and parquet.metadata.num_rows == 60


@pytest.mark.parametrize(("fmt", "layout"), FORMAT_LAYOUTS)
async def test_chunks_sliced_from_a_concatenated_frame_are_written_as_well(
    tmp_path: Path, fmt: str, layout: str
) -> None:
    whole = schema.conform(pd.concat([rows(DAY, range(1, 31)), rows(DAY, range(31, 61))], ignore_index=True))
    chunks = [whole.iloc[start : start + 20] for start in range(0, 60, 20)]
    await commit_chunks(tmp_path, fmt, layout, DAY, chunks)
    back = await loader_for(tmp_path, fmt, layout).read_day(DAY, FEED)
    assert back is not None
    pd.testing.assert_frame_equal(back, whole)


async def test_a_value_parquet_cannot_hold_is_a_load_error_naming_the_column(tmp_path: Path) -> None:
    bad = rows(DAY, range(1, 3))
    bad.loc[0, "release_date"] = "02/01/2026"
    async with loader_for(tmp_path, "parquet", "hive") as loader:
        loader_day = await loader.begin(FEED)
        await loader_day.write(bad)  # queued: pages are encoded a few thousand rows at a time
        with pytest.raises(LoadError, match="release_date"):
            await loader_day.commit(commit_info(loader))
        await loader_day.abort()
    assert contents(tmp_path) == {}


def test_parquet_without_pyarrow_is_a_config_error_naming_the_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ConfigError, match=r"loader\.options\.format: .*needs pyarrow.*\[parquet\]"):
        build_options(LocalOptions, {"format": "parquet"}, "loader.options")
    build_options(LocalOptions, {"format": "csv"}, "loader.options")  # CSV never needs it


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"format": "orc"}, r"loader\.options\.format: must be one of 'csv', 'parquet', got 'orc'"),
        ({"layout": "daily"}, r"loader\.options\.layout: must be one of 'monthly', 'hive', got 'daily'"),
    ],
)
def test_unknown_format_or_layout_is_rejected(raw: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_options(LocalOptions, raw, "loader.options")


def test_options_without_format_fields_keep_the_default_lake() -> None:
    class Bare:
        prefix = "tmdb"

    assert Layout.for_options(Bare()) == Layout("tmdb", "monthly", "csv")
    assert Layout("tmdb").key("cleaned", DAY, Feed("tv", "week")) == "tmdb/cleaned_data/2026/11/2026-11-25_tv_week.csv"
    assert (
        Layout("tmdb", "hive", "parquet").key("manifest", DAY, Feed("tv", "week"))
        == "tmdb/_manifests/media_type=tv/time_window=week/year=2026/month=11/day=25/manifest.json"
    )


# == the cleaned zone's encoders and decoders, edge by edge ==================================================
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
