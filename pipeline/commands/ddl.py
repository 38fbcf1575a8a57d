"""``CREATE EXTERNAL TABLE`` statements for query engines over the lake (Athena for now).

The table uses partition projection, so Athena computes partition locations from the
table properties: no Glue crawler, no ``MSCK REPAIR TABLE``, nothing to run per day.
Column types come from ``schema.COLUMNS`` (one source of truth with the Parquet schema).
People (``person`` feeds) have their own schema and their own table (``people=True``,
default name ``tmdb_trending_people``) over their own locations: ``cleaned_data/people/``
with the ``monthly`` layout, the ``media_type=person`` partitions with ``hive``. The titles
table never reads a people file.

Two constraints of Athena shape the output:

- A partition key may not repeat a column name. With the ``hive`` layout ``media_type``
  and ``time_window`` are partition keys, so the Parquet table leaves those two columns
  out (Parquet columns are matched by name, and the values are the same), while the CSV
  table, whose columns are matched by position, names them ``row_media_type`` and
  ``row_time_window``.
- The Open CSV SerDe reads ``DATE`` only as days since 1970 and ``TIMESTAMP`` only as
  epoch milliseconds, so in a CSV table the ISO dates and timestamps are ``string``
  (cast them with ``date(...)`` and ``from_iso8601_timestamp(...)``). Parquet keeps the
  real types; prefer it for Athena. The SerDe also reads a backslash as an escape and
  cannot read a field with a line break, both of which a TMDB title may contain.

Every string literal goes through ``sql_string``. Athena's DDL is Hive's: a quote is escaped
with a backslash there and doubled in Athena's queries, so no one escape is right for both;
a location or value that holds ``'``, ``\\``, a backtick, ``$`` (projection syntax in
``storage.location.template``) or a control character is refused (exit 2) rather than quoted.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from pipeline.errors import ConfigError

if TYPE_CHECKING:
    from pipeline.config import PipelineConfig
    from pipeline.datalake import schema

logger = logging.getLogger(__name__)

ENGINES = ("athena",)
DEFAULT_TABLE = "tmdb_trending"
DEFAULT_PEOPLE_TABLE = "tmdb_trending_people"
FIRST_YEAR = 2020
LAST_YEAR = 2099
MEDIA_TYPES = ("movie", "tv", "all")
PEOPLE_MEDIA_TYPES = ("person",)
TIME_WINDOWS = ("day", "week")
HIVE_FEED_KEYS = ("media_type", "time_window")

_TABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,254}$")
_CSV_STRING_KINDS = ("date", "timestamp")
_UNQUOTABLE = re.compile(r"['\\`$\x00-\x1f\x7f-\x9f]")


def sql_string(text: str, what: str) -> str:
    """``text`` as a single-quoted SQL string literal; ``ConfigError`` naming ``what`` if it cannot be one."""
    bad = _UNQUOTABLE.search(text)
    if bad:
        raise ConfigError(
            f"{what} {text!r}: the generated DDL cannot hold {bad.group()!r} (Athena's DDL and queries escape "
            "quotes differently); use a prefix without it, or copy the lake and pass --location s3://bucket/prefix"
        )
    return f"'{text}'"


def athena_columns(fmt: str, layout: str, table: schema.Table | None = None) -> list[tuple[str, str]]:
    """``(name, type)`` of the table's data columns (the titles' by default) for a format and layout."""
    from pipeline.datalake import schema  # the CLI's parser reads this module's defaults: --help stays light

    table = table or schema.TITLES

    columns = []
    for column in table.columns:
        kind_type = schema.ATHENA_TYPES[column.kind]
        if fmt == "csv" and column.kind in _CSV_STRING_KINDS:
            kind_type = "string"
        name = column.name
        if layout == "hive" and name in HIVE_FEED_KEYS:
            if fmt == "parquet":
                continue
            name = f"row_{name}"
        columns.append((name, kind_type))
    return columns


def athena_partitions(layout: str) -> list[tuple[str, str]]:
    """``(name, type)`` of the partition keys of a layout."""
    if layout == "hive":
        return [("media_type", "string"), ("time_window", "string"), ("year", "int"), ("month", "int"), ("day", "int")]
    return [("year", "int"), ("month", "int")]


def athena_projection(
    layout: str, cleaned_root: str, *, first_year: int, last_year: int, people: bool = False
) -> dict[str, str]:
    """The partition-projection table properties, ending with ``storage.location.template``."""
    props = {"projection.enabled": "true"}
    if layout == "hive":
        props |= {
            "projection.media_type.type": "enum",
            "projection.media_type.values": ",".join(PEOPLE_MEDIA_TYPES if people else MEDIA_TYPES),
            "projection.time_window.type": "enum",
            "projection.time_window.values": ",".join(TIME_WINDOWS),
        }
    props |= {
        "projection.year.type": "integer",
        "projection.year.range": f"{first_year},{last_year}",
        "projection.month.type": "integer",
        "projection.month.range": "1,12",
        "projection.month.digits": "2",
    }
    if layout == "hive":
        props |= {"projection.day.type": "integer", "projection.day.range": "1,31", "projection.day.digits": "2"}
        template = (
            f"{cleaned_root}/media_type=${{media_type}}/time_window=${{time_window}}"
            "/year=${year}/month=${month}/day=${day}/"
        )
    else:
        from pipeline.datalake.layout import PEOPLE_FOLDER  # pydantic: the CLI's parser reads this module

        folder = f"{cleaned_root}/{PEOPLE_FOLDER}" if people else cleaned_root
        template = f"{folder}/${{year}}/${{month}}/"
    props["storage.location.template"] = template
    return props


def athena_ddl(
    *,
    location: str,
    fmt: str,
    layout: str,
    table: str | None = None,
    first_year: int = FIRST_YEAR,
    last_year: int = LAST_YEAR,
    people: bool = False,
) -> str:
    """The ``CREATE EXTERNAL TABLE`` for a lake at ``location`` (``s3://bucket/prefix``); ``people``: of people."""
    table = table or (DEFAULT_PEOPLE_TABLE if people else DEFAULT_TABLE)
    if not location.startswith("s3://") or location.rstrip("/") == "s3:/":
        raise ConfigError(f"Athena reads tables from S3: expected an s3://bucket[/prefix] location, got {location!r}")
    if not _TABLE_NAME.match(table):
        raise ConfigError(f"table name {table!r}: use lower-case letters, digits and underscores")
    if not 1970 <= first_year <= last_year <= 9999:
        raise ConfigError(f"year range {first_year}-{last_year}: expected 1970 <= first <= last <= 9999")
    from pipeline.datalake import Layout, schema  # pandas: the CLI's parser reads this module's defaults

    sql_string(location, "location")  # refused as the user wrote it, before it is part of a template
    cleaned_root = f"{location.rstrip('/')}/{Layout().root('cleaned')}"
    rows = schema.PEOPLE if people else schema.TITLES
    columns = ",\n".join(f"  `{name}` {kind}" for name, kind in athena_columns(fmt, layout, rows))
    partitions = ",\n".join(f"  `{name}` {kind}" for name, kind in athena_partitions(layout))
    props: dict[str, str] = {}
    if fmt == "csv":
        storage = (
            "ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.OpenCSVSerde'\n"
            "WITH SERDEPROPERTIES ('separatorChar' = ',', 'quoteChar' = '\"')\n"
            "STORED AS TEXTFILE"
        )
        # Every file starts with a header; an empty vote_average would otherwise fail the whole query.
        props |= {"skip.header.line.count": "1", "use.null.for.invalid.data": "true"}
    elif fmt == "parquet":
        storage = "STORED AS PARQUET"
    else:
        raise ConfigError(f"unknown format {fmt!r}")
    props |= athena_projection(layout, cleaned_root, first_year=first_year, last_year=last_year, people=people)
    properties = ",\n".join(
        f"  {sql_string(key, 'table property')} = {sql_string(value, key)}"
        for key, value in props.items()
        if key != "storage.location.template"
    )
    template = props["storage.location.template"]  # holds ${...} on purpose: the location was checked above
    properties += f",\n  'storage.location.template' = '{template}'"
    what = "TMDB trending people" if people else "TMDB trending lists"
    comment = sql_string(f"{what} written by pipeline ({fmt}, {layout} layout)", "comment")
    return (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS `{table}` (\n{columns}\n)\n"
        f"COMMENT {comment}\n"
        f"PARTITIONED BY (\n{partitions}\n)\n"
        f"{storage}\n"
        f"LOCATION {sql_string(cleaned_root + '/', 'location')}\n"
        f"TBLPROPERTIES (\n{properties}\n);\n"
    )


def ddl_for_config(
    config: PipelineConfig,
    *,
    engine: str = "athena",
    table: str | None = None,
    location: str | None = None,
    first_year: int = FIRST_YEAR,
    last_year: int = LAST_YEAR,
    people: bool = False,
) -> str:
    """The DDL for the configured loader's lake; ``location`` replaces where the loader writes."""
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}; supported: {', '.join(ENGINES)}")
    from pipeline.commands._lake import lake_reader  # see athena_ddl

    section = config.loader
    loader = lake_reader(config)
    layout = loader.layout
    if location is None:
        # locate() of the lake root: "s3://bucket/prefix" for S3, a path for the local loader.
        root = loader.locate(layout.prefix) if layout.prefix else loader.locate("").rstrip("/")
        if not root.startswith("s3://"):
            raise ConfigError(
                f"Athena reads tables from S3, but loader {section.type!r} writes to {root}; "
                "configure the s3 loader, or pass --location s3://bucket/prefix where this lake is copied"
            )
        location = root
    logger.debug("DDL for %s (%s, %s layout)", location, layout.format, layout.style)
    return athena_ddl(
        location=location,
        fmt=layout.format,
        layout=layout.style,
        table=table,
        first_year=first_year,
        last_year=last_year,
        people=people,
    )
