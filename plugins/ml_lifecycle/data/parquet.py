"""Arrow schema from a Snowflake cursor, batch conformance, and a Parquet part writer that streams to S3.

The dataset contract these helpers enforce, whatever the driver hands back:

- column names are lower case;
- every part file has the same schema, decided once from the cursor's description (not from the first
  batch, whose Arrow types the connector picks per result chunk: an integer column can arrive as int8 in
  one chunk and int32 in the next);
- integers (``NUMBER(p, 0)``) are ``int64``; other numbers are ``float64``; text and semi-structured values
  are ``string``; booleans are ``bool``; dates are ``date32``; every timestamp is a UTC wall-clock
  ``timestamp[us]`` without a time zone (``TIMESTAMP_LTZ`` / ``TIMESTAMP_TZ`` are converted to UTC first;
  Snowflake's nanoseconds are truncated to microseconds).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ml_lifecycle.data.s3 import join_uri, split_s3_uri

log = logging.getLogger(__name__)

PART_TEMPLATE = "part-{index:05d}.parquet"

# Snowflake's wire type codes (snowflake.connector.constants.FIELD_TYPES order).
_TYPE_NAMES = {
    0: "FIXED",
    1: "REAL",
    2: "TEXT",
    3: "DATE",
    4: "TIMESTAMP",
    5: "VARIANT",
    6: "TIMESTAMP_LTZ",
    7: "TIMESTAMP_TZ",
    8: "TIMESTAMP_NTZ",
    9: "OBJECT",
    10: "ARRAY",
    11: "BINARY",
    12: "TIME",
    13: "BOOLEAN",
    14: "GEOGRAPHY",
    15: "GEOMETRY",
    16: "VECTOR",
    17: "MAP",
    18: "FILE",
}
_STRINGS = {"TEXT", "VARIANT", "OBJECT", "ARRAY", "GEOGRAPHY", "GEOMETRY", "FILE", "MAP", "VECTOR"}
_TIMESTAMPS = {"TIMESTAMP", "TIMESTAMP_NTZ", "TIMESTAMP_LTZ", "TIMESTAMP_TZ"}
TIMESTAMP_TYPE = pa.timestamp("us")


class SchemaError(ValueError):
    """The query's result cannot be written with a stable schema; the message names the column."""


def _describe(item: Any) -> tuple[str, int, int | None]:
    """(name, type code, scale) of one ``cursor.description`` entry (ResultMetadata or DB-API 7-tuple)."""
    name = getattr(item, "name", None) or item[0]
    type_code = getattr(item, "type_code", None)
    if type_code is None:
        type_code = item[1]
    scale = getattr(item, "scale", None) if hasattr(item, "scale") else item[5]
    return str(name), int(type_code), scale


def arrow_type_for(type_name: str, scale: int | None) -> pa.DataType:
    if type_name == "FIXED":
        return pa.int64() if not scale else pa.float64()
    if type_name == "REAL":
        return pa.float64()
    if type_name in _STRINGS:
        return pa.string()
    if type_name in _TIMESTAMPS:
        return TIMESTAMP_TYPE
    if type_name == "DATE":
        return pa.date32()
    if type_name == "TIME":
        return pa.time64("us")
    if type_name == "BOOLEAN":
        return pa.bool_()
    if type_name == "BINARY":
        return pa.binary()
    raise SchemaError(f"Snowflake type {type_name or 'unknown'} has no Parquet mapping")


def schema_from_description(description: Sequence[Any] | None) -> pa.Schema:
    """The Arrow schema every part file is written with, from a Snowflake cursor's ``description``.

    :raises SchemaError: no description (the statement returned no result set), two columns whose names
        differ only by case, or a type without a mapping
    """
    if not description:
        raise SchemaError("the query returned no result set (cursor.description is empty); is it a SELECT?")
    fields = []
    seen: dict[str, str] = {}
    for item in description:
        name, type_code, scale = _describe(item)
        lower = name.lower()
        if lower in seen:
            raise SchemaError(f"columns {seen[lower]!r} and {name!r} collide once lower-cased; alias one of them")
        seen[lower] = name
        type_name = _TYPE_NAMES.get(type_code, "")
        try:
            fields.append(pa.field(lower, arrow_type_for(type_name, scale), nullable=True))
        except SchemaError as exc:
            raise SchemaError(f"column {name!r}: {exc}") from None
    return pa.schema(fields)


