"""A model server that plays a SageMaker inference container: ``GET /ping``, ``POST /invocations``.

Run by :mod:`devstack.sagemaker.serving` as a long-lived subprocess per production variant (and per batch
transform job), with the interpreter of the model image's environment::

    python model_server.py --model-dir DIR [--code-dir DIR] [--program inference.py] --ready-file FILE

It loads the model once, then serves requests one at a time (one model-server worker, as
``SAGEMAKER_MODEL_SERVER_WORKERS=1``). The user module follows the SageMaker inference handler contract:

- ``model_fn(model_dir)`` loads the model (required);
- ``input_fn(input_data, content_type)``, ``predict_fn(data, model)``, ``output_fn(prediction, accept)``
  with defaults for JSON / CSV / NPY, or ``transform_fn(model, input_data, content_type, accept)`` alone;
- a handler may declare one extra trailing ``context`` parameter (it receives None);
- ``input_data`` is ``str`` for exactly ``application/json`` and ``text/csv``, ``bytes`` otherwise;
- a returned tuple ``(body, content_type)`` sets the response Content-Type, else the Accept type is used;
- an exception with an integer ``status_code`` attribute answers that status with its message; any other
  exception answers 500 with ``"<message>\\n<traceback>"``.

Without ``--program`` the built-in XGBoost algorithm is served: the first model file of the model
directory is loaded as a Booster, ``text/csv`` or ``text/libsvm`` rows (libsvm without a Content-Type,
as the container; ``application/json`` lists too) are scored and the scores are returned one per line
(``text/csv``) or as ``{"predictions": [{"score": ...}]}`` (``application/json``); an empty body answers
204, another Content-Type 415, another Accept 406.

This file does not import the devstack: it runs as a plain script inside the model's own environment.
When the server listens, it writes its port to ``--ready-file``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import io
import json
import os
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

UTF8_TYPES = ("application/json", "text/csv")
DEFAULT_ACCEPT = "application/json"


class HandlerError(Exception):
    """An error with an HTTP status, raised by the default handlers."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


