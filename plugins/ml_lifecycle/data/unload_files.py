"""Describe the Parquet files Snowflake unloaded under a prefix: rows, bytes and schema from their footers."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ml_lifecycle.data.parquet import SchemaError, contract_type, schema_fields
from ml_lifecycle.data.s3 import S3RangeReader, iter_objects, split_s3_uri


def _as_read(schema: pa.Schema) -> pa.Schema:
    """``schema`` with each decimal column typed as readers see it; files are compared in these types."""
    return pa.schema([f.with_type(contract_type(f.type)) for f in schema])


def describe_unloaded_files(
    client: Any, prefix: str, *, expected_rows: int | None = None
) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """``(schema, parts)`` for the ``*.parquet`` files directly under ``prefix``.

    Only each file's footer is read (ranged GETs), not its data. The schema records the types readers see
    (:func:`~ml_lifecycle.data.parquet.contract_type`): Snowflake writes ``NUMBER`` columns as DECIMAL, which
    every reader of the dataset casts to ``int64`` (scale 0) or ``float64``, as stream mode writes them.

    :param expected_rows: the row count the ``COPY INTO`` reported; checked against the footers
    :raises SchemaError: files disagree on their schema, or a column name is not lower case (the feature
        query must alias its columns as quoted lower-case identifiers, since an unload cannot rename them)
    :raises RuntimeError: the files hold a different number of rows than Snowflake reported
    """
    bucket, key_prefix = split_s3_uri(prefix)
    parts: list[dict[str, Any]] = []
    schema = None
    for obj in iter_objects(client, prefix):
        rest = obj["Key"][len(key_prefix) :]
        if "/" in rest or not rest.endswith(".parquet"):
            continue
        with S3RangeReader(client, bucket, obj["Key"], size=obj["Size"]) as reader:
            metadata = pq.ParquetFile(reader).metadata
            file_schema = _as_read(metadata.schema.to_arrow_schema())
        if schema is None:
            schema = file_schema
        elif not file_schema.equals(schema):
            raise SchemaError(f"s3://{bucket}/{obj['Key']} has schema {file_schema} but the first file has {schema}")
        parts.append(
            {
                "name": rest,
                "uri": f"s3://{bucket}/{obj['Key']}",
                "rows": metadata.num_rows,
                "bytes": obj["Size"],
                "row_groups": metadata.num_row_groups,
                "etag": str(obj.get("ETag", "")).strip('"'),
            }
        )
    fields = schema_fields(schema) if schema is not None else []
    upper = [f["name"] for f in fields if f["name"] != f["name"].lower()]
    if upper:
        raise SchemaError(
            f"unloaded columns {upper} are not lower case: alias them as quoted lower-case identifiers "
            '(e.g. amount AS "amount") in the feature query'
        )
    total = sum(p["rows"] for p in parts)
    if expected_rows is not None and total != expected_rows:
        raise RuntimeError(
            f"Snowflake reported {expected_rows} rows unloaded but the {len(parts)} file(s) under {prefix} hold "
            f"{total}; another writer may share the prefix"
        )
    return fields, parts
