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
itself and ``COPY INTO <table> FROM @stage`` reads them. External (S3) stages are not supported.

The server also answers ``GET /_devstack/health`` with 200 once the databases are attached.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

log = logging.getLogger("devstack.snowflake")

HEALTH_PATH = "/_devstack/health"


def _build_app(db_path: Path, stage_path: Path):
    import fakesnow.server
    import fakesnow.transforms.stage
    from fakesnow.instance import FakeSnow
    from starlette.responses import JSONResponse

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

    async def health(_request):
        return JSONResponse({"status": "ok", "databases": attached})

    app = fakesnow.server.app
    app.add_route(HEALTH_PATH, health, methods=["GET"])
    return app, shared


def main(argv: list[str] | None = None) -> int:
    """Run the server until SIGTERM or SIGINT.

    :param argv: command-line arguments (defaults to ``sys.argv[1:]``).
    :return: the process exit code.
    """
    parser = argparse.ArgumentParser(prog="python -m devstack.snowflake.server", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db-path", type=Path, required=True, help="directory holding one DuckDB file per database")
    parser.add_argument("--stage-path", type=Path, help="directory for internal stages (default: <db-path>/../stages)")
    parser.add_argument("--log-level", default="warning", help="uvicorn log level")
    args = parser.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)

    import uvicorn

    stage_path = args.stage_path or args.db_path.parent / "stages"
    app, shared = _build_app(args.db_path.resolve(), stage_path.resolve())
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
