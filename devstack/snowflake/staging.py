"""Snowflake staging on the devstack's S3: storage integrations, external stages, unload, load and ``LIST``.

fakesnow has internal stages only (``PUT`` + ``COPY INTO <table> FROM @stage`` on the local disk). This layer,
used by :mod:`devstack.snowflake.server`, adds what the project's SQL uses of Snowflake's external staging,
with the devstack's S3 (moto) as the cloud storage:

- ``CREATE [OR REPLACE] STORAGE INTEGRATION [IF NOT EXISTS] <name> TYPE = EXTERNAL_STAGE
  STORAGE_PROVIDER = 'S3' ENABLED = TRUE STORAGE_AWS_ROLE_ARN = '...' STORAGE_ALLOWED_LOCATIONS = ('s3://...')
  [STORAGE_BLOCKED_LOCATIONS = (...)]``, ``DESC``/``DROP STORAGE INTEGRATION``;
- ``CREATE [OR REPLACE] [TEMPORARY] STAGE [IF NOT EXISTS] <name> [URL = 's3://...' STORAGE_INTEGRATION = <name>]
  [FILE_FORMAT = (...)]``, ``DESC STAGE``, ``DROP STAGE [IF EXISTS]`` (internal stages stay fakesnow's, with
  Snowflake's ``OR REPLACE`` / ``IF NOT EXISTS`` semantics added);
- ``COPY INTO { @<stage>[/<path>] | 's3://...' STORAGE_INTEGRATION = <name> } FROM ( <query> )
  FILE_FORMAT = ( TYPE = PARQUET [COMPRESSION = AUTO | SNAPPY | NONE] ) [HEADER] [OVERWRITE] [SINGLE]
  [MAX_FILE_SIZE]``: the query runs in DuckDB (translated by fakesnow) and its result is streamed into
  Parquet parts written to S3 with Snowflake's file naming (``data_0_0_0.snappy.parquet``...); the result row
  is ``rows_unloaded, input_bytes, output_bytes``;
- ``LIST @<external stage>[/<path>] [PATTERN = '<regex>']``;
- ``COPY INTO <table> FROM { @<external stage>[/<path>] | 's3://...' STORAGE_INTEGRATION = <name> }
  [FILES = (...)] [PATTERN = '...'] FILE_FORMAT = ( TYPE = PARQUET ... ) MATCH_BY_COLUMN_NAME = ...``: the
  files are fetched from S3 and loaded by fakesnow's ``COPY``.

Every other option, file format or form of these statements answers at once with Snowflake's error shape
(:func:`devstack.snowflake.sqltext.unsupported`, error ``000002``), never with a server error.

Parquet types of an unload follow Snowflake's logical types: ``NUMBER(p,s)`` is ``DECIMAL(p,s)`` (stored as
INT32/INT64 when the precision allows, as Snowflake's default physical-type optimisation does), an integer
expression is ``NUMBER(38,0)`` and so ``DECIMAL(38,0)``, ``FLOAT`` is ``DOUBLE``, ``TIMESTAMP_NTZ`` is an
INT64 timestamp with ``isAdjustedToUTC = false`` (microseconds, DuckDB's resolution), ``VARCHAR`` is a UTF-8
string, ``BOOLEAN`` is boolean.

Integrations and external stages are account objects that must survive a restart; they are kept in a JSON
file (``--staging-file``), written on every change.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import re
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from snowflake.connector.errors import ProgrammingError

from devstack.snowflake.sqltext import Parser, normalise_name, split_name, syntax_error, unsupported

log = logging.getLogger("devstack.snowflake.staging")

# statementTypeId values the connector reads (snowflake.connector.constants / fakesnow.statement_type)
TYPE_SELECT = 0x1000
TYPE_COPY = 0x3000 + 0x600
TYPE_DDL = 0x6000

DEFAULT_MAX_FILE_SIZE = 16 * 1024 * 1024  # Snowflake's default MAX_FILE_SIZE for an unload
MAX_FILE_SIZE_S3 = 5 * 1024 * 1024 * 1024
UNLOAD_BATCH_ROWS = 65_536

_CLAIM = re.compile(
    r"""^\s*(?:(?:--[^\n]*\n|/\*.*?\*/)\s*)*(?:
        CREATE\s+(?:OR\s+REPLACE\s+)?(?:(?:TEMP|TEMPORARY|VOLATILE)\s+)?STAGE\b
      | CREATE\s+(?:OR\s+REPLACE\s+)?STORAGE\s+INTEGRATION\b
      | DROP\s+(?:STAGE|STORAGE\s+INTEGRATION)\b
      | DESC(?:RIBE)?\s+(?:STAGE|STORAGE\s+INTEGRATION)\b
      | (?:LIST|LS)\s+@
      | COPY\s+INTO\b
    )""",
    re.IGNORECASE | re.DOTALL | re.VERBOSE,
)
_S3_URL = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<key>.*))?$")


@dataclasses.dataclass
class Result:
    """A statement's result: ``columns`` as ``(name, DuckDB type)`` pairs and the rows."""

    columns: list[tuple[str, str]]
    rows: list[tuple[Any, ...]]
    statement_type: int = TYPE_SELECT


