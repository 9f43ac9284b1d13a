"""Run fakesnow's Snowflake-compatible HTTP server with its databases on disk.

``python -m devstack.snowflake.server --host 127.0.0.1 --port 8765 --db-path .devstack/snowflake/db``

fakesnow's own ``fakesnow -s`` keeps every database in memory. Its server module reads one module-level
:class:`fakesnow.instance.FakeSnow` (``fakesnow.server.shared_fs``) for every session that does not ask
for a database path itself, so this launcher replaces that instance with one created with ``db_path``:
each Snowflake database is then a DuckDB file ``<db-path>/<DATABASE>.db``. Database files found at start
are attached again, so data survives a restart. On SIGTERM or SIGINT the server stops accepting
requests and the DuckDB connection is closed, which checkpoints the files.

Internal stages (``PUT file://... @stage``) are stored under ``--stage-path`` on the local disk: the
client and the server run on the same machine, so the Snowflake connector writes the staged files there
itself and ``COPY INTO <table> FROM @stage`` reads them. External stages, storage integrations, unloads to
S3 and loads from S3 are served by :mod:`devstack.snowflake.staging` on the S3 endpoint given with
``--s3-endpoint-url`` (the devstack's moto); their definitions are kept in ``--staging-file``.

Every failure answers in Snowflake's error shape (``success: false`` with an error code and a message),
which the connector raises at once as ``ProgrammingError``. fakesnow itself answers an exception it does
not expect (an unsupported option, SQL it cannot translate) with HTTP 500, which the connector retries for
minutes before it gives up; here such an exception becomes error ``000002`` ("Unsupported feature")
naming what failed.

The server also answers ``GET /_devstack/health`` with 200 once the databases are attached; its JSON
counts the statements a client re-sent (``resent_statements``), which the connector does when an answer
takes longer than its socket timeout.
"""

from __future__ import annotations

import collections
import gzip
import json
import logging
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

from devstack.processes import server_parser

log = logging.getLogger("devstack.snowflake")

HEALTH_PATH = "/_devstack/health"
QUERY_PATH = "/queries/v1/query-request"


def _error_body(code: int, sqlstate: str | None, message: str) -> dict[str, Any]:
    text = f"{code:06d}"
    return {"data": {"errorCode": text, "sqlState": sqlstate}, "code": text, "message": message, "success": False}


def _patch_cursor_errors() -> None:
    """Make fakesnow's cursor raise ``ProgrammingError`` for every failure, naming it.

    fakesnow turns ``NotImplementedError`` and parse errors into ``ProgrammingError`` itself; anything else
    (``ValueError("Unknown copy parameter: HEADER")``, an assertion on SQL it does not expect, a DuckDB
    error) escapes and its server answers HTTP 500. Wrapped here, the message names the exception.
    """
    import duckdb
    from fakesnow.cursor import FakeSnowflakeCursor
    from snowflake.connector.errors import ProgrammingError

    from devstack.snowflake.sqltext import unsupported

    original = FakeSnowflakeCursor.execute
    if getattr(original, "_devstack_wrapped", False):
        return

    def execute(self: Any, command: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, command, *args, **kwargs)
        except ProgrammingError:
            raise
        except duckdb.Error as exc:
            message = str(exc).split("\n")[0]
            raise ProgrammingError(msg=f"SQL execution error:\n{message}", errno=100090, sqlstate="22000") from exc
        except Exception as exc:
            log.warning("Statement failed in fakesnow: %s: %s", type(exc).__name__, exc)
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise unsupported(detail) from exc

    execute._devstack_wrapped = True  # type: ignore[attr-defined]
    FakeSnowflakeCursor.execute = execute  # type: ignore[method-assign]


class ResentRequests:
    """Counts query requests the connector sent again (a request id seen before, or a ``retryCount``).

    The connector re-sends a statement whose answer takes longer than its socket timeout, and the stand-in
    then runs it again; the count (in the health answer) shows whether that happened.
    """

    def __init__(self, remembered: int = 50_000) -> None:
        self.count = 0
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._remembered = remembered

    def observe(self, request_id: str | None, retry_count: str | None) -> None:
        resent = bool(retry_count and retry_count != "0")
        if request_id:
            resent = resent or request_id in self._seen
            self._seen[request_id] = None
            while len(self._seen) > self._remembered:
                self._seen.popitem(last=False)
        if resent:
            self.count += 1
            log.warning("Statement re-sent by the client (requestId %s, retryCount %s)", request_id, retry_count)


