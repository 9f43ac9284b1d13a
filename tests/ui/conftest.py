"""Fixtures of the browser tests: a local Airflow on the devstack, and Debian's Chromium driven by Playwright.

``airflow_ui`` starts Airflow's four components (``tools.ui.AirflowUI``) on a free loopback port with a
temporary ``AIRFLOW_HOME`` and a PostgreSQL metadata database of its own, wired to the session's ``devstack``.
The page comes from pytest-playwright (``page``), launched on the machine's Chromium by its executable path
(Playwright's own browser download is not used) with every host but 127.0.0.1 resolving to nothing, so the
browser cannot reach the network.
Screenshots, the browser's console and the Airflow logs are kept under ``test-artifacts/ui/`` (git-ignored)
for every run, passed or failed.

A missing Chromium is a failure, not a skip: ``make test`` installs it (``apt-get install -y chromium``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = (
    "the UI tests need a Chromium browser: on Debian/Ubuntu `apt-get install -y chromium` "
    "(or set CHROMIUM=/path/to/chrome)"
)
#: Chromium's switches: headless as root, and no connection anywhere but the loopback address
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--no-proxy-server",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary: ``$CHROMIUM``, else the first of the usual names on ``PATH``."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    return next((found for name in CHROMIUM_CANDIDATES if (found := shutil.which(name))), None)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of the Chromium binary; fails (with the install command) when there is none."""
    binary = find_chromium()
    if binary is None:
        pytest.fail(f"no Chromium found: {INSTALL_HINT}", pytrace=False)
    return binary


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any], chromium: str) -> dict[str, Any]:
    """pytest-playwright's launch arguments, on the machine's Chromium."""
    return {**browser_type_launch_args, "executable_path": chromium, "headless": True, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "viewport": {"width": 1440, "height": 1000}}


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """``test-artifacts/ui/<test name>/``, emptied at the start of the test."""
    path = ARTIFACTS / request.node.name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


#: how long a page may take to show what a test waits for: Airflow's UI loads its translations and data
#: after the page itself, and shares two cores with Airflow, the devstack and its jobs
UI_TIMEOUT_MS = 60_000


@pytest.fixture
def console(page: Any, artifacts: Path) -> Iterator[list[str]]:
    """The page's console messages and uncaught errors, written to ``console.log`` in the test's artefacts.

    Also sets the page's and ``expect``'s waits to :data:`UI_TIMEOUT_MS`.
    """
    from playwright.sync_api import expect

    page.set_default_timeout(UI_TIMEOUT_MS)
    expect.set_options(timeout=UI_TIMEOUT_MS)
    lines: list[str] = []
    page.on("console", lambda message: lines.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: lines.append(f"pageerror: {error}"))
    try:
        yield lines
    finally:
        (artifacts / "console.log").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="session")
def airflow_ui(devstack: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Airflow (api-server, scheduler, dag-processor, triggerer) on the devstack; yields ``(ui, info)``."""
    from devstack.stack import free_port
    from tools.ui import AirflowUI, ensure_environment

    ensure_environment(devstack.info, "local")
    home = tmp_path_factory.mktemp("airflow-home")
    # PostgreSQL, as MWAA and `make demo`: on one SQLite file a request of the page or the test that writes
    # while a task writes can fail with "database is locked" (HTTP 500)
    ui = AirflowUI(home, devstack_env=devstack.env, port=free_port(), database="postgres")
    try:
        info = ui.start(timeout=300)
    except BaseException:
        _keep_logs(home)
        ui.metadb.remove()
        raise
    ui.info = info  # what tools.lifecycle.Driver reads
    try:
        yield ui, info
    finally:
        ui.stop()
        _keep_logs(home)
        ui.metadb.remove()


def _keep_logs(home: Path) -> None:
    """Copy the components' logs and the task logs to ``test-artifacts/ui/airflow-logs``."""
    target = ARTIFACTS / "airflow-logs"
    shutil.rmtree(target, ignore_errors=True)
    if (home / "logs").is_dir():
        shutil.copytree(home / "logs", target, dirs_exist_ok=True)