def _status(message: str) -> Result:
    return Result([("status", "VARCHAR")], [(message,)], TYPE_DDL)


@dataclasses.dataclass
class Integration:
    """A storage integration: which S3 locations stages and unloads may use through it."""

    name: str
    enabled: bool
    allowed: list[str]
    blocked: list[str]
    role_arn: str
    created_on: str

    def check(self, url: str) -> None:
        """:raises ProgrammingError: the integration is disabled or does not allow ``url``"""
        if not self.enabled:
            raise ProgrammingError(
                msg=f"SQL execution error:\nIntegration '{self.name}' is disabled.", errno=3001, sqlstate="42501"
            )
        target = url.rstrip("/") + "/"
        blocked = any(target.startswith(b.rstrip("/") + "/") for b in self.blocked)
        allowed = any(a == "*" or target.startswith(a.rstrip("/") + "/") for a in self.allowed)
        if blocked or not allowed:
            raise ProgrammingError(
                msg=f"SQL execution error:\nLocation {url} is not allowed by integration {self.name}. Please use "
                "DESC INTEGRATION to check out allowed and blocked locations.",
                errno=3001,
                sqlstate="42501",
            )


@dataclasses.dataclass
class ExternalStage:
    """An external stage on S3, used through a storage integration."""

    database: str
    schema: str
    name: str
    url: str
    integration: str
    file_format: dict[str, Any]
    created_on: str
    temporary: bool = False

    @property
    def fqn(self) -> str:
        return f"{self.database}.{self.schema}.{self.name}"


@dataclasses.dataclass
class Location:
    """Where a ``COPY`` or ``LIST`` reads or writes: an S3 URL with its integration, or an internal stage."""

    text: str
    url: str | None = None
    integration: str | None = None
    stage: ExternalStage | None = None
    internal: bool = False


