"""Fixtures of the browser tests: a local Airflow on the devstack, and a headless Chromium.

``airflow_ui`` starts Airflow's four components (``tools.ui.AirflowUI``) on a free loopback port with a
temporary ``AIRFLOW_HOME``, wired to the session's ``devstack``; ``browser`` is a headless Chromium driven
over the DevTools protocol (``tests/ui/cdp.py``). Screenshots, the browser's console and the Airflow logs
are kept under ``test-artifacts/ui/`` (git-ignored) for every run, passed or failed.

A missing Chromium is a failure, not a skip: CI installs it (``apt-get install -y chromium``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui.cdp import INSTALL_HINT, Browser, find_chromium

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "ui"


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of the Chromium binary; fails (with the install command) when there is none."""
    binary = find_chromium()
    if binary is None:
        pytest.fail(f"no Chromium found: {INSTALL_HINT}", pytrace=False)
    return binary


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """``test-artifacts/ui/<test name>/``, emptied at the start of the test."""
    path = ARTIFACTS / request.node.name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@pytest.fixture(scope="session")
def airflow_ui(devstack: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Airflow (api-server, scheduler, dag-processor, triggerer) on the devstack; yields ``(ui, info)``."""
    from devstack.stack import free_port
    from tools.ui import AirflowUI, ensure_buckets

    ensure_buckets(devstack.info, "local")
    home = tmp_path_factory.mktemp("airflow-home")
    ui = AirflowUI(home, devstack_env=devstack.env, port=free_port())
    try:
        info = ui.start(timeout=300)
    except BaseException:
        _keep_logs(home)
        raise
    try:
        yield ui, info
    finally:
        ui.stop()
        _keep_logs(home)


def _keep_logs(home: Path) -> None:
    """Copy the components' logs and the task logs to ``test-artifacts/ui/airflow-logs``."""
    target = ARTIFACTS / "airflow-logs"
    shutil.rmtree(target, ignore_errors=True)
    if (home / "logs").is_dir():
        shutil.copytree(home / "logs", target, dirs_exist_ok=True)


@pytest.fixture
def browser(chromium: str, artifacts: Path) -> Iterator[Browser]:
    """A headless Chromium page; its console is written to ``console.log`` in the test's artefacts."""
    page = Browser(chromium, artifacts)
    page.start()
    try:
        yield page
    finally:
        (artifacts / "console.log").write_text("\n".join(page.console) + "\n")
        page.close()