def _to_target(column: pa.ChunkedArray | pa.Array, target: pa.DataType, name: str) -> pa.ChunkedArray | pa.Array:
    source = column.type
    if source.equals(target):
        return column
    try:
        if pa.types.is_timestamp(target) and pa.types.is_timestamp(source):
            # Arrow keeps tz-aware timestamps as UTC instants: dropping the zone leaves the UTC wall clock.
            return pc.cast(column, target, safe=False)
        if pa.types.is_timestamp(target) and pa.types.is_date(source):
            return pc.cast(column, target)
        if pa.types.is_floating(target) and pa.types.is_decimal(source):
            return pc.cast(column, target, safe=False)
        if pa.types.is_time(target) and pa.types.is_time(source):
            return pc.cast(column, target, safe=False)
        return pc.cast(column, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SchemaError(f"column {name!r}: cannot convert {source} to {target}: {exc}") from None


def conform(table: pa.Table | pa.RecordBatch, schema: pa.Schema) -> pa.Table:
    """``table`` with lower-case names, in ``schema``'s order, each column cast to ``schema``'s type."""
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    by_lower = {name.lower(): i for i, name in enumerate(table.column_names)}
    missing = [f.name for f in schema if f.name not in by_lower]
    if missing:
        raise SchemaError(f"a result batch lacks the column(s) {missing} (it has {table.column_names})")
    arrays = [_to_target(table.column(by_lower[f.name]), f.type, f.name) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _python_value(value: Any, target: pa.DataType) -> Any:
    if value is None:
        return None
    if pa.types.is_timestamp(target):
        if isinstance(value, dt.datetime):
            if value.tzinfo is not None:
                value = value.astimezone(dt.UTC).replace(tzinfo=None)
            return value
        if isinstance(value, dt.date):
            return dt.datetime(value.year, value.month, value.day)
        return value
    if pa.types.is_floating(target) and isinstance(value, Decimal | int):
        return float(value)
    if pa.types.is_integer(target) and isinstance(value, Decimal):
        if value != value.to_integral_value():
            raise SchemaError(f"non-integer value {value} in an integer column")
        return int(value)
    if pa.types.is_string(target) and not isinstance(value, str):
        return str(value)
    return value


def rows_to_table(rows: Sequence[Sequence[Any]], schema: pa.Schema) -> pa.Table:
    """Build a table of ``schema`` from DB-API row tuples (the ``fetchmany`` path)."""
    columns = []
    for index, f in enumerate(schema):
        try:
            values = [_python_value(row[index], f.type) for row in rows]
            columns.append(pa.array(values, type=f.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, SchemaError, TypeError) as exc:
            raise SchemaError(f"column {f.name!r}: cannot build {f.type} values: {exc}") from None
    return pa.Table.from_arrays(columns, schema=schema)


def rebatch(tables: Iterable[pa.Table], batch_rows: int) -> Iterator[pa.Table]:
    """Regroup a stream of tables into tables of exactly ``batch_rows`` rows (the last may be shorter).

    Holds at most one output batch plus one input table in memory.
    """
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    pending: list[pa.Table] = []
    pending_rows = 0
    for table in tables:
        offset = 0
        while offset < table.num_rows:
            take = min(batch_rows - pending_rows, table.num_rows - offset)
            pending.append(table.slice(offset, take))
            pending_rows += take
            offset += take
            if pending_rows == batch_rows:
                yield pa.concat_tables(pending).combine_chunks()
                pending, pending_rows = [], 0
    if pending_rows:
        yield pa.concat_tables(pending).combine_chunks()


@dataclass
class PartInfo:
    name: str
    uri: str
    rows: int
    bytes: int
    row_groups: int
    sha256: str | None = None  #: of the file's bytes, for the dataset's content digest (step caching)

    def as_dict(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "name": self.name,
            "uri": self.uri,
            "rows": self.rows,
            "bytes": self.bytes,
            "row_groups": self.row_groups,
        }
        if self.sha256:
            info["sha256"] = self.sha256
        return info


@dataclass
class PartWriter:
    """Writes row groups into ``part-NNNNN.parquet`` files and uploads each file as soon as it is full.

    A part file lives in a local temporary directory only until it is uploaded, so memory holds one row
    group and the disk holds one part, however many rows pass through.

    :param client: boto3 S3 client
    :param prefix: destination ``s3://bucket/prefix/``
    :param schema: the schema every part is written with
    :param row_groups_per_part: row groups per file before starting the next part
    :param extra_args: boto3 ``ExtraArgs`` for each upload (e.g. ``ServerSideEncryption`` / ``SSEKMSKeyId``)
    :param compression: Parquet codec
    """

    client: Any
    prefix: str
    schema: pa.Schema
    row_groups_per_part: int = 8
    extra_args: dict[str, Any] | None = None
    compression: str = "snappy"
    parts: list[PartInfo] = field(default_factory=list)
    _tmpdir: tempfile.TemporaryDirectory | None = None
    _writer: pq.ParquetWriter | None = None
    _path: str | None = None
    _rows: int = 0
    _groups: int = 0

    def __enter__(self) -> PartWriter:
        self._tmpdir = tempfile.TemporaryDirectory(prefix="ml-lifecycle-parts-")
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        try:
            if exc_type is None:
                self._finish_part()
            elif self._writer is not None:
                self._writer.close()
        finally:
            if self._tmpdir is not None:
                self._tmpdir.cleanup()

    @property
    def row_count(self) -> int:
        return sum(p.rows for p in self.parts) + self._rows

    def write(self, table: pa.Table) -> None:
        """Append ``table`` (already conformed to the schema) as one row group."""
        if table.num_rows == 0:
            return
        if self._writer is None:
            assert self._tmpdir is not None, "use PartWriter as a context manager"
            self._path = os.path.join(self._tmpdir.name, PART_TEMPLATE.format(index=len(self.parts)))
            self._writer = pq.ParquetWriter(self._path, self.schema, compression=self.compression)
        self._writer.write_table(table, row_group_size=table.num_rows)
        self._rows += table.num_rows
        self._groups += 1
        if self._groups >= self.row_groups_per_part:
            self._finish_part()

    def _finish_part(self) -> None:
        if self._writer is None or self._path is None:
            return
        self._writer.close()
        name = os.path.basename(self._path)
        uri = join_uri(self.prefix, name)
        bucket, key = split_s3_uri(uri)
        size = os.path.getsize(self._path)
        digest = _file_sha256(self._path)
        self.client.upload_file(self._path, bucket, key, ExtraArgs=dict(self.extra_args or {}))
        os.remove(self._path)
        self.parts.append(
            PartInfo(name=name, uri=uri, rows=self._rows, bytes=size, row_groups=self._groups, sha256=digest)
        )
        log.info("Uploaded %s (%d rows, %d bytes)", uri, self._rows, size)
        self._writer, self._path, self._rows, self._groups = None, None, 0, 0


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def contract_type(data_type: pa.DataType) -> pa.DataType:
    """The type a reader of the dataset sees for a column stored as ``data_type``.

    Snowflake's Parquet unload stores ``NUMBER`` columns as DECIMAL; readers type them as stream mode
    writes them (:func:`arrow_type_for`): scale 0 -> ``int64``, any other scale -> ``float64``. Other types
    are unchanged.
    """
    if pa.types.is_decimal(data_type):
        return pa.int64() if data_type.scale == 0 else pa.float64()
    return data_type


def conform_decimals(table: pa.Table | pa.RecordBatch) -> pa.Table | pa.RecordBatch:
    """``table`` with every decimal column cast to its :func:`contract_type`, before ``to_pandas``.

    pandas would otherwise hold such a column as ``object`` values of ``decimal.Decimal``. The cast to
    ``int64`` is checked: a value outside its range is an error naming the column, never a wrapped number.
    The container components use ``include/code/common/contract.py``'s copy; ``tests/unit/include/
    test_decimal_columns.py`` pins the two to the same result and the same error text.

    :raises SchemaError: a scale-0 decimal column holds a value that does not fit in ``int64``
    """
    fields, columns = list(table.schema), list(table.columns)
    changed = False
    for index, f in enumerate(fields):
        target = contract_type(f.type)
        if target.equals(f.type):
            continue
        try:
            columns[index] = pc.cast(columns[index], target, safe=True)
        except pa.ArrowInvalid as exc:
            low_high = pc.min_max(columns[index])
            raise SchemaError(
                f"column {f.name!r}: {f.type} values from {low_high['min']} to {low_high['max']} do not fit in "
                f"{target} ({exc})"
            ) from None
        fields[index] = f.with_type(target)
        changed = True
    if not changed:
        return table
    return type(table).from_arrays(columns, schema=pa.schema(fields, metadata=table.schema.metadata))


def schema_fields(schema: pa.Schema) -> list[dict[str, str]]:
    """``[{"name": ..., "type": ...}]`` for a manifest."""
    return [{"name": f.name, "type": str(f.type)} for f in schema]
