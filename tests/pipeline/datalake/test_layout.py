"""The key layout: prefixes, run tags, monthly and hive keys, lock keys, edge by edge."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from pipeline.datalake.layout import Layout, run_of, validate_prefix
from pipeline.errors import LoadError
from pipeline.options import OptionError
from pipeline.stage import Feed

DAY = dt.date(2026, 11, 5)
WEEK_TV = Feed("tv", "week")


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("", ""),
        ("tmdb", "tmdb"),
        ("tmdb/", "tmdb"),
        ("a/b/", "a/b"),
        ("a.b/c..d", "a.b/c..d"),
    ],
)
def test_a_valid_prefix_comes_back_without_its_trailing_slash(prefix: str, expected: str) -> None:
    assert validate_prefix(prefix) == expected


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ("/tmdb", "must not start with '/'"),
        ("a//b", "must not contain empty segments"),
        ("a//", "must not contain empty segments"),
        ("a/../b", "must not contain '.' or '..' segments"),
        ("./a", "must not contain '.' or '..' segments"),
        ("a/\tb", r"must not contain control characters \(U\+0009\)"),
    ],
)
def test_a_bad_prefix_is_refused_naming_the_key(prefix: str, message: str) -> None:
    with pytest.raises(OptionError, match=message) as caught:
        validate_prefix(prefix, "loader.options.prefix")
    assert caught.value.key == "loader.options.prefix"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("_versions/2026/11/2026-11-05_movies.run-abc_1-2.csv", "abc_1-2"),
        ("raw_data/x/part-0.run-r1.jsonl.gz", "r1"),
        ("cleaned_data/2026/11/2026-11-05_movies.csv", None),
        # only the file name counts: a folder that looks run-scoped does not make its files so
        ("odd.run-folder.x/2026-11-05_movies.csv", None),
        ("odd.run-folder.x/a/2026-11-05_movies.csv", None),
        ("run-less.run-ok.csv", "ok"),
    ],
)
def test_run_of_reads_the_run_id_from_the_file_name_only(key: str, expected: str | None) -> None:
    assert run_of(key) == expected


def test_layout_for_options_reads_each_field_and_defaults_the_missing_ones() -> None:
    assert Layout.for_options(SimpleNamespace()) == Layout("", "monthly", "csv")
    assert Layout.for_options(SimpleNamespace(prefix=None)) == Layout("", "monthly", "csv")
    full = SimpleNamespace(prefix="p", layout="hive", format="parquet")
    assert Layout.for_options(full) == Layout("p", "hive", "parquet")


def test_monthly_keys_with_and_without_a_prefix() -> None:
    bare = Layout()
    assert bare.root("cleaned") == "cleaned_data"
    assert bare.key("cleaned", DAY, Feed()) == "cleaned_data/2026/11/2026-11-05_movies.csv"
    assert bare.key("raw", DAY, Feed()) == "raw_data/2026/11/2026-11-05_movies.jsonl.gz"
    assert bare.key("manifest", DAY, WEEK_TV) == "_manifests/2026/11/2026-11-05_tv_week.json"
    prefixed = Layout("p/q", "monthly", "parquet")
    assert prefixed.key("cleaned", DAY, WEEK_TV) == "p/q/cleaned_data/2026/11/2026-11-05_tv_week.parquet"
    assert prefixed.root("lock") == "p/q/_locks"


def test_monthly_keys_of_people_are_one_folder_down() -> None:
    assert Layout().key("cleaned", DAY, Feed("person", "day")) == "cleaned_data/people/2026/11/2026-11-05_people.csv"
    assert Layout("p").key("manifest", DAY, Feed("person", "week")) == (
        "p/_manifests/people/2026/11/2026-11-05_people_week.json"
    )


def test_hive_keys_name_the_partition_and_a_part_file() -> None:
    hive = Layout("", "hive", "csv")
    partition = "media_type=tv/time_window=week/year=2026/month=11/day=05"
    assert hive.key("cleaned", DAY, WEEK_TV) == f"cleaned_data/{partition}/part-0.csv"
    assert hive.key("raw", DAY, WEEK_TV) == f"raw_data/{partition}/part-0.jsonl.gz"
    assert hive.key("manifest", DAY, WEEK_TV) == f"_manifests/{partition}/manifest.json"


@pytest.mark.parametrize(
    ("layout", "raw", "version"),
    [
        (
            Layout("p"),
            "p/raw_data/2026/11/2026-11-05_tv_week.run-r-1.jsonl.gz",
            "p/_versions/2026/11/2026-11-05_tv_week.run-r-1.csv",
        ),
        (
            Layout("", "hive", "parquet"),
            "raw_data/media_type=tv/time_window=week/year=2026/month=11/day=05/part-0.run-r-1.jsonl.gz",
            "_versions/media_type=tv/time_window=week/year=2026/month=11/day=05/part-0.run-r-1.parquet",
        ),
    ],
)
def test_run_keys_are_the_days_keys_tagged_with_the_run(layout: Layout, raw: str, version: str) -> None:
    assert layout.run_key("raw", DAY, WEEK_TV, "r-1") == raw
    assert layout.run_key("version", DAY, WEEK_TV, "r-1") == version
    assert run_of(raw) == run_of(version) == "r-1"


@pytest.mark.parametrize("run_id", ["", "a.b", "a/b", "x" * 65])
def test_a_run_id_that_cannot_be_part_of_a_key_is_refused(run_id: str) -> None:
    with pytest.raises(LoadError, match="cannot be part of a key"):
        Layout().run_key("raw", DAY, Feed(), run_id)


def test_lock_key_names_the_day_media_and_window() -> None:
    assert Layout("p").lock_key(DAY, WEEK_TV) == "p/_locks/2026-11-05_tv_week.json"
    assert Layout("", "hive").lock_key(DAY, Feed()) == "_locks/2026-11-05_movie_day.json"


def test_keys_give_the_runs_raw_key_only_when_a_run_is_named() -> None:
    layout = Layout()
    common = {
        "cleaned": "cleaned_data/2026/11/2026-11-05_movies.csv",
        "manifest": "_manifests/2026/11/2026-11-05_movies.json",
    }
    assert layout.keys(DAY, Feed()) == {**common, "raw": "raw_data/2026/11/2026-11-05_movies.jsonl.gz"}
    assert layout.keys(DAY, Feed(), "r9") == {**common, "raw": "raw_data/2026/11/2026-11-05_movies.run-r9.jsonl.gz"}
