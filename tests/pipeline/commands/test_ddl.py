"""The Athena DDL matches the lake the loader writes: location template, projections, columns, SerDe."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.commands.ddl import athena_ddl, ddl_for_config
from pipeline.config import load_config
from pipeline.datalake import Layout, schema
from pipeline.errors import ConfigError
from pipeline.stage import Feed
from tests.support.cli import CliRunner

ROOT = Path(__file__).resolve().parents[3]
LOCATION = "s3://tmdb-lake/daily"

# The documented schema's types in Athena, written out here rather than derived, so a drift shows.
ATHENA = {
    "trend_date": "date",
    "rank": "bigint",
    "id": "bigint",
    "title": "string",
    "original_title": "string",
    "original_language": "string",
    "release_date": "date",
    "popularity": "double",
    "vote_average": "double",
    "vote_count": "bigint",
    "genre_ids": "string",
    "media_type": "string",
    "time_window": "string",
    "extracted_at": "timestamp",
    "genres": "string",
    "poster_url": "string",
}
CSV_AS_STRING = {"trend_date", "release_date", "extracted_at"}  # the Open CSV SerDe cannot parse ISO dates


def parse(ddl: str) -> dict[str, object]:
    """Pull the parts of a CREATE EXTERNAL TABLE apart."""
    match = re.match(
        r"CREATE EXTERNAL TABLE IF NOT EXISTS `(?P<table>\w+)` \(\n(?P<columns>.*?)\n\)\n"
        r"COMMENT '[^']*'\n"
        r"PARTITIONED BY \(\n(?P<partitions>.*?)\n\)\n"
        r"(?P<storage>.*?)\n"
        r"LOCATION '(?P<location>[^']+)'\n"
        r"TBLPROPERTIES \(\n(?P<props>.*?)\n\);\n$",
        ddl,
        re.S,
    )
    assert match, ddl

    def pairs(block: str) -> list[tuple[str, str]]:
        found = []
        for line in block.splitlines():
            column = re.fullmatch(r"  `(\w+)` (\w+),?", line)
            assert column, line
            found.append((column[1], column[2]))
        return found

    props = dict(re.findall(r"^  '([^']+)' = '([^']*)',?$", match["props"], re.M))
    return {
        "table": match["table"],
        "columns": pairs(match["columns"]),
        "partitions": pairs(match["partitions"]),
        "storage": match["storage"],
        "location": match["location"],
        "props": props,
    }


def project(template: str, props: dict[str, str], values: dict[str, object]) -> str:
    """Fill a storage.location.template the way Athena does, honouring each key's ``digits``."""

    def one(m: re.Match[str]) -> str:
        key = m.group(1)
        value = values[key]
        digits = props.get(f"projection.{key}.digits")
        return str(value).zfill(int(digits)) if digits else str(value)

    return re.sub(r"\$\{(\w+)\}", one, template)


def in_range(props: dict[str, str], key: str, value: object) -> bool:
    kind = props[f"projection.{key}.type"]
    if kind == "enum":
        return str(value) in props[f"projection.{key}.values"].split(",")
    assert kind == "integer"
    low, high = (int(v) for v in props[f"projection.{key}.range"].split(","))
    return low <= int(str(value)) <= high


