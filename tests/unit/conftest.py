"""Unit tests run against in-process fakes only.

The session's ``devstack`` fixture (used by the integration suites) exports ``AWS_ENDPOINT_URL_*`` and
``AIRFLOW_CONN_*`` for the rest of the session; a unit test that ran after it would otherwise send its boto3
calls to the devstack instead of its own ``moto`` mock. Each unit test starts without them.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _no_devstack_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(("AWS_ENDPOINT_URL", "AIRFLOW_CONN_")):
            monkeypatch.delenv(key)
