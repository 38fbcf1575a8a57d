"""The lake contract in every format and layout: local × {csv, parquet} × {monthly, hive}."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipeline.datalake import Layout, formats, schema
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


async def write_day(
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
        await loader.begin(FEED)
        for chunk in chunks:
            await loader.write(chunk)
        return await loader.commit(commit_info(loader))


def expected_files(keys: dict[str, str], fmt: str, layout: str, run_id: str = "run-25") -> list[str]:
    """The reader-facing keys plus the day's immutable version object."""
    version = Layout("", layout, fmt).run_key("version", DAY, FEED, run_id)  # type: ignore[arg-type]
    return sorted([*keys.values(), version])


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("fmt", "layout", "keys"), COMBOS)
async def test_a_day_is_written_where_the_layout_says_and_reads_back_identically(
    tmp_path: Path, fmt: str, layout: str, keys: dict[str, str]
) -> None:
    written = [rows(DAY, range(100, 120)), rows(DAY, range(200, 220)), rows(DAY, range(300, 305))]
    outputs = await write_day(tmp_path, fmt, layout, DAY, written)

    assert sorted(files(tmp_path)) == expected_files(keys, fmt, layout)
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
    await write_day(tmp_path, fmt, layout, DAY, [rows(DAY, range(1, 21))])
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
    await write_day(tmp_path, fmt, layout, PREVIOUS, [rows(PREVIOUS, range(1, 21))])
    await write_day(tmp_path, fmt, layout, DAY, [rows(DAY, range(1, 11))])
    before = files(tmp_path)

    # A re-run of DAY that fails half-way, and a first run of a new day that fails: both abort.
    for day in (DAY, DAY + dt.timedelta(days=1)):
        async with loader_for(tmp_path, fmt, layout, day, "failing") as loader:
            await loader.begin(FEED)
            await loader.write(rows(day, range(500, 520)))
            await loader.write(rows(day, range(600, 620)))
            await loader.abort()

    assert files(tmp_path) == before, "aborted days must leave no files (nor temp files) and change nothing"
    reader = loader_for(tmp_path, fmt, layout)
    today = await reader.read_day(DAY, FEED)
    assert today is not None and today["id"].tolist() == list(range(1, 11))
    assert await reader.read_day(DAY + dt.timedelta(days=1), FEED) is None


@pytest.mark.parametrize(("fmt", "layout"), FORMAT_LAYOUTS)
async def test_re_running_a_day_replaces_it(tmp_path: Path, fmt: str, layout: str) -> None:
    await write_day(tmp_path, fmt, layout, DAY, [rows(DAY, range(1, 21)), rows(DAY, range(21, 41))], "first")
    second = [rows(DAY, range(900, 905), title="Second run {id}")]
    await write_day(tmp_path, fmt, layout, DAY, second, "second", force=True)
    await write_day(tmp_path, fmt, layout, DAY, second, "third")

    layout_ = Layout("", layout, fmt)  # type: ignore[arg-type]
    names = sorted(files(tmp_path))
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
    await write_day(tmp_path, fmt, layout, DAY, [], force=True)
    back = await loader_for(tmp_path, fmt, layout).read_day(DAY, FEED)
    assert back is not None and len(back) == 0
    assert list(back.columns) == list(schema.COLUMN_NAMES)
    assert back.dtypes.to_dict() == schema.empty_frame().dtypes.to_dict()


@pytest.mark.parametrize(("fmt", "layout"), FORMAT_LAYOUTS)
async def test_a_day_reads_in_the_format_its_manifest_names_and_another_layout_is_a_gap(
    tmp_path: Path, fmt: str, layout: str
) -> None:
    written = rows(DAY, range(1, 4))
    await write_day(tmp_path, fmt, layout, DAY, [written])
    other_format = "csv" if fmt == "parquet" else "parquet"
    other_layout = "hive" if layout == "monthly" else "monthly"
    back = await loader_for(tmp_path, other_format, layout).read_day(DAY, FEED)
    assert back is not None, "the manifest says which format the day was written in"
    pd.testing.assert_frame_equal(back, written)
    assert await loader_for(tmp_path, fmt, other_layout).read_day(DAY, FEED) is None


async def test_parquet_columns_are_typed_as_the_schema_says_and_compressed_with_zstd(tmp_path: Path) -> None:
    outputs = await write_day(tmp_path, "parquet", "monthly", DAY, [rows(DAY, range(1, 7))])
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
    await write_day(tmp_path, fmt, layout, DAY, chunks)
    back = await loader_for(tmp_path, fmt, layout).read_day(DAY, FEED)
    assert back is not None
    pd.testing.assert_frame_equal(back, whole)


async def test_a_value_parquet_cannot_hold_is_a_load_error_naming_the_column(tmp_path: Path) -> None:
    bad = rows(DAY, range(1, 3))
    bad.loc[0, "release_date"] = "02/01/2026"
    async with loader_for(tmp_path, "parquet", "hive") as loader:
        await loader.begin(FEED)
        await loader.write(bad)  # queued: pages are encoded a few thousand rows at a time
        with pytest.raises(LoadError, match="release_date"):
            await loader.commit(commit_info(loader))
        await loader.abort()
    assert files(tmp_path) == {}


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