@pytest.mark.parametrize(
    ("fmt", "layout", "partitions", "storage"),
    [
        pytest.param(
            "csv",
            "monthly",
            [("year", "int"), ("month", "int")],
            "ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.OpenCSVSerde'",
            id="csv-monthly",
        ),
        pytest.param(
            "parquet", "monthly", [("year", "int"), ("month", "int")], "STORED AS PARQUET", id="parquet-monthly"
        ),
        pytest.param(
            "csv",
            "hive",
            [("media_type", "string"), ("time_window", "string"), ("year", "int"), ("month", "int"), ("day", "int")],
            "ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.OpenCSVSerde'",
            id="csv-hive",
        ),
        pytest.param(
            "parquet",
            "hive",
            [("media_type", "string"), ("time_window", "string"), ("year", "int"), ("month", "int"), ("day", "int")],
            "STORED AS PARQUET",
            id="parquet-hive",
        ),
    ],
)
def test_the_table_matches_the_layout_and_format(
    fmt: str, layout: str, partitions: list[tuple[str, str]], storage: str
) -> None:
    ddl = parse(athena_ddl(location=LOCATION, fmt=fmt, layout=layout))
    props = ddl["props"]
    assert isinstance(props, dict)

    assert ddl["table"] == "tmdb_trending"
    assert ddl["location"] == f"{LOCATION}/cleaned_data/"
    assert ddl["partitions"] == partitions
    assert str(ddl["storage"]).startswith(storage)
    assert props["projection.enabled"] == "true"
    assert props["projection.year.range"] == "2020,2099"
    assert props["projection.month.range"] == "1,12" and props["projection.month.digits"] == "2"

    # Columns: the schema in order. A partition key cannot repeat a column name, so with the hive
    # layout Parquet (matched by name) drops the feed columns and CSV (matched by position) renames them.
    expected = []
    for name in schema.COLUMN_NAMES:
        kind = "string" if fmt == "csv" and name in CSV_AS_STRING else ATHENA[name]
        if layout == "hive" and name in ("media_type", "time_window"):
            if fmt == "parquet":
                continue
            name = f"row_{name}"
        expected.append((name, kind))
    assert ddl["columns"] == expected

    if fmt == "csv":
        assert props["skip.header.line.count"] == "1"
        assert "'quoteChar' = '\"'" in str(ddl["storage"]), "our CSV quotes fields with commas, quotes, newlines"
    else:
        assert "skip.header.line.count" not in props

    # The projected location of a day is exactly the folder the loader writes that day's file to.
    for day, feed in [(dt.date(2026, 3, 5), Feed("movie", "day")), (dt.date(2031, 12, 31), Feed("tv", "week"))]:
        values: dict[str, object] = {"year": day.year, "month": day.month, "day": day.day}
        values |= {"media_type": feed.media_type, "time_window": feed.time_window}
        keys = [name for name, _ in partitions]
        assert all(in_range(props, key, values[key]) for key in keys)
        written = Layout("daily", layout, fmt).key("cleaned", day, feed)
        folder = f"s3://tmdb-lake/{written.rsplit('/', 1)[0]}/"
        assert project(props["storage.location.template"], props, {k: values[k] for k in keys}) == folder


def test_the_year_range_and_table_name_can_be_chosen() -> None:
    ddl = parse(
        athena_ddl(location="s3://b", fmt="parquet", layout="monthly", table="trend", first_year=2025, last_year=2030)
    )
    props = ddl["props"]
    assert isinstance(props, dict)
    assert (ddl["table"], ddl["location"], props["projection.year.range"]) == (
        "trend",
        "s3://b/cleaned_data/",
        "2025,2030",
    )
    assert props["storage.location.template"] == "s3://b/cleaned_data/${year}/${month}/"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"location": "/home/me/lake"}, "expected an s3://bucket"),
        ({"location": "s3://b", "table": "Trending-Movies"}, "lower-case letters"),
        ({"location": "s3://b", "first_year": 2030, "last_year": 2020}, "year range"),
    ],
)
def test_bad_arguments_are_config_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        athena_ddl(fmt="csv", layout="monthly", **kwargs)


def config_with(loader: str) -> dict[str, object]:
    return {
        "extractor": {"type": "replay", "options": {"path": "x"}},
        "transformer": {"type": "standardize"},
        "loader": {"type": loader, "options": {}},
    }