def _call(func: Any, *args: Any) -> Any:
    """Call a handler, passing a trailing ``context`` (None) when it declares one more parameter."""
    try:
        params = [
            p
            for p in inspect.signature(func).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        return func(*args)
    if len(params) == len(args) + 1:
        return func(*args, None)
    return func(*args)


# -- default codecs ---------------------------------------------------------------------------------


def default_input_fn(input_data: Any, content_type: str | None) -> Any:
    """Decode JSON, CSV or NPY into a numpy array (the toolkit's default decoder)."""
    import numpy as np

    media = (content_type or "").split(";")[0].strip().lower()
    if media == "application/json":
        text = input_data.decode("utf-8") if isinstance(input_data, bytes) else input_data
        return np.array(json.loads(text))
    if media == "text/csv":
        text = input_data.decode("utf-8") if isinstance(input_data, bytes) else input_data
        return np.genfromtxt(io.StringIO(text), delimiter=",", ndmin=2)
    if media == "application/x-npy":
        data = input_data if isinstance(input_data, bytes) else input_data.encode()
        return np.load(io.BytesIO(data), allow_pickle=True)
    raise HandlerError(f"Content type {content_type} is not supported by this framework.", 415)


def default_predict_fn(data: Any, model: Any) -> Any:
    """``model.predict(data)``; XGBoost boosters get a DMatrix of the 2-D data."""
    import numpy as np

    try:
        import xgboost as xgb
    except ImportError:  # pragma: no cover - xgboost is in the dev environment
        xgb = None
    if xgb is not None and isinstance(model, xgb.Booster):
        return model.predict(xgb.DMatrix(np.atleast_2d(np.asarray(data, dtype=float))), validate_features=False)
    return model.predict(data)


def _encode(prediction: Any, media: str) -> bytes | str | None:
    import numpy as np

    if media == "application/json":
        if hasattr(prediction, "tolist"):
            prediction = prediction.tolist()
        return json.dumps(prediction)
    if media == "text/csv":
        buffer = io.StringIO()
        array = np.asarray(prediction)
        np.savetxt(buffer, array if array.ndim else array.reshape(1), delimiter=",", fmt="%s")
        return buffer.getvalue()
    if media == "application/x-npy":
        buffer_b = io.BytesIO()
        np.save(buffer_b, np.asarray(prediction))
        return buffer_b.getvalue()
    return None


def default_output_fn(prediction: Any, accept: str | None) -> tuple[Any, str]:
    """Encode for the first supported type of a comma-separated Accept (the toolkit's default)."""
    for part in (accept or DEFAULT_ACCEPT).split(","):
        media = part.split(";")[0].strip().lower()
        if media in ("", "*/*"):
            media = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or DEFAULT_ACCEPT
        body = _encode(prediction, media)
        if body is not None:
            return body, media
    raise HandlerError(f"Accept type {accept} is not supported by this framework.", 406)


# -- handlers ---------------------------------------------------------------------------------------


class ScriptHandlers:
    """The user module's handlers with the defaults filled in.

    :param module: the imported user module.
    """

    def __init__(self, module: Any) -> None:
        self.module = module
        self.model_fn = getattr(module, "model_fn", None)
        self.transform_fn = getattr(module, "transform_fn", None)
        self.input_fn = getattr(module, "input_fn", None)
        self.predict_fn = getattr(module, "predict_fn", None)
        self.output_fn = getattr(module, "output_fn", None)
        if self.model_fn is None:
            raise ValueError(
                f"Please provide a model_fn implementation in {module.__name__} "
                "(the inference handler contract needs model_fn(model_dir))."
            )
        if self.transform_fn is not None and any((self.input_fn, self.predict_fn, self.output_fn)):
            raise ValueError(
                "Cannot use transform_fn implementation in conjunction with input_fn, predict_fn, "
                "and/or output_fn implementation"
            )

    def load(self, model_dir: str) -> Any:
        return _call(self.model_fn, model_dir)

    def invoke(self, model: Any, data: Any, content_type: str | None, accept: str | None) -> Any:
        if self.transform_fn is not None:
            return _call(self.transform_fn, model, data, content_type, accept)
        decoded = _call(self.input_fn or default_input_fn, data, content_type)
        prediction = _call(self.predict_fn or default_predict_fn, decoded, model)
        return _call(self.output_fn or default_output_fn, prediction, accept)


class BuiltinXGBoost:
    """The built-in XGBoost algorithm's serving: CSV (or JSON list) in, one score per row out."""

    def load(self, model_dir: str) -> Any:
        import xgboost as xgb

        candidates = [p for p in sorted(Path(model_dir).rglob("*")) if p.is_file()]
        preferred = [p for p in candidates if p.name.startswith("xgboost-model")] or candidates
        if not preferred:
            raise FileNotFoundError(f"The model directory {model_dir} holds no model file.")
        booster = xgb.Booster()
        booster.load_model(str(preferred[0]))
        return booster

    def invoke(self, model: Any, data: Any, content_type: str | None, accept: str | None) -> Any:
        import numpy as np
        import xgboost as xgb

        # The container reads a request without Content-Type as libsvm.
        media = (content_type or "text/libsvm").split(";")[0].strip().lower()
        if isinstance(data, bytes):
            data = data.decode("utf-8")
        if not data.strip():
            raise HandlerError("Empty request body.", 204)
        if media == "text/csv":
            rows = np.genfromtxt(io.StringIO(data), delimiter=",", ndmin=2)
        elif media in ("text/libsvm", "text/x-libsvm"):
            rows = _libsvm_rows(data)
        elif media == "application/json":
            rows = np.atleast_2d(np.asarray(json.loads(data), dtype=float))
        else:
            raise HandlerError(f"Content type {content_type} is not supported by the XGBoost algorithm.", 415)
        scores = model.predict(xgb.DMatrix(rows), validate_features=False)
        wanted = (accept or "text/csv").split(";")[0].strip().lower()
        if wanted in ("", "*/*"):
            wanted = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or "text/csv"
        if wanted == "application/json":
            return json.dumps({"predictions": [{"score": float(s)} for s in scores]}), "application/json"
        if wanted != "text/csv":
            raise HandlerError(f"Accept type {accept} is not supported by the XGBoost algorithm.", 406)
        return "\n".join(repr(float(s)) for s in scores) + "\n", "text/csv"


def _libsvm_rows(text: str) -> Any:
    """Rows of ``[label] index:value ...`` lines (the label, when present, is ignored) as a dense array."""
    import numpy as np

    entries: list[dict[int, float]] = []
    width = 0
    for line in text.splitlines():
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        if ":" not in parts[0]:
            parts = parts[1:]
        row = {}
        for item in parts:
            index, _, value = item.partition(":")
            try:
                row[int(index)] = float(value)
            except ValueError as exc:
                raise HandlerError(f"Cannot parse libsvm item {item!r}.", 415) from exc
            width = max(width, int(index) + 1)
        entries.append(row)
    rows = np.full((len(entries), width), np.nan)
    for i, row in enumerate(entries):
        for j, value in row.items():
            rows[i, j] = value
    return rows


# -- HTTP -------------------------------------------------------------------------------------------


class _State:
    handlers: Any = None
    model: Any = None
    lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body are two writes: without TCP_NODELAY the body waits for the delayed ACK (~40 ms)
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet access log
        return

    def _reply(
        self, status: int, body: bytes, content_type: str = "text/plain", extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/ping":
            self._reply(200, b"")
        elif self.path == "/execution-parameters":
            params = {
                "MaxConcurrentTransforms": int(os.environ.get("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", "1")),
                "BatchStrategy": os.environ.get("SAGEMAKER_BATCH_STRATEGY", "MULTI_RECORD"),
                "MaxPayloadInMB": int(os.environ.get("SAGEMAKER_MAX_PAYLOAD_IN_MB", "6")),
            }
            self._reply(200, json.dumps(params).encode(), "application/json")
        else:
            self._reply(404, b"Not found")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path != "/invocations":
            self._reply(404, b"Not found")
            return
        content_type = self.headers.get("Content-Type")
        accept = self.headers.get("Accept")
        data: Any = raw
        if content_type in UTF8_TYPES:
            data = raw.decode("utf-8", errors="replace")
        try:
            with _State.lock:
                result = _State.handlers.invoke(_State.model, data, content_type, accept)
        except Exception as exc:
            status = getattr(exc, "status_code", None)
            if isinstance(status, int) and 400 <= status <= 599 and not isinstance(status, bool):
                traceback.print_exc()
                self._reply(status, b"" if status == 204 else str(exc).encode("utf-8", errors="replace"))
                return
            text = f"{exc}\n{traceback.format_exc()}"
            sys.stderr.write(text)
            sys.stderr.flush()
            self._reply(500, text.encode("utf-8", errors="replace"))
            return
        response_type = None
        if isinstance(result, tuple) and len(result) == 2:
            result, response_type = result
        if response_type is None:
            first = (accept or "").split(",")[0].strip()
            response_type = first if first and first != "*/*" else DEFAULT_ACCEPT
        if isinstance(result, str):
            body = result.encode("utf-8")
        elif isinstance(result, bytes | bytearray):
            body = bytes(result)
        else:
            body = json.dumps(result.tolist() if hasattr(result, "tolist") else result).encode("utf-8")
        self._reply(200, body, str(response_type))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SageMaker-contract model server (devstack).")
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--code-dir", default=None)
    parser.add_argument("--program", default=None)
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)

    if args.program:
        code_dir = args.code_dir or os.path.join(args.model_dir, "code")
        sys.path.insert(0, code_dir)
        module_name = args.program[:-3] if args.program.endswith(".py") else args.program
        if not os.path.isfile(os.path.join(code_dir, module_name + ".py")) and not os.path.isdir(
            os.path.join(code_dir, module_name)
        ):
            sys.stderr.write(f"The entry point {args.program} was not found in {code_dir}.\n")
            return 2
        module = importlib.import_module(module_name)
        _State.handlers = ScriptHandlers(module)
    else:
        _State.handlers = BuiltinXGBoost()
    _State.model = _State.handlers.load(args.model_dir)
    server = ThreadingHTTPServer((args.host, 0), _Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    tmp = args.ready_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(str(port))
    os.replace(tmp, args.ready_file)
    print(f"Model server listening on {args.host}:{port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever(poll_interval=0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
