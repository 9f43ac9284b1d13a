"""The ``devstack`` fixture: the whole local stack (moto, SageMaker service, Snowflake) for a test session.

Only tests that request ``devstack`` start it. It is the same :class:`devstack.stack.Stack` that
``python -m devstack up`` runs, in a temporary state directory on free loopback ports, seeded with a small
fixed history (``DEVSTACK_TEST_SEED``). While it runs, the test process's environment points boto3 and
Airflow at it (``AWS_ENDPOINT_URL_*``, dummy credentials, ``AIRFLOW_CONN_AWS_DEFAULT``,
``AIRFLOW_CONN_SNOWFLAKE_DEFAULT``); the previous values are restored afterwards.

Set ``DEVSTACK_TEST_SAGEMAKER=0`` to run the fixture without the SageMaker service.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Small and fixed, so tests can rely on exact dates: 2026-01-01 .. 2026-03-01, drift from 2026-02-15.
DEVSTACK_TEST_SEED_KWARGS: dict[str, Any] = {
    "days": 60,
    "rows_per_day": 200,
    "seed": 42,
    "start": dt.date(2026, 1, 1),
    "drift_from": dt.date(2026, 2, 15),
}


class Devstack:
    """What the ``devstack`` fixture yields: where the services are and how to reach them.

    :param stack: the running stack.
    :param info: its services.
    :param startup_seconds: how long ``up`` took.
    """

    def __init__(self, stack: Any, info: Any, startup_seconds: float) -> None:
        self.stack = stack
        self.info = info
        self.startup_seconds = startup_seconds

    @property
    def state_dir(self) -> Path:
        """The stack's temporary state directory."""
        return self.stack.state_dir

    @property
    def moto_url(self) -> str:
        """Endpoint of S3, CloudWatch, Logs, SNS, STS, IAM, ..."""
        return self.info.moto_url

    @property
    def sagemaker_url(self) -> str | None:
        """Endpoint of the SageMaker service (``None`` with ``DEVSTACK_TEST_SAGEMAKER=0``)."""
        return self.info.sagemaker_url

    @property
    def snowflake_port(self) -> int:
        """Port of the Snowflake stand-in on 127.0.0.1."""
        return self.info.snowflake_port

    @property
    def env(self) -> dict[str, str]:
        """The variables the fixture exported (same as ``.devstack/env``)."""
        return self.info.env()

    @property
    def seed_params(self) -> Any:
        """The history seeded at start."""
        return self.stack.seed_params

    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client for ``service`` against the stack.

        :param service: boto3 service name.
        :param kwargs: passed to ``boto3.client``.
        """
        return self.info.client(service, **kwargs)

    def snowflake_connect(self, **kwargs: Any) -> Any:
        """A ``snowflake.connector`` connection to ``FRAUD_DB.RAW`` on the stand-in.

        :param kwargs: override connection arguments.
        """
        return self.info.snowflake_connect(**kwargs)

    def seed(self, **kwargs: Any) -> Any:
        """Re-seed (replacing the same date range) with :class:`devstack.snowflake.seed.SeedParams` fields.

        :param kwargs: ``days``, ``rows_per_day``, ``seed``, ``start``, ``drift_from``, ``corrupt_on``.
        """
        from devstack.snowflake.seed import SeedParams

        return self.stack.seed(SeedParams(**kwargs), self.info)


@pytest.fixture(scope="session")
def devstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devstack]:
    """The whole devstack, started once per session for the tests that ask for it."""
    from devstack.snowflake.seed import SeedParams
    from devstack.stack import Stack

    stack = Stack(
        tmp_path_factory.mktemp("devstack"),
        sagemaker=os.environ.get("DEVSTACK_TEST_SAGEMAKER", "1") != "0",
        seed=SeedParams(**DEVSTACK_TEST_SEED_KWARGS),
        startup_timeout=180,
        stop_with_parent=os.getpid(),  # a killed test run does not leave the stack running
    )
    started = time.perf_counter()
    info = stack.up()
    handle = Devstack(stack, info, time.perf_counter() - started)
    env = info.env()
    saved = {key: os.environ.get(key) for key in env}
    dropped = {k: v for k, v in os.environ.items() if k in ("AWS_PROFILE", "AWS_SESSION_TOKEN")}
    for key in dropped:
        del os.environ[key]
    os.environ.update(env)
    try:
        yield handle
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        os.environ.update(dropped)
        stack.down()