def test_the_s3_loader_config_gives_its_bucket_prefix_format_and_layout() -> None:
    config = load_config(
        config_with("s3"),
        [
            "loader.options.bucket=tmdb-lake",
            "loader.options.prefix=daily",
            "loader.options.format=parquet",
            "loader.options.layout=hive",
        ],
    )
    ddl = parse(ddl_for_config(config))
    props = ddl["props"]
    assert isinstance(props, dict)
    assert ddl["location"] == "s3://tmdb-lake/daily/cleaned_data/"
    assert ddl["storage"] == "STORED AS PARQUET"
    assert props["storage.location.template"].startswith("s3://tmdb-lake/daily/cleaned_data/media_type=${media_type}/")


def test_the_local_loader_needs_an_explicit_s3_location(tmp_path: Path) -> None:
    config = load_config(config_with("local"), [f"loader.options.root={tmp_path}", "loader.options.layout=hive"])
    with pytest.raises(ConfigError, match=r"Athena reads tables from S3.*--location s3://bucket/prefix"):
        ddl_for_config(config)
    ddl = parse(ddl_for_config(config, location="s3://copy-of-lake/tmdb/"))
    assert ddl["location"] == "s3://copy-of-lake/tmdb/cleaned_data/"
    assert ddl["partitions"][0] == ("media_type", "string")


def test_the_ddl_command_prints_the_statement_or_explains_why_not(run_cli: CliRunner) -> None:
    refused = run_cli("ddl", "--engine", "athena", "--config", "config/demo.yml")
    assert refused.returncode == 2
    assert "Athena reads tables from S3" in refused.stderr and refused.stdout == ""

    done = run_cli(
        "ddl", "--config", "config/demo.yml", "--location", "s3://b/p", "--set", "loader.options.format=parquet"
    )
    assert done.returncode == 0, done.stderr
    assert parse(done.stdout)["location"] == "s3://b/p/cleaned_data/"

    unknown = run_cli("ddl", "--engine", "bigquery", "--config", "config/demo.yml")
    assert unknown.returncode == 2 and "invalid choice: 'bigquery'" in unknown.stderr


# -- quoting (issue 18): every literal is a well-formed string, or the DDL is refused ---------------------------
_LITERAL = re.compile(r"'(?:[^'\\]|\\.)*'")  # Hive's string literal: a backslash escapes the next character
_IDENTIFIER = re.compile(r"`[^`]*`")
STATEMENTS = [("csv", "monthly"), ("csv", "hive"), ("parquet", "monthly"), ("parquet", "hive")]


def skeleton(ddl: str) -> str:
    """The statement with every string literal and quoted identifier blanked: its SQL structure."""
    return _IDENTIFIER.sub("`_`", _LITERAL.sub("'_'", ddl))


@pytest.mark.parametrize(("fmt", "layout"), STATEMENTS)
@pytest.mark.parametrize(
    ("location", "bad"),
    [
        ("s3://b/p'; DROP TABLE x; --", "'"),
        ("s3://b/it's", "'"),
        ("s3://b/p\\", "\\"),
        ("s3://b/p`x", "`"),
        ("s3://b/${year}", "$"),
        ("s3://b/p\nDROP TABLE x", "\n"),
    ],
)
def test_a_location_the_ddl_cannot_quote_is_refused(fmt: str, layout: str, location: str, bad: str) -> None:
    with pytest.raises(ConfigError) as caught:
        athena_ddl(location=location, fmt=fmt, layout=layout)
    assert str(caught.value).startswith(f"location {location!r}: the generated DDL cannot hold {bad!r}")


@pytest.mark.parametrize(("fmt", "layout"), STATEMENTS)
@settings(max_examples=40, deadline=None, derandomize=True)
@given(tail=st.text(max_size=12))
def test_every_statement_keeps_its_structure_whatever_the_location(fmt: str, layout: str, tail: str) -> None:
    location = f"s3://bucket/{tail}"
    plain = athena_ddl(location="s3://bucket/p", fmt=fmt, layout=layout)
    try:
        ddl = athena_ddl(location=location, fmt=fmt, layout=layout)
    except ConfigError as exc:
        assert "the generated DDL cannot hold" in str(exc)
        return
    assert skeleton(ddl) == skeleton(plain)  # no literal ends early, nothing outside them is injected
    [shown] = re.findall(r"^LOCATION ('.*')$", ddl, re.M)
    assert shown == f"'{location.rstrip('/')}/cleaned_data/'"


