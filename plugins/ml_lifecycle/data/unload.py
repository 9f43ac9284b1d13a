"""Snowflake ``COPY INTO <location>`` generation for the unload extraction mode.

Snowflake does not take bind variables inside ``COPY INTO``, so the feature query's pyformat
placeholders (``%(interval_start)s``) are replaced by literals here. Only values whose literal form is
derived from a parsed Python value are accepted (datetimes, dates, ISO datetime strings, finite numbers):
the text of a caller's value never reaches the SQL, which rules out injection through the parameters.
Stage, path and integration names are checked against strict patterns for the same reason.

Syntax followed (Snowflake SQL reference, "COPY INTO <location>")::

    COPY INTO { @<stage>[/<path>] | '<s3 url>' STORAGE_INTEGRATION = <name> }
    FROM ( <query> )
    FILE_FORMAT = ( TYPE = PARQUET [ COMPRESSION = SNAPPY ] )
    [ copyOptions: OVERWRITE, SINGLE, MAX_FILE_SIZE, ... ]
    [ HEADER = TRUE ]

``HEADER = TRUE`` keeps the query's column aliases as Parquet column names (without it Snowflake writes
``_COL_0``...). ``OVERWRITE = TRUE`` only replaces files with the same names, so the caller clears the
prefix first.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

_PLACEHOLDER = re.compile(r"%\((?P<name>[A-Za-z_][A-Za-z0-9_]*)\)s|%%|%")
_IDENT_PART = r"[A-Za-z_][A-Za-z0-9_$]{0,254}"
_STAGE = re.compile(rf"^{_IDENT_PART}(\.{_IDENT_PART}){{0,2}}$")
_IDENT = re.compile(rf"^{_IDENT_PART}$")
_PATH = re.compile(r"^[A-Za-z0-9_.=/-]*$")
_S3_URL = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9_.=/-]*)?$")

DEFAULT_MAX_FILE_SIZE = 256 * 1024 * 1024
MAX_FILE_SIZE_LIMIT = 5 * 1024 * 1024 * 1024  # Snowflake's ceiling for files unloaded to S3


class UnsafeSqlValueError(ValueError):
    """A value cannot be rendered as a SQL literal safely; the message names the parameter."""


def sql_literal(name: str, value: Any) -> str:
    """The SQL literal for one parameter value.

    :raises UnsafeSqlValueError: a type or value that has no safe literal form
    """
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return f"'{value.strftime('%Y-%m-%d %H:%M:%S.%f')}'"
    if isinstance(value, dt.date):
        return f"'{value.isoformat()}'"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UnsafeSqlValueError(f"parameter {name!r}: {value!r} has no SQL literal")
        return repr(value)
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            raise UnsafeSqlValueError(
                f"parameter {name!r}: only ISO dates/datetimes are accepted as text, got {value!r}"
            ) from None
        return sql_literal(name, parsed)
    raise UnsafeSqlValueError(f"parameter {name!r}: unsupported type {type(value).__name__}")


def bind_literals(sql: str, params: Mapping[str, Any]) -> str:
    """Replace ``%(name)s`` placeholders by safe literals and ``%%`` by ``%`` (pyformat semantics).

    :raises UnsafeSqlValueError: a placeholder without a value, a bare ``%``, or a value without a safe literal
    """

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "%%":  # noqa: S105
            return "%"
        if token == "%":  # noqa: S105
            raise UnsafeSqlValueError(
                f"bare '%' at offset {match.start()} of the query: write '%%' for a literal percent sign"
            )
        name = match["name"]
        if name not in params:
            raise UnsafeSqlValueError(f"the query uses %({name})s but no value was given for {name!r}")
        return sql_literal(name, params[name])

    return _PLACEHOLDER.sub(replace, sql)


def strip_statement(sql: str) -> str:
    """The query without surrounding whitespace and trailing semicolons, ready to nest in ``FROM ( )``."""
    text = sql.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    if not text:
        raise ValueError("the query is empty")
    return text


def stage_location(stage: str, path: str) -> str:
    """``@<stage>/<path>/`` after checking both parts.

    :raises ValueError: a stage name that is not a (qualified) identifier, or a path with unsafe characters
    """
    if not _STAGE.match(stage or ""):
        raise ValueError(f"stage {stage!r} is not a valid (optionally qualified) Snowflake identifier")
    path = path.strip("/")
    if not _PATH.match(path) or ".." in path.split("/"):
        raise ValueError(f"stage path {path!r} has characters outside [A-Za-z0-9_.=/-] or a '..' segment")
    return f"@{stage}/{path}/" if path else f"@{stage}/"


def external_location(s3_uri: str, storage_integration: str) -> str:
    """``'s3://bucket/prefix/' STORAGE_INTEGRATION = <name>`` after checking both parts."""
    uri = s3_uri.rstrip("/") + "/"
    if not _S3_URL.match(uri) or ".." in uri.split("/"):
        raise ValueError(f"S3 location {s3_uri!r} has characters outside [A-Za-z0-9_.=/-]")
    if not _IDENT.match(storage_integration or ""):
        raise ValueError(f"storage integration {storage_integration!r} is not a valid Snowflake identifier")
    return f"'{uri}' STORAGE_INTEGRATION = {storage_integration}"


def copy_into_statement(query: str, location: str, *, max_file_size: int = DEFAULT_MAX_FILE_SIZE) -> str:
    """The full ``COPY INTO <location>`` statement unloading ``query`` (literals already bound) as Parquet."""
    if not 1 <= int(max_file_size) <= MAX_FILE_SIZE_LIMIT:
        raise ValueError(f"max_file_size must be between 1 and {MAX_FILE_SIZE_LIMIT} bytes, got {max_file_size}")
    return (
        f"COPY INTO {location}\n"
        f"FROM (\n{strip_statement(query)}\n)\n"
        "FILE_FORMAT = (TYPE = PARQUET COMPRESSION = SNAPPY)\n"
        "OVERWRITE = TRUE\n"
        "SINGLE = FALSE\n"
        f"MAX_FILE_SIZE = {int(max_file_size)}\n"
        "HEADER = TRUE"
    )


def stage_url_from_describe(rows: Sequence[Sequence[Any]], columns: Sequence[str], stage: str) -> str:
    """The ``s3://`` URL of an external stage from the rows of ``DESC STAGE <stage>``.

    ``DESC STAGE`` returns one row per property; the ``URL`` property's value is a JSON list of URLs.

    :raises ValueError: the stage has no S3 URL (an internal stage, or another cloud)
    """
    names = [c.lower() for c in columns]
    try:
        prop_i, value_i = names.index("property"), names.index("property_value")
    except ValueError:
        raise ValueError(f"DESC STAGE {stage} returned unexpected columns {list(columns)}") from None
    for row in rows:
        if str(row[prop_i]).upper() == "URL":
            raw = row[value_i]
            try:
                urls = json.loads(raw) if isinstance(raw, str) and raw.startswith("[") else [raw]
            except json.JSONDecodeError:
                urls = [raw]
            urls = [u for u in urls if isinstance(u, str) and u]
            if urls and urls[0].startswith("s3://"):
                return urls[0].rstrip("/") + "/"
            raise ValueError(f"stage {stage} points at {urls or raw!r}, not at an s3:// location")
    raise ValueError(f"stage {stage} has no URL: it is an internal stage; the unload mode needs an external S3 stage")


def path_within_stage(stage_url: str, s3_uri: str, stage: str) -> str:
    """The path of ``s3_uri`` relative to the stage's URL.

    :raises ValueError: ``s3_uri`` is not under the stage's URL
    """
    target = s3_uri.rstrip("/") + "/"
    if not target.startswith(stage_url):
        raise ValueError(
            f"the destination {target} is not under stage {stage} ({stage_url}); point the stage at the "
            "datasets bucket or use a storage integration"
        )
    return target[len(stage_url) :]