def _staging_route(staging: Any, resent: ResentRequests):
    """The ``/queries/v1/query-request`` endpoint: staging statements here, the rest to fakesnow."""
    import fakesnow.server
    from fakesnow.rowtype import describe_as_rowtype
    from snowflake.connector.errors import ProgrammingError
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse

    from devstack.snowflake.sqltext import unsupported

    async def query_request(request: Any) -> Any:
        resent.observe(request.query_params.get("requestId"), request.query_params.get("retryCount"))
        try:
            body = await request.body()
            if request.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            payload = json.loads(body)
            sql = payload.get("sqlText", "")
        except Exception as exc:  # a malformed request: let fakesnow answer it as it does
            log.info("Unreadable query request (%s); passing it to fakesnow", exc)
            sql, payload = "", {}
        if sql and staging.claims(sql):
            try:
                conn = fakesnow.server.to_conn(fakesnow.server.to_token(request))
            except fakesnow.server.ServerError as exc:
                return JSONResponse(
                    {"data": None, "code": exc.code, "message": exc.message, "success": False, "headers": None},
                    status_code=exc.status_code,
                )
            try:
                if payload.get("bindings"):
                    raise unsupported("bind variables in a staging statement")
                if payload.get("describeOnly"):
                    raise unsupported("describe-only staging statement")
                result = await run_in_threadpool(staging.execute, conn, sql)
            except ProgrammingError as exc:
                log.info("Staging statement failed: %s", exc.msg)
                return JSONResponse(_error_body(exc.errno or 2, exc.sqlstate, exc.msg or str(exc)))
            except Exception as exc:
                log.exception("Staging statement failed unexpectedly")
                return JSONResponse(_error_body(2, "0A000", f"Unsupported feature '{type(exc).__name__}: {exc}'."))
            if result is not None:
                rowtype = describe_as_rowtype([(name, kind, "YES", None, None, None) for name, kind in result.columns])
                return JSONResponse(
                    {
                        "data": {
                            "parameters": [{"name": "TIMEZONE", "value": "Etc/UTC"}],
                            "rowtype": rowtype,
                            "total": len(result.rows),
                            "returned": len(result.rows),
                            "queryId": str(uuid.uuid4()),
                            "statementTypeId": result.statement_type,
                            "finalDatabaseName": conn.database,
                            "finalSchemaName": conn.schema,
                            "queryResultFormat": "json",
                            "rowset": [[None if v is None else str(v) for v in row] for row in result.rows],
                        },
                        "success": True,
                    }
                )
        try:
            response = await fakesnow.server.query_request(request)
        except Exception as exc:  # e.g. a statement sqlglot cannot parse
            log.warning("fakesnow failed on a statement: %s: %s", type(exc).__name__, exc)
            return JSONResponse(_error_body(2, "0A000", f"Unsupported feature '{type(exc).__name__}: {exc}'."))
        if response.status_code >= 500:
            detail = json.loads(response.body).get("message") or "unhandled error"
            message = f"Unsupported feature: the Snowflake stand-in failed on this statement ({detail})"
            return JSONResponse(_error_body(2, "0A000", message))
        return response

    return query_request


def _build_app(db_path: Path, stage_path: Path, staging_file: Path | None = None, s3: dict[str, str] | None = None):
    import fakesnow.server
    import fakesnow.transforms.stage
    from fakesnow.instance import FakeSnow
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from devstack.snowflake.staging import Registry, Staging

    db_path.mkdir(parents=True, exist_ok=True)
    stage_path.mkdir(parents=True, exist_ok=True)
    # PUT/COPY INTO for internal stages resolve stage directories from this module attribute.
    fakesnow.transforms.stage.LOCAL_BUCKET_PATH = str(stage_path)

    shared = FakeSnow(db_path=db_path)
    fakesnow.server.shared_fs = shared
    attached = []
    for db_file in sorted(db_path.glob("*.db")):
        # connecting with a database name attaches <db_path>/<NAME>.db when it is not attached yet
        shared.connect(db_file.stem).close()
        attached.append(db_file.stem)
    log.info("Attached databases from %s: %s", db_path, ", ".join(attached) or "(none)")

    resent = ResentRequests()

    async def health(_request):
        return JSONResponse({"status": "ok", "databases": attached, "resent_statements": resent.count})

    def s3_client() -> Any:
        import boto3

        settings = s3 or {}
        # credentials from the environment: the devstack gives its services moto's dummy keys
        return boto3.client("s3", endpoint_url=settings.get("endpoint_url"), region_name=settings.get("region"))

    _patch_cursor_errors()
    staging = Staging(Registry(staging_file), s3_client)
    app = fakesnow.server.app
    for index, route in enumerate(app.router.routes):
        if getattr(route, "path", None) == QUERY_PATH:
            app.router.routes[index] = Route(QUERY_PATH, _staging_route(staging, resent), methods=["POST"])
            break
    else:
        raise RuntimeError(f"fakesnow's server has no {QUERY_PATH} route to extend")
    app.add_route(HEALTH_PATH, health, methods=["GET"])
    return app, shared


def main(argv: list[str] | None = None) -> int:
    """Run the server until SIGTERM or SIGINT.

    :param argv: command-line arguments (defaults to ``sys.argv[1:]``).
    :return: the process exit code.
    """
    parser = server_parser("python -m devstack.snowflake.server", __doc__.split("\n")[0])
    parser.add_argument("--db-path", type=Path, required=True, help="directory holding one DuckDB file per database")
    parser.add_argument("--stage-path", type=Path, help="directory for internal stages (default: <db-path>/../stages)")
    parser.add_argument("--staging-file", type=Path, help="JSON file keeping integrations and external stages")
    parser.add_argument("--s3-endpoint-url", help="S3 endpoint for external stages (the devstack's moto)")
    parser.add_argument("--region", default="us-east-1", help="region of the S3 endpoint")
    parser.add_argument("--log-level", default="warning", help="uvicorn log level")
    args = parser.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)

    import uvicorn

    stage_path = args.stage_path or args.db_path.parent / "stages"
    s3 = {"endpoint_url": args.s3_endpoint_url, "region": args.region} if args.s3_endpoint_url else None
    staging_file = args.staging_file or args.db_path.parent / "staging.json"
    app, shared = _build_app(args.db_path.resolve(), stage_path.resolve(), staging_file.resolve(), s3)
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level))
    # uvicorn captures SIGTERM/SIGINT while serving and re-raises the signal after a graceful shutdown;
    # with these handlers in place the re-raised signal is ignored and the databases are closed below.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    try:
        server.run()
    finally:
        shared.duck_conn.close()
        log.info("Snowflake stand-in stopped; databases closed")
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
