"""DuckDB (a test dependency only) reads the local lake as the README shows: rows and types as written."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from pipeline.datalake import schema
from pipeline.stage import Feed
from tests.support.fakes import commit_info
from tests.support.lake import loader_for, rows

# What DuckDB should infer for each schema kind, in both formats.
DUCKDB_TYPES = {
    "date": "DATE",
    "int": "BIGINT",
    "float": "DOUBLE",
    "string": "VARCHAR",
    "timestamp": "TIMESTAMP WITH TIME ZONE",
}
DAYS = [
    (dt.date(2026, 10, 31), Feed("movie", "day")),
    (dt.date(2026, 11, 24), Feed("movie", "day")),
    (dt.date(2026, 11, 25), Feed("movie", "day")),
    (dt.date(2026, 11, 25), Feed("tv", "week")),
]
READERS = {"csv": "read_csv", "parquet": "read_parquet"}


async def build_lake(root: Path, fmt: str, layout: str) -> pd.DataFrame:
    """Write DAYS through the loader; return every row written."""
    written = []
    for n, (day, feed) in enumerate(DAYS):
        frame = rows(day, range(n * 100, n * 100 + 12), title="Title, {id}")
        frame["media_type"] = feed.media_type
        frame["time_window"] = feed.time_window
        frame = schema.conform(frame)
        async with loader_for(root, fmt, layout, day) as loader:
            loader_day = await loader.begin(feed)
            await loader_day.write(frame.iloc[:5])
            await loader_day.write(frame.iloc[5:])
            await loader_day.commit(commit_info(loader))
        written.append(frame)
    return pd.concat(written, ignore_index=True)


def expected_rows(frame: pd.DataFrame, fmt: str) -> list[tuple[Any, ...]]:
    """The written rows as the Python values DuckDB returns."""

    def value(kind: str, v: Any) -> Any:
        if kind == "date":
            return dt.date.fromisoformat(v) if v else None
        if kind == "timestamp":
            return dt.datetime.fromisoformat(v)
        if kind == "float":
            return None if math.isnan(v) else v
        if kind == "string" and v == "" and fmt == "csv":
            return None  # CSV cannot tell an empty string from a missing one; DuckDB reads both as NULL
        return v

    return sorted(
        (tuple(value(c.kind, record[c.name]) for c in schema.COLUMNS) for record in frame.to_dict("records")),
        key=lambda r: (r[0], r[11], r[12], r[1]),
    )


def query(sql: str) -> tuple[list[str], list[str], list[tuple[Any, ...]]]:
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        relation = con.sql(sql)
        return relation.columns, [str(t) for t in relation.types], relation.fetchall()


COLUMN_LIST = ", ".join(schema.COLUMN_NAMES)
ORDER = "ORDER BY trend_date, media_type, time_window, rank"


def assert_reads_back(written: pd.DataFrame, fmt: str, source: str, columns: str) -> None:
    """DuckDB reads every written row from ``source``, in order, with the schema's names and types."""
    names, types, got = query(f"SELECT {columns} FROM {source} {ORDER}")
    assert names == list(schema.COLUMN_NAMES)
    assert types == [DUCKDB_TYPES[c.kind] for c in schema.COLUMNS]
    assert got == expected_rows(written, fmt)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
async def test_duckdb_reads_a_hive_lake_with_hive_partitioning(tmp_path: Path, fmt: str) -> None:
    written = await build_lake(tmp_path, fmt, "hive")
    source = f"{READERS[fmt]}('{tmp_path}/cleaned_data/**/*.{fmt}', hive_partitioning = true)"

    assert_reads_back(written, fmt, source, COLUMN_LIST)

    _, _, partitions = query(
        f"SELECT DISTINCT media_type, time_window, year, month, day, trend_date FROM {source} ORDER BY ALL"
    )
    assert partitions == sorted(
        (feed.media_type, feed.time_window, day.year, day.month, day.day, day) for day, feed in DAYS
    )
    _, _, pruned = query(f"SELECT count(*) FROM {source} WHERE media_type = 'tv' AND year = 2026 AND month = 11")
    assert pruned == [(12,)]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
async def test_duckdb_reads_a_monthly_lake_with_a_glob(tmp_path: Path, fmt: str) -> None:
    written = await build_lake(tmp_path, fmt, "monthly")
    source = f"{READERS[fmt]}('{tmp_path}/cleaned_data/*/*/*.{fmt}')"

    assert_reads_back(written, fmt, source, "*")