def test_the_ddl_command_refuses_an_injection_with_one_line(run_cli: CliRunner) -> None:
    hostile = "s3://b/p'; DROP TABLE x; --"
    done = run_cli("ddl", "--config", "config/demo.yml", "--location", hostile)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"error: location {hostile!r}: the generated DDL cannot hold \"'\" (Athena's DDL and queries escape quotes "
        "differently); use a prefix without it, or copy the lake and pass --location s3://bucket/prefix"
    ]


def test_a_configured_prefix_with_a_quote_is_refused_too(run_cli: CliRunner) -> None:
    done = run_cli(
        "ddl", "--config", "config/demo.yml", "--set", "loader.type=s3",
        "--set", "loader.options={bucket: tmdb-lake, prefix: \"it's\"}",
    )  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("error: location \"s3://tmdb-lake/it's\": the generated DDL cannot hold")
PEOPLE_ATHENA = {
    "trend_date": "date",
    "rank": "bigint",
    "id": "bigint",
    "name": "string",
    "original_name": "string",
    "known_for_department": "string",
    "gender": "bigint",
    "popularity": "double",
    "adult": "boolean",
    "known_for": "string",
    "known_for_titles": "string",
    "profile_url": "string",
    "media_type": "string",
    "time_window": "string",
    "extracted_at": "timestamp",
}


@pytest.mark.parametrize(
    ("fmt", "layout"), [("csv", "monthly"), ("parquet", "monthly"), ("csv", "hive"), ("parquet", "hive")]
)
def test_the_people_table_reads_only_people_files(fmt: str, layout: str) -> None:
    people = parse(athena_ddl(location=LOCATION, fmt=fmt, layout=layout, people=True))
    titles = parse(athena_ddl(location=LOCATION, fmt=fmt, layout=layout))
    props, title_props = people["props"], titles["props"]
    assert isinstance(props, dict) and isinstance(title_props, dict)
    assert people["table"] == "tmdb_trending_people"
    expected = []
    for name in PEOPLE_ATHENA:
        kind = "string" if fmt == "csv" and name in CSV_AS_STRING else PEOPLE_ATHENA[name]
        if layout == "hive" and name in ("media_type", "time_window"):
            if fmt == "parquet":
                continue
            name = f"row_{name}"
        expected.append((name, kind))
    assert people["columns"] == expected
    day = dt.date(2026, 11, 25)
    for feed in (Feed("person", "day"), Feed("person", "week"), Feed("movie", "day"), Feed("all", "week")):
        values: dict[str, object] = {"year": day.year, "month": day.month, "day": day.day}
        values |= {"media_type": feed.media_type, "time_window": feed.time_window}
        folder = "s3://tmdb-lake/" + Layout("daily", layout, fmt).key("cleaned", day, feed).rsplit("/", 1)[0] + "/"
        for table, table_props in ((people, props), (titles, title_props)):
            keys = [name for name, _ in table["partitions"]]  # type: ignore[union-attr]
            reads = all(in_range(table_props, k, values[k]) for k in keys) and folder == project(
                table_props["storage.location.template"], table_props, {k: values[k] for k in keys}
            )
            # each table reads its own feeds' folders and never the other schema's
            assert reads == ((table is people) == feed.is_people), (table["table"], feed)


def test_the_ddl_command_prints_the_people_table(run_cli: CliRunner) -> None:
    done = run_cli("ddl", "--config", "config/demo.yml", "--location", "s3://b/p", "--people")
    assert done.returncode == 0, done.stderr
    ddl = parse(done.stdout)
    assert ddl["table"] == "tmdb_trending_people" and ("known_for", "string") in ddl["columns"]  # type: ignore[operator]