class Registry:
    """Integrations and external stages, kept in a JSON file so they survive a restart.

    :param path: the JSON file, or ``None`` to keep them in memory only.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.integrations: dict[str, Integration] = {}
        self.stages: dict[str, ExternalStage] = {}
        if path is not None and path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
            for item in data.get("integrations", []):
                self.integrations[item["name"]] = Integration(**item)
            for item in data.get("stages", []):
                stage = ExternalStage(**item)
                self.stages[stage.fqn] = stage

    def save(self) -> None:
        if self.path is None:
            return
        with self.lock:
            data = {
                "integrations": [dataclasses.asdict(i) for i in self.integrations.values()],
                "stages": [dataclasses.asdict(s) for s in self.stages.values() if not s.temporary],
            }
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self.path)


def split_s3_url(url: str) -> tuple[str, str]:
    """``(bucket, key)`` of an ``s3://`` URL.

    :raises ProgrammingError: not an S3 URL (the stand-in's only cloud storage)
    """
    match = _S3_URL.match(url)
    if not match:
        if re.match(r"^(azure|gcs|https?)://", url, re.IGNORECASE):
            raise unsupported(f"stage location {url} (the devstack serves s3:// locations only)")
        raise ProgrammingError(
            msg=f"SQL compilation error:\ninvalid URL prefix found in: '{url}'", errno=1011, sqlstate="42601"
        )
    return match["bucket"], match["key"] or ""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _duck_error(exc: Exception) -> ProgrammingError:
    """Snowflake's error shape for a DuckDB failure of a translated query."""
    import duckdb

    message = str(exc).split("\n")[0]
    if isinstance(exc, duckdb.CatalogException):
        return ProgrammingError(msg=f"SQL compilation error:\n{message}", errno=2003, sqlstate="42S02")
    if isinstance(exc, duckdb.BinderException):
        return ProgrammingError(msg=f"SQL compilation error:\n{message}", errno=904, sqlstate="42000")
    if isinstance(exc, duckdb.ConversionException):
        return ProgrammingError(msg=f"SQL execution error:\n{message}", errno=100038, sqlstate="22018")
    return ProgrammingError(msg=f"SQL execution error:\n{message}", errno=100090, sqlstate="22000")


def _unload_type(name: str, data_type: Any) -> Any:
    """The Parquet (Arrow) type Snowflake writes for a column of the query's result."""
    import pyarrow as pa

    if pa.types.is_decimal(data_type):
        return data_type
    if pa.types.is_integer(data_type):
        return pa.decimal128(38, 0)  # an integer expression is NUMBER(38,0) in Snowflake
    if pa.types.is_floating(data_type):
        return pa.float64()
    if pa.types.is_boolean(data_type) or pa.types.is_date(data_type) or pa.types.is_binary(data_type):
        return data_type
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        return pa.string()
    if pa.types.is_timestamp(data_type):
        return pa.timestamp("us", tz="UTC" if data_type.tz else None)
    if pa.types.is_time(data_type):
        return pa.time64("us")
    raise unsupported(f"unloading column {name} of type {data_type} to Parquet")


class Staging:
    """Runs the staging statements listed in the module docstring against fakesnow sessions.

    :param registry: where integrations and external stages are kept.
    :param s3_client: returns a boto3 S3 client for the devstack's S3 (called once, lazily).
    """

    def __init__(self, registry: Registry, s3_client: Callable[[], Any]) -> None:
        self.registry = registry
        self._s3_factory = s3_client
        self._s3: Any = None
        self._s3_lock = threading.Lock()

    @property
    def s3(self) -> Any:
        with self._s3_lock:
            if self._s3 is None:
                self._s3 = self._s3_factory()
            return self._s3

    @staticmethod
    def claims(sql: str) -> bool:
        """Whether ``sql`` is a statement this layer looks at (it may still hand it to fakesnow)."""
        return bool(_CLAIM.match(sql))

    # ----------------------------------------------------------------------------------------- dispatch

    def execute(self, conn: Any, sql: str) -> Result | None:
        """Run one staging statement in the fakesnow session ``conn``.

        :return: the result, or ``None`` when fakesnow runs the statement itself (internal stages)
        :raises ProgrammingError: with Snowflake's error code and message
        """
        p = Parser(sql)
        if p.accept("COPY", "INTO"):
            return self._copy(conn, p)
        if p.accept("LIST") or p.accept("LS"):
            return self._list(conn, p)
        if p.accept("DESC") or p.accept("DESCRIBE"):
            if p.accept("STAGE"):
                return self._describe_stage(conn, p)
            p.expect("STORAGE", "INTEGRATION")
            return self._describe_integration(p)
        if p.accept("DROP"):
            if p.accept("STAGE"):
                return self._drop_stage(conn, p)
            p.expect("STORAGE", "INTEGRATION")
            return self._drop_integration(p)
        p.expect("CREATE")
        replace = p.accept("OR", "REPLACE")
        if p.accept("STORAGE", "INTEGRATION"):
            return self._create_integration(p, replace)
        temporary = p.accept("TEMP") or p.accept("TEMPORARY") or p.accept("VOLATILE")
        p.expect("STAGE")
        return self._create_stage(conn, p, replace=replace, temporary=temporary)

    # ----------------------------------------------------------------------------------------- names

    @staticmethod
    def _qualify(conn: Any, text: str) -> tuple[str, str, str]:
        parts = split_name(text)
        if len(parts) > 3:
            raise syntax_error(f"invalid name {text}")
        database = parts[-3] if len(parts) == 3 else conn.database
        schema = parts[-2] if len(parts) >= 2 else conn.schema
        if not database or not schema:
            raise ProgrammingError(
                msg="Cannot perform operation. This session does not have a current database. Call 'USE "
                "DATABASE', or use a qualified name.",
                errno=90105,
                sqlstate="22000",
            )
        return database, schema, parts[-1]

    @staticmethod
    def _internal_exists(conn: Any, database: str, schema: str, name: str) -> bool:
        row = conn._duck_conn.execute(
            "SELECT count(*) FROM _fs_global._fs_information_schema._fs_stages "
            "WHERE database_name = ? AND schema_name = ? AND name = ?",
            [database, schema, name],
        ).fetchone()
        return bool(row and row[0])

    @staticmethod
    def _drop_internal(conn: Any, database: str, schema: str, name: str) -> None:
        conn._duck_conn.execute(
            "DELETE FROM _fs_global._fs_information_schema._fs_stages "
            "WHERE database_name = ? AND schema_name = ? AND name = ?",
            [database, schema, name],
        )

    def _location(self, conn: Any, token_text: str, kind: str) -> Location:
        """Resolve ``@stage[/path]`` (``kind == 'stage'``) or ``'s3://...'`` (``kind == 'string'``)."""
        from devstack.snowflake.sqltext import unquote_string

        if kind == "string":
            url = unquote_string(token_text)
            split_s3_url(url)
            return Location(text=f"'{url}'", url=url)
        body = token_text[1:]
        if body.startswith(("~", "%")):
            return Location(text=token_text, internal=True)
        match = re.match(r'^((?:"(?:[^"]|"")*"|[^/"])+)(?:/(.*))?$', body)
        if not match:
            raise syntax_error(f"invalid stage location {token_text}")
        database, schema, name = self._qualify(conn, match[1])
        path = match[2] or ""
        stage = self.registry.stages.get(f"{database}.{schema}.{name}")
        if stage is not None:
            url = stage.url.rstrip("/") + "/" + path if path else stage.url
            return Location(text=token_text, url=url, integration=stage.integration, stage=stage)
        if self._internal_exists(conn, database, schema, name):
            return Location(text=token_text, internal=True)
        raise ProgrammingError(
            msg=f"SQL compilation error:\nStage '{database}.{schema}.{name}' does not exist or not authorized.",
            errno=2003,
            sqlstate="02000",
        )

    def _integration(self, name: str | None, url: str) -> Integration:
        if not name:
            raise unsupported(f"a location without STORAGE_INTEGRATION ({url}); CREDENTIALS are not served")
        integration = self.registry.integrations.get(normalise_name(name))
        if integration is None:
            raise ProgrammingError(
                msg=f"SQL compilation error:\nIntegration '{normalise_name(name)}' does not exist or not authorized.",
                errno=3001,
                sqlstate="02000",
            )
        integration.check(url)
        return integration

    # ----------------------------------------------------------------------------------------- integrations

    def _create_integration(self, p: Parser, replace: bool) -> Result:
        if_not_exists = p.accept("IF", "NOT", "EXISTS")
        name = normalise_name(p.name())
        opts = p.options()
        kind = str(opts.pop("TYPE", "")).upper()
        if kind != "EXTERNAL_STAGE":
            raise unsupported(f"STORAGE INTEGRATION TYPE = {kind or '(none)'}")
        provider = str(opts.pop("STORAGE_PROVIDER", "")).upper()
        if provider != "S3":
            raise unsupported(f"STORAGE_PROVIDER = {provider or '(none)'} (the devstack serves S3)")
        enabled = opts.pop("ENABLED", None)
        if not isinstance(enabled, bool):
            raise syntax_error("ENABLED must be TRUE or FALSE")
        role_arn = opts.pop("STORAGE_AWS_ROLE_ARN", None)
        if not isinstance(role_arn, str) or not role_arn.startswith("arn:"):
            raise syntax_error("STORAGE_AWS_ROLE_ARN must be an IAM role ARN")
        allowed = opts.pop("STORAGE_ALLOWED_LOCATIONS", None)
        blocked = opts.pop("STORAGE_BLOCKED_LOCATIONS", [])
        allowed = [allowed] if isinstance(allowed, str) else allowed
        blocked = [blocked] if isinstance(blocked, str) else blocked
        if not allowed or not all(isinstance(a, str) for a in allowed) or not all(isinstance(b, str) for b in blocked):
            raise syntax_error("STORAGE_ALLOWED_LOCATIONS must list s3:// locations")
        for location in [*allowed, *blocked]:
            if location != "*":
                split_s3_url(location)
        opts.pop("COMMENT", None)
        opts.pop("STORAGE_AWS_EXTERNAL_ID", None)
        if opts:
            raise unsupported(f"STORAGE INTEGRATION option {sorted(opts)[0]}")
        with self.registry.lock:
            if name in self.registry.integrations and not replace:
                if if_not_exists:
                    return _status(f"{name} already exists, statement succeeded.")
                raise ProgrammingError(
                    msg=f"SQL compilation error:\nObject '{name}' already exists.", errno=2002, sqlstate="42710"
                )
            integration = Integration(name, enabled, list(allowed), list(blocked), role_arn, _now())
            self.registry.integrations[name] = integration
            self.registry.save()
        return _status(f"Integration {name} successfully created.")

    def _describe_integration(self, p: Parser) -> Result:
        name = normalise_name(p.name())
        integration = self.registry.integrations.get(name)
        if integration is None:
            raise ProgrammingError(
                msg=f"SQL compilation error:\nIntegration '{name}' does not exist or not authorized.",
                errno=3001,
                sqlstate="02000",
            )
        columns = [(c, "VARCHAR") for c in ("property", "property_type", "property_value", "property_default")]
        rows = [
            ("ENABLED", "Boolean", str(integration.enabled).lower(), "false"),
            ("STORAGE_PROVIDER", "String", "S3", ""),
            ("STORAGE_ALLOWED_LOCATIONS", "List", ",".join(integration.allowed), "[]"),
            ("STORAGE_BLOCKED_LOCATIONS", "List", ",".join(integration.blocked), "[]"),
            ("STORAGE_AWS_ROLE_ARN", "String", integration.role_arn, ""),
        ]
        return Result(columns, rows)

    def _drop_integration(self, p: Parser) -> Result:
        if_exists = p.accept("IF", "EXISTS")
        name = normalise_name(p.name())
        with self.registry.lock:
            if self.registry.integrations.pop(name, None) is None and not if_exists:
                raise ProgrammingError(
                    msg=f"SQL compilation error:\nIntegration '{name}' does not exist or not authorized.",
                    errno=3001,
                    sqlstate="02000",
                )
            self.registry.save()
        return _status(f"{name} successfully dropped.")

    # ----------------------------------------------------------------------------------------- stages

    def _create_stage(self, conn: Any, p: Parser, *, replace: bool, temporary: bool) -> Result | None:
        if_not_exists = p.accept("IF", "NOT", "EXISTS")
        database, schema, name = self._qualify(conn, p.name())
        fqn = f"{database}.{schema}.{name}"
        opts = p.options()
        url = opts.pop("URL", None)
        integration = opts.pop("STORAGE_INTEGRATION", None)
        file_format = opts.pop("FILE_FORMAT", {})
        opts.pop("COMMENT", None)
        if "CREDENTIALS" in opts:
            raise unsupported("CREATE STAGE with CREDENTIALS (use a STORAGE_INTEGRATION)")
        if opts:
            raise unsupported(f"CREATE STAGE option {sorted(opts)[0]}")
        if not isinstance(file_format, dict):
            raise unsupported("FILE_FORMAT = <named file format>")
        with self.registry.lock:
            exists = fqn in self.registry.stages or self._internal_exists(conn, database, schema, name)
            if exists and not replace:
                if if_not_exists:
                    return _status(f"{name} already exists, statement succeeded.")
                raise ProgrammingError(
                    msg=f"SQL compilation error:\nObject '{name}' already exists.", errno=2002, sqlstate="42710"
                )
            if url is None:
                if integration is not None:
                    raise syntax_error("STORAGE_INTEGRATION needs a URL")
                if exists:
                    self.registry.stages.pop(fqn, None)
                    self._drop_internal(conn, database, schema, name)
                    self.registry.save()
                return None  # fakesnow creates the internal stage
            if not isinstance(url, str):
                raise syntax_error("URL must be a string")
            split_s3_url(url)
            self._integration(integration, url)
            if exists:
                self._drop_internal(conn, database, schema, name)
            self.registry.stages[fqn] = ExternalStage(
                database, schema, name, url, normalise_name(integration), file_format, _now(), temporary
            )
            self.registry.save()
        return _status(f"Stage area {name} successfully created.")

    def _describe_stage(self, conn: Any, p: Parser) -> Result:
        database, schema, name = self._qualify(conn, p.name())
        stage = self.registry.stages.get(f"{database}.{schema}.{name}")
        names = ("parent_property", "property", "property_type", "property_value", "property_default")
        columns = [(c, "VARCHAR") for c in names]
        if stage is None:
            if not self._internal_exists(conn, database, schema, name):
                raise ProgrammingError(
                    msg=f"SQL compilation error:\nStage '{database}.{schema}.{name}' does not exist or not authorized.",
                    errno=2003,
                    sqlstate="02000",
                )
            rows = [("STAGE_LOCATION", "URL", "String", "", ""), ("STAGE_FILE_FORMAT", "TYPE", "String", "CSV", "CSV")]
            return Result(columns, rows)
        file_type = str(stage.file_format.get("TYPE", "CSV"))
        rows = [
            ("STAGE_LOCATION", "URL", "String", json.dumps([stage.url]), ""),
            ("STAGE_INTEGRATION", "STORAGE_INTEGRATION", "String", stage.integration, ""),
            ("STAGE_FILE_FORMAT", "TYPE", "String", file_type, "CSV"),
        ]
        return Result(columns, rows)

    def _drop_stage(self, conn: Any, p: Parser) -> Result:
        if_exists = p.accept("IF", "EXISTS")
        database, schema, name = self._qualify(conn, p.name())
        fqn = f"{database}.{schema}.{name}"
        with self.registry.lock:
            if self.registry.stages.pop(fqn, None) is not None:
                self.registry.save()
            elif self._internal_exists(conn, database, schema, name):
                self._drop_internal(conn, database, schema, name)
            elif not if_exists:
                raise ProgrammingError(
                    msg=f"SQL compilation error:\nStage '{fqn}' does not exist or not authorized.",
                    errno=2003,
                    sqlstate="02000",
                )
        return _status(f"{name} successfully dropped.")

    # ----------------------------------------------------------------------------------------- S3

    def _objects(self, url: str) -> Iterator[dict[str, Any]]:
        bucket, prefix = split_s3_url(url)
        paginator = self.s3.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                yield from page.get("Contents", [])
        except self.s3.exceptions.NoSuchBucket:
            raise ProgrammingError(
                msg=f"SQL execution error:\nBucket {bucket} of location {url} does not exist.",
                errno=91016,
                sqlstate="22000",
            ) from None

    def _list(self, conn: Any, p: Parser) -> Result | None:
        token = p.next()
        if token.kind != "stage":
            raise syntax_error(f"line 1 at position {token.start} unexpected '{token.text}'; expected @<stage>")
        location = self._location(conn, token.text, "stage")
        if location.internal:
            return None
        opts = p.options()
        pattern = opts.pop("PATTERN", None)
        if opts:
            raise unsupported(f"LIST option {sorted(opts)[0]}")
        regex = re.compile(pattern) if isinstance(pattern, str) else None
        bucket, _ = split_s3_url(location.url or "")
        rows = []
        for obj in self._objects(location.url or ""):
            name = f"s3://{bucket}/{obj['Key']}"
            if regex is not None and not regex.fullmatch(name):
                continue
            modified = obj["LastModified"].astimezone(dt.UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
            rows.append((name, int(obj["Size"]), str(obj.get("ETag", "")).strip('"'), modified))
        columns = [("name", "VARCHAR"), ("size", "BIGINT"), ("md5", "VARCHAR"), ("last_modified", "VARCHAR")]
        return Result(columns, rows)

    # ----------------------------------------------------------------------------------------- COPY

    def _copy(self, conn: Any, p: Parser) -> Result | None:
        target = p.next()
        if target.kind in ("stage", "string"):
            location = self._location(conn, target.text, target.kind)
            if location.internal:
                raise unsupported(f"COPY INTO {target.text} (unloading to an internal stage)")
            integration = None
            if target.kind == "string" and p.accept("STORAGE_INTEGRATION", "="):
                integration = p.name()  # externalLocation: 's3://...' STORAGE_INTEGRATION = <name> FROM ...
            elif target.kind == "string" and p.peek() is not None and p.peek().is_word("CREDENTIALS"):  # type: ignore[union-attr]
                raise unsupported("a location with CREDENTIALS (use a STORAGE_INTEGRATION)")
            p.expect("FROM")
            if not (p.peek() and p.peek().text == "("):  # type: ignore[union-attr]
                raise unsupported("COPY INTO <location> FROM <table> (write FROM ( SELECT ... ))")
            query = p.balanced()
            opts = p.options()
            if location.stage is None:
                location.integration = integration or opts.pop("STORAGE_INTEGRATION", None)
            self._integration(location.integration, location.url or "")
            return self._unload(conn, location, query, opts)
        if target.kind != "ident":
            raise syntax_error(f"line 1 at position {target.start} unexpected '{target.text}'")
        column_list = p.peek() is not None and p.peek().text == "("  # type: ignore[union-attr]
        if column_list:
            p.balanced()
        p.expect("FROM")
        source = p.peek()
        if source is None:
            raise syntax_error("unexpected end of statement; expected a stage or location")
        if source.text == "(":
            subquery = p.balanced()
            stage_ref = re.search(r"@(?:\"(?:[^\"]|\"\")*\"|[^\s(),;'\"])+", subquery)
            if stage_ref and not self._location(conn, stage_ref.group(), "stage").internal:
                raise unsupported("COPY INTO <table> FROM ( SELECT ... ) from an external stage")
            opts = p.options()
            self._check_load_options(opts, internal=True)
            return None
        p.next()
        location = self._location(conn, source.text, source.kind)
        opts = p.options()
        if location.internal:
            self._check_load_options(opts, internal=True)
            return None
        if column_list:
            raise unsupported("COPY INTO <table> ( <column list> ) from an external stage (use MATCH_BY_COLUMN_NAME)")
        if location.stage is None:
            location.integration = opts.pop("STORAGE_INTEGRATION", None)
        self._integration(location.integration, location.url or "")
        self._check_load_options(opts, internal=False)
        return self._load(conn, target.text, location, opts)

    @staticmethod
    def _check_load_options(opts: dict[str, Any], *, internal: bool) -> None:
        allowed = {"FILE_FORMAT", "FILES", "MATCH_BY_COLUMN_NAME", "PURGE", "FORCE", "ON_ERROR"}
        if not internal:
            allowed.add("PATTERN")
        for key in opts:
            if key not in allowed:
                raise unsupported(f"COPY INTO <table> option {key}")
        on_error = opts.get("ON_ERROR", "ABORT_STATEMENT")
        if str(on_error).upper() != "ABORT_STATEMENT":
            raise unsupported(f"ON_ERROR = {on_error}")
        fmt = opts.get("FILE_FORMAT", {"TYPE": "CSV"})
        if not isinstance(fmt, dict):
            raise unsupported("FILE_FORMAT = <named file format>")
        kind = str(fmt.get("TYPE", "CSV")).upper()
        known = {
            "PARQUET": {"TYPE", "COMPRESSION", "USE_LOGICAL_TYPE", "BINARY_AS_TEXT", "USE_VECTORIZED_SCANNER"},
            "CSV": {"TYPE", "SKIP_HEADER", "FIELD_DELIMITER", "FIELD_OPTIONALLY_ENCLOSED_BY"},
        }
        if kind not in known:
            raise unsupported(f"loading FILE_FORMAT TYPE = {kind}")
        for key in fmt:
            if key not in known[kind]:
                raise unsupported(f"{kind} FILE_FORMAT option {key} when loading")

    def _unload(self, conn: Any, location: Location, query: str, opts: dict[str, Any]) -> Result:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
        import sqlglot
        import sqlglot.errors
        from sqlglot import exp

        stage_format = location.stage.file_format if location.stage else {}
        fmt = opts.pop("FILE_FORMAT", None) or stage_format or {"TYPE": "CSV"}
        if not isinstance(fmt, dict):
            raise unsupported("FILE_FORMAT = <named file format>")
        kind = str(fmt.get("TYPE", "CSV")).upper()
        if kind != "PARQUET":
            raise unsupported(f"unloading FILE_FORMAT TYPE = {kind} (the stand-in unloads Parquet)")
        compression = str(fmt.get("COMPRESSION", "AUTO")).upper()
        if compression not in ("AUTO", "SNAPPY", "NONE"):
            raise unsupported(f"Parquet COMPRESSION = {compression}")
        for key in fmt:
            if key not in ("TYPE", "COMPRESSION"):
                raise unsupported(f"PARQUET FILE_FORMAT option {key} when unloading")
        flags = {}
        for key in ("OVERWRITE", "SINGLE", "HEADER", "DETAILED_OUTPUT", "INCLUDE_QUERY_ID"):
            value = opts.pop(key, False)
            if not isinstance(value, bool):
                raise ProgrammingError(
                    msg=f"SQL compilation error:\ninvalid value [{value}] for parameter '{key}'",
                    errno=1008,
                    sqlstate="22023",
                )
            flags[key] = value
        for key in ("DETAILED_OUTPUT", "INCLUDE_QUERY_ID"):
            if flags[key]:
                raise unsupported(f"COPY INTO <location> option {key} = TRUE")
        max_file_size = opts.pop("MAX_FILE_SIZE", DEFAULT_MAX_FILE_SIZE)
        if not isinstance(max_file_size, int) or not 1 <= max_file_size <= MAX_FILE_SIZE_S3:
            raise ProgrammingError(
                msg=f"SQL compilation error:\ninvalid value [{max_file_size}] for parameter 'MAX_FILE_SIZE'",
                errno=1008,
                sqlstate="22023",
            )
        if opts:
            raise unsupported(f"COPY INTO <location> option {sorted(opts)[0]}")

        bucket, key = split_s3_url(location.url or "")
        file_prefix = key + "data" if (key == "" or key.endswith("/")) else key
        extension = ".parquet" if compression == "NONE" else ".snappy.parquet"
        codec = "none" if compression == "NONE" else "snappy"
        if not flags["OVERWRITE"]:
            existing = next(iter(self._objects(f"s3://{bucket}/{file_prefix}")), None)
            if existing is not None:
                raise ProgrammingError(
                    msg=f"Files already existing at the unload destination: {location.text}. "
                    "Use overwrite option to force unloading.",
                    errno=1,
                    sqlstate="22000",
                )

        cursor = conn.cursor()
        try:
            expression = sqlglot.parse_one(query, read="snowflake")
        except sqlglot.errors.ParseError as exc:
            raise syntax_error(str(exc).replace("\x1b[4m", "").replace("\x1b[0m", "")) from None
        if not isinstance(expression, exp.Query):
            raise syntax_error(f"COPY INTO <location> needs a query in FROM ( ... ), got {expression.key.upper()}")
        cursor.check_db_and_schema(expression)
        duck_sql = cursor._transform(expression, None).sql(dialect="duckdb")
        try:
            reader = conn._duck_conn.execute(duck_sql).to_arrow_reader(UNLOAD_BATCH_ROWS)
        except Exception as exc:
            raise _duck_error(exc) from None

        fields = []
        for i, field in enumerate(reader.schema):
            name = field.name if flags["HEADER"] else f"_COL_{i}"
            fields.append(pa.field(name, _unload_type(field.name, field.type)))
        schema = pa.schema(fields)
        written: list[tuple[str, int, int]] = []
        state: dict[str, Any] = {"writer": None, "sink": None, "rows": 0}
        rows_total = input_bytes = 0
        bytes_per_row: float | None = None

        def open_file() -> None:
            state["sink"] = pa.BufferOutputStream()
            state["writer"] = pq.ParquetWriter(
                state["sink"], schema, compression=codec, store_decimal_as_integer=True, write_statistics=True
            )
            state["rows"] = 0

        def close_file() -> None:
            state["writer"].close()
            body = state["sink"].getvalue().to_pybytes()
            index = len(written)
            name = file_prefix if flags["SINGLE"] else f"{file_prefix}_0_0_{index}{extension}"
            self.s3.put_object(Bucket=bucket, Key=name, Body=body)
            written.append((name, state["rows"], len(body)))
            state["writer"] = None

        try:
            for raw in reader:
                batch = pa.RecordBatch.from_arrays(
                    [pc.cast(col, f.type) for col, f in zip(raw.columns, schema, strict=True)], schema=schema
                )
                rows_total += batch.num_rows
                input_bytes += raw.nbytes
                offset = 0
                while offset < batch.num_rows:
                    if state["writer"] is None:
                        open_file()
                    remaining = batch.num_rows - offset
                    take = remaining
                    if not flags["SINGLE"]:
                        # until a row group was written, the in-memory size bounds the Parquet size per row
                        per_row = bytes_per_row or max(raw.nbytes / max(raw.num_rows, 1), 1.0)
                        room = max_file_size - state["sink"].tell()
                        take = max(1, min(remaining, int(room / per_row)))
                    state["writer"].write_batch(batch.slice(offset, take))
                    offset += take
                    state["rows"] += take
                    if bytes_per_row is None:
                        bytes_per_row = max(state["sink"].tell() / state["rows"], 1.0)
                    if not flags["SINGLE"] and state["sink"].tell() >= max_file_size * 0.9:
                        close_file()
            if state["writer"] is not None and state["rows"]:
                close_file()
        except ProgrammingError:
            raise
        except Exception as exc:
            if type(exc).__module__.startswith("duckdb"):
                raise _duck_error(exc) from None
            raise
        if flags["SINGLE"] and written and written[0][2] > max_file_size:
            log.info("SINGLE unload of %d bytes exceeds MAX_FILE_SIZE %d", written[0][2], max_file_size)
        output_bytes = sum(w[2] for w in written)
        log.info(
            "Unloaded %d rows into %d file(s) under s3://%s/%s (%d bytes)",
            rows_total,
            len(written),
            bucket,
            file_prefix,
            output_bytes,
        )
        columns = [("rows_unloaded", "BIGINT"), ("input_bytes", "BIGINT"), ("output_bytes", "BIGINT")]
        return Result(columns, [(rows_total, input_bytes, output_bytes)], TYPE_COPY)

    def _load(self, conn: Any, table: str, location: Location, opts: dict[str, Any]) -> Result:
        bucket, prefix = split_s3_url(location.url or "")
        files = opts.pop("FILES", None)
        pattern = opts.pop("PATTERN", None)
        purge = bool(opts.pop("PURGE", False))
        opts.pop("FORCE", None)  # load metadata is not kept for external stages: every listed file loads
        if isinstance(files, str):
            files = [files]
        if files is not None:
            base = prefix if (prefix == "" or prefix.endswith("/")) else prefix + "/"
            keys = [base + f for f in files]
        else:
            regex = re.compile(pattern) if isinstance(pattern, str) else None
            keys = [
                o["Key"]
                for o in self._objects(location.url or "")
                if not o["Key"].endswith("/") and (regex is None or regex.fullmatch(o["Key"][len(prefix) :]))
            ]
        fmt = opts.get("FILE_FORMAT", {"TYPE": "CSV"})
        if not keys:
            return Result([("status", "VARCHAR")], [("Copy executed with 0 files processed.",)], TYPE_COPY)
        with tempfile.TemporaryDirectory(prefix="devstack-copy-") as tmp:
            local_names = {}
            for i, key in enumerate(keys):
                local = f"{i:06d}_{uuid.uuid4().hex[:8]}_{key.rsplit('/', 1)[-1]}"
                try:
                    self.s3.download_file(bucket, key, str(Path(tmp) / local))
                except Exception as exc:
                    raise ProgrammingError(
                        msg=f"Remote file 's3://{bucket}/{key}' was not found. There are several potential causes. "
                        f"The file might not exist. ({exc.__class__.__name__})",
                        errno=91016,
                        sqlstate="22000",
                    ) from None
                local_names[local] = f"s3://{bucket}/{key}"
            fmt_sql = " ".join(
                f"{k} = {v if isinstance(v, bool | int) or k == 'TYPE' else repr(str(v))}" for k, v in fmt.items()
            )
            parts = [f"COPY INTO {table} FROM 'file://{tmp}/'", f"FILE_FORMAT = ({fmt_sql})"]
            if "MATCH_BY_COLUMN_NAME" in opts:
                parts.append(f"MATCH_BY_COLUMN_NAME = {opts['MATCH_BY_COLUMN_NAME']}")
            cursor = conn.cursor()
            cursor.execute(" ".join(parts))
            table_result = cursor._arrow_table
        rows = []
        for row in table_result.to_pylist():
            values = list(row.values())
            local = str(values[0]).rsplit("/", 1)[-1]
            values[0] = local_names.get(local, values[0])
            rows.append(tuple(values))
        if purge:
            for key in keys:
                self.s3.delete_object(Bucket=bucket, Key=key)
        types = {"rows_parsed": "BIGINT", "rows_loaded": "BIGINT", "error_limit": "BIGINT", "errors_seen": "BIGINT"}
        columns = [(name, types.get(name, "VARCHAR")) for name in table_result.column_names]
        return Result(columns, rows, TYPE_COPY)
