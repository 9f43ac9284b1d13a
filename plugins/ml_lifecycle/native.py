"""Process-level settings for the native libraries the data path uses (Arrow's allocator).

pyarrow 25.0.0 (the version MWAA 3.3.1's constraints pin) bundles mimalloc 3.3.x as Arrow's default memory
pool. That mimalloc crashes (SIGSEGV in ``mi_thread_init``) or corrupts its heap when libarrow was first
loaded on a thread that has since exited and another thread then allocates Arrow memory: Arrow's own CPU
pool reading Parquet, the Snowflake connector's prefetch threads, a second extraction in a thread. Which
thread imports pyarrow first is decided by whoever happens to import pandas, pyarrow or the Snowflake
connector first, so the failure is intermittent. See docs/data-path.md, "Known native issues".

Arrow reads its pool choice from ``ARROW_DEFAULT_MEMORY_POOL`` once, when libarrow is loaded; setting the
pool from Python later (``pyarrow.set_memory_pool``) does not reach the C++ code that reads files. So the
package selects the system allocator in the environment when it is imported, before anything has loaded
pyarrow (Airflow imports the package in the main thread when it parses or loads a DAG). An explicit
``ARROW_DEFAULT_MEMORY_POOL`` set by the deployment is left as it is.

Only the standard library is imported here.
"""

from __future__ import annotations

import os
import sys

ARROW_POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"
SAFE_ARROW_POOL = "system"
# pyarrow releases seen to crash this way here (bundled mimalloc 3.3.x; apache/arrow#50471)
AFFECTED_PYARROW = ("25.0.0",)


def select_arrow_memory_pool(environ: dict[str, str] | None = None) -> str | None:
    """Make the system allocator Arrow's default pool unless the environment chose one or it is too late.

    :param environ: the environment to update (``os.environ`` by default)
    :return: the pool now selected in the environment, or ``None`` when libarrow is already loaded without a
        choice in the environment (then only :func:`arrow_pool_warning` can tell)
    """
    env = os.environ if environ is None else environ
    if env.get(ARROW_POOL_VARIABLE):
        return env[ARROW_POOL_VARIABLE]
    if "pyarrow.lib" in sys.modules:
        return None
    env[ARROW_POOL_VARIABLE] = SAFE_ARROW_POOL
    return SAFE_ARROW_POOL


def arrow_pool_warning() -> str | None:
    """A warning for the task log when this process allocates Arrow memory with an affected mimalloc.

    Imports pyarrow (call it where the data path has imported it anyway).
    """
    import pyarrow as pa

    backend = pa.default_memory_pool().backend_name
    if backend != "mimalloc" or pa.__version__ not in AFFECTED_PYARROW:
        return None
    return (
        f"pyarrow {pa.__version__} allocates with its bundled mimalloc, which can crash or hang this process when "
        "pyarrow was first imported on a thread that has exited (apache/arrow#50471); set "
        f"{ARROW_POOL_VARIABLE}={SAFE_ARROW_POOL} in the worker environment (see docs/data-path.md, "
        "'Known native issues')"
    )
