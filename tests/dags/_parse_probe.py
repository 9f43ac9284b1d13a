"""Import one DAG file in a fresh interpreter and report what that import did.

Run as ``python _parse_probe.py <dag file>``; prints one JSON object: the heavy modules the import pulled
in, the packages it imported (outside the standard library), any network connection it attempted, any
Airflow Variable it read, and the DAG ids it defined. Airflow itself is imported first, so only what the
DAG file adds is attributed to it.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
import time

#: modules only a running task needs; a DAG file that imports one pays for it at every parse
HEAVY = (
    "great_expectations",
    "pandas",
    "numpy",
    "scipy",
    "xgboost",
    "sklearn",
    "sagemaker",
    "snowflake",  # the connector (snowflake.connector), not the Snowflake provider's asset URI handler
    "pyarrow",
    "matplotlib",
    "duckdb",
    "fakesnow",
    "moto",
    "devstack",
    "airflow.providers.snowflake.hooks",
    "airflow.providers.snowflake.operators",
    "ml_lifecycle.builders",
    "ml_lifecycle.data",
    "ml_lifecycle.hooks",
    "ml_lifecycle.triggers",
)


def _heavy(name: str) -> str | None:
    """The entry of ``HEAVY`` a module belongs to, if any."""
    return next((h for h in HEAVY if name == h or name.startswith(h + ".")), None)


def _package(name: str) -> str | None:
    """The package a module counts for: its top-level name, ``airflow.<x>`` or ``airflow.providers.<x>``;
    ``None`` for the standard library and interpreter internals."""
    parts = name.split(".")
    if parts[0] in sys.stdlib_module_names or parts[0].startswith("_") or "__mypyc" in parts[0]:
        return None
    if parts[0] == "airflow":
        return ".".join(parts[:3] if len(parts) > 2 and parts[1] == "providers" else parts[:2])
    return parts[0]


import airflow.sdk  # noqa: E402, F401  (baseline: what every DAG file pays)
from airflow.sdk import DAG  # noqa: E402
from airflow.sdk.definitions._internal.contextmanager import DagContext  # noqa: E402

connections: list[str] = []
variables: list[str] = []


def _refuse(self, address, *args, **kwargs):
    connections.append(repr(address))
    raise OSError(f"network access at DAG parse time: {address!r}")


socket.socket.connect = _refuse  # type: ignore[method-assign]
socket.socket.connect_ex = _refuse  # type: ignore[method-assign]
socket.create_connection = lambda address, *a, **k: _refuse(None, address)  # type: ignore[assignment]


def _variable_read(key, *args, **kwargs):
    variables.append(key)
    raise RuntimeError(f"Variable {key!r} read at DAG parse time")


for module_name in (
    "airflow.sdk",
    "airflow.models",
    "airflow.models.variable",
    "airflow.sdk.definitions.variable",
):
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        continue
    variable_cls = getattr(module, "Variable", None)
    if variable_cls is not None:
        variable_cls.get = staticmethod(_variable_read)

before = set(sys.modules)
path = sys.argv[1]
started = time.perf_counter()
spec = importlib.util.spec_from_file_location("dag_under_test", path)
module = importlib.util.module_from_spec(spec)
sys.modules["dag_under_test"] = module
DagContext.current_autoregister_module_name = "dag_under_test"  # as the DAG processor does
error = None
try:
    spec.loader.exec_module(module)
except Exception as exc:  # reported, not raised: the test names it
    error = f"{type(exc).__name__}: {exc}"
elapsed = time.perf_counter() - started
added = set(sys.modules) - before
print(
    json.dumps(
        {
            "heavy_modules": sorted({h for m in added if (h := _heavy(m)) is not None}),
            "packages": sorted({p for m in added if m != "dag_under_test" and (p := _package(m)) is not None}),
            "connections": connections,
            "variables": variables,
            "dag_ids": sorted(
                {v.dag_id for v in vars(module).values() if isinstance(v, DAG)}
                | {dag.dag_id for dag, _ in DagContext.autoregistered_dags}
            ),
            "error": error,
            "seconds": elapsed,
        }
    )
)
