"""Arrow's allocator: the package keeps pyarrow 25's bundled mimalloc out of the data path.

pyarrow 25.0.0 crashes (SIGSEGV in mimalloc's ``mi_thread_init``) when libarrow was first loaded on a thread
that has exited and another thread then allocates Arrow memory, e.g. Arrow's own pool reading Parquet. Each
case runs in a fresh interpreter, since which thread loads libarrow first is decided once per process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from ml_lifecycle.native import AFFECTED_PYARROW, ARROW_POOL_VARIABLE, select_arrow_memory_pool

REPO = Path(__file__).resolve().parents[2]
RUNS = 2

# pyarrow first loaded on a short-lived thread (as a background import of the Snowflake connector does), then
# threads that come and go allocate Arrow memory and Arrow's CPU pool reads a Parquet file
HAZARD = """
import sys, threading
{prelude}
loader = threading.Thread(target=lambda: __import__("pyarrow"))
loader.start(); loader.join()
import pyarrow as pa, pyarrow.parquet as pq
def work(i):
    pa.array([str(j) for j in range(2000 + i)])
for i in range(50):
    t = threading.Thread(target=work, args=(i,)); t.start(); t.join()
table = pa.table({{"a": list(range(100_000)), "b": [str(i) for i in range(100_000)]}})
pq.write_table(table, sys.argv[1], row_group_size=10_000)
for _ in range(3):
    pq.read_table(sys.argv[1], use_threads=True).to_pandas()
print(pa.default_memory_pool().backend_name)
"""


def _run(tmp_path: Path, prelude: str) -> list[subprocess.CompletedProcess[str]]:
    script = tmp_path / "hazard.py"
    script.write_text(HAZARD.format(prelude=prelude))
    env = {k: v for k, v in os.environ.items() if k != ARROW_POOL_VARIABLE}
    return [
        subprocess.run(
            [sys.executable, str(script), str(tmp_path / f"t{i}.parquet")],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
            env=env,
            check=False,
        )
        for i in range(RUNS)
    ]


@pytest.mark.parametrize(
    "prelude",
    [
        pytest.param("import ml_lifecycle", id="package"),
        pytest.param("import ml_lifecycle.operators.validation", id="validation-operator"),
    ],
)
def test_importing_the_package_first_makes_the_hazard_harmless(tmp_path: Path, prelude: str) -> None:
    runs = _run(tmp_path, prelude)

    assert [r.returncode for r in runs] == [0] * RUNS, runs[0].stderr[-2000:]
    assert {r.stdout.strip() for r in runs} == {"system"}


@pytest.mark.skipif(pa.__version__ not in AFFECTED_PYARROW, reason=f"pyarrow {pa.__version__} is not known to crash")
def test_without_the_package_the_hazard_crashes_this_pyarrow(tmp_path: Path) -> None:
    """The control: the same process without the package's setting dies in native code."""
    runs = _run(tmp_path, "")

    assert any(r.returncode == -11 for r in runs), [(r.returncode, r.stdout, r.stderr[-300:]) for r in runs]


def test_an_explicit_choice_is_kept_and_a_late_call_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    assert select_arrow_memory_pool({ARROW_POOL_VARIABLE: "jemalloc"}) == "jemalloc"
    env: dict[str, str] = {}
    monkeypatch.delitem(sys.modules, "pyarrow.lib", raising=False)
    assert select_arrow_memory_pool(env) == "system"
    assert env == {ARROW_POOL_VARIABLE: "system"}
    monkeypatch.setitem(sys.modules, "pyarrow.lib", pa.lib)
    late: dict[str, str] = {}
    assert select_arrow_memory_pool(late) is None  # libarrow already chose; nothing pretends otherwise
    assert late == {}
