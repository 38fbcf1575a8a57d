"""File formats of the cleaned zone: a chunk encoder per format, and the matching decoder.

An encoder turns each cleaned chunk into bytes as it arrives, so a loader can stream
them to its sink; ``finish`` returns whatever closes the file (a CSV header for an
empty day, the Parquet footer). ``decode`` gives back the schema's pandas dtypes for
every format, with dates and timestamps as the same ISO strings the CSV holds, so
readers (the report, ``history``) never see a difference.

Parquet needs pyarrow (the ``parquet`` extra); it is imported only when used.
"""

from __future__ import annotations

import abc
import datetime as dt
import io
from typing import TYPE_CHECKING, Any, Literal

from pipeline.datalake import schema
from pipeline.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd


Format = Literal["csv", "parquet"]
FORMATS: tuple[Format, ...] = ("csv", "parquet")
EXTENSIONS: dict[str, str] = {"csv": ".csv", "parquet": ".parquet"}
CONTENT_TYPES: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}
PARQUET_COMPRESSION = "zstd"
# A TMDB page is only 20 rows; a row group per page would bloat the footer and defeat
# compression, so rows are held (bounded, as Arrow data) until a row group is worth writing.
PARQUET_ROW_GROUP_ROWS = 2_000
_INSTALL_HINT = "run `make run EXTRAS=parquet` (or `.venv/bin/python -m pip install -e '.[parquet]'` in the checkout)"


def require_pyarrow() -> Any:
    """Import pyarrow, or raise a ``ConfigError`` that says how to install it."""
    try:
        import pyarrow
        import pyarrow.parquet  # the submodule the encoder and decoder use
    except ImportError:
        raise ConfigError(f"format 'parquet' needs pyarrow, which is not installed: {_INSTALL_HINT}") from None
    return pyarrow


class ChunkEncoder(abc.ABC):
    """Encodes the cleaned chunks of one file, one chunk at a time."""

    format: Format

    @property
    def content_type(self) -> str:
        """The MIME type to store the object with."""
        return CONTENT_TYPES[self.format]

    @abc.abstractmethod
    def encode(self, chunk: pd.DataFrame) -> bytes:
        """Encode one chunk already conformed to the schema; the bytes (maybe none) to stream now."""

    @abc.abstractmethod
    def finish(self) -> bytes:
        """The bytes that complete the file; call once, after the last chunk."""


class CsvEncoder(ChunkEncoder):
    """UTF-8 CSV with the header once; an empty day is a header-only file."""

    format: Format = "csv"

    def __init__(self, table: schema.Table = schema.TITLES) -> None:
        self._table = table
        self._header_written = False

    def encode(self, chunk: pd.DataFrame) -> bytes:
        """The chunk's CSV lines (with the header before the first)."""
        data = schema.to_csv_bytes(chunk, header=not self._header_written)
        self._header_written = True
        return data

    def finish(self) -> bytes:
        """The header, if no chunk came."""
        return b"" if self._header_written else self.encode(schema.empty_frame(self._table))


class _Drain:
    """A write-only file for pyarrow that hands its bytes back on ``drain``.

    ``tell`` keeps counting across drains because Parquet's footer records offsets.
    """

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0
        self.closed = False

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        """Nothing to flush: bytes wait in memory until drained."""

    def close(self) -> None:
        self.closed = True

    def drain(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


class ParquetEncoder(ChunkEncoder):
    """Parquet typed by ``schema.arrow_schema()``, written row group by row group (zstd)."""

    format: Format = "parquet"

    def __init__(
        self,
        table: schema.Table = schema.TITLES,
        *,
        row_group_rows: int = PARQUET_ROW_GROUP_ROWS,
        compression: str = PARQUET_COMPRESSION,
    ) -> None:
        pa = require_pyarrow()
        self._pa = pa
        self._table = table
        self._schema = schema.arrow_schema(table)
        self._row_group_rows = row_group_rows
        self._pending: list[Any] = []
        self._pending_rows = 0
        self._buffer = _Drain()
        # The Parquet logical types already carry every type we use (dates, UTC timestamps), so the
        # serialized Arrow schema would only add about 1.2 KB to each footer.
        self._writer = pa.parquet.ParquetWriter(self._buffer, self._schema, compression=compression, store_schema=False)

    def encode(self, chunk: pd.DataFrame) -> bytes:
        """Hold the chunk as Arrow data; write a row group once enough rows are held."""
        if len(chunk):
            self._pending.append(to_arrow(chunk, self._schema, self._table))
            self._pending_rows += len(chunk)
        if self._pending_rows >= self._row_group_rows:
            self._flush_row_group()
        return self._buffer.drain()

    def finish(self) -> bytes:
        """The last row group and the footer."""
        self._flush_row_group()
        self._writer.close()
        return self._buffer.drain()

    def _flush_row_group(self) -> None:
        if self._pending:
            self._writer.write_table(self._pa.Table.from_batches(self._pending, schema=self._schema))
            self._pending, self._pending_rows = [], 0


def to_arrow(frame: pd.DataFrame, arrow_schema: Any, table: schema.Table = schema.TITLES) -> Any:
    """A conformed frame as a pyarrow ``RecordBatch`` of the cleaned schema."""
    pa = require_pyarrow()
    arrays = []
    for column in table.columns:
        series = frame[column.name]
        field_type = arrow_schema.field(column.name).type
        try:
            if column.kind == "date":
                values: Any = [_parse_date(v) for v in series.tolist()]
            elif column.kind == "timestamp":
                values = [_parse_timestamp(v) for v in series.tolist()]
            else:
                values = series
            array = pa.array(values, type=field_type)
            # pandas' Arrow-backed strings come back chunked after a concat; a record batch needs one chunk.
            arrays.append(array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array)
        except (ValueError, TypeError, pa.ArrowException) as exc:
            raise ValueError(f"column {column.name!r} cannot be written as {field_type}: {exc}") from exc
    return pa.RecordBatch.from_arrays(arrays, schema=arrow_schema)


def _parse_date(value: Any) -> dt.date | None:
    import pandas as pd  # pandas is loaded by now (the frame is pandas); imported here for the CLI's sake

    if value is None or value is pd.NA or value == "":
        return None
    return dt.date.fromisoformat(str(value))


def _parse_timestamp(value: Any) -> dt.datetime | None:
    import pandas as pd  # see _parse_date

    if value is None or value is pd.NA or value == "":
        return None
    stamp = dt.datetime.fromisoformat(str(value))
    # The schema promises UTC; a value without an offset is taken to be UTC, not local time.
    return stamp.replace(tzinfo=dt.UTC) if stamp.tzinfo is None else stamp.astimezone(dt.UTC)


def new_encoder(fmt: str, table: schema.Table = schema.TITLES) -> ChunkEncoder:
    """A fresh encoder for ``fmt`` (``csv`` or ``parquet``) writing rows of ``table``."""
    if fmt == "csv":
        return CsvEncoder(table)
    if fmt == "parquet":
        return ParquetEncoder(table)
    raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")


def decode(fmt: str, data: bytes, table: schema.Table = schema.TITLES) -> pd.DataFrame:
    """The rows of a cleaned file of ``fmt``, in the dtypes of ``table``."""
    if fmt == "csv":
        return schema.read_csv_bytes(data, table)
    if fmt == "parquet":
        return read_parquet_bytes(data, table)
    raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")


def read_parquet_bytes(data: bytes, table: schema.Table = schema.TITLES) -> pd.DataFrame:
    """Decode a cleaned Parquet file as the CSV path would: dates and timestamps as ISO strings, no nulls in text."""
    import pandas as pd

    pa = require_pyarrow()
    stored = pa.parquet.read_table(io.BytesIO(data))
    columns: dict[str, Any] = {}
    for column in table.columns:
        values = stored.column(column.name).to_pylist()
        if column.kind in ("date", "timestamp"):
            columns[column.name] = ["" if v is None else v.isoformat() for v in values]
        elif column.dtype == "string":
            columns[column.name] = ["" if v is None else v for v in values]
        else:
            columns[column.name] = values  # numbers: conform() casts them (a null float is NaN either way)
    if stored.num_rows == 0:
        return schema.empty_frame(table)
    return schema.conform(pd.DataFrame(columns), table)
