"""Fixtures for the devstack SageMaker service: a moto server and the service, both in-process on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from devstack.contract import ContractRecorder
from devstack.sagemaker.service import SageMakerService
from tests.integration.devstack.sagemaker_support import CREDENTIALS, REGION


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server (S3, CloudWatch Logs, ...) on a free loopback port, with the devstack's CloudWatch."""
    from moto.server import ThreadedMotoServer

    from devstack.autoscaling import install as install_autoscaling
    from devstack.cloudwatch import install

    install()
    install_autoscaling()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def sagemaker_service(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SageMakerService]:
    """The SageMaker service, in a thread, sharing one state directory for the session."""
    service = SageMakerService(
        tmp_path_factory.mktemp("sagemaker-state"), moto_endpoint, REGION, stop_grace_seconds=3.0
    )
    service.start("127.0.0.1", 0)
    yield service
    service.stop()


def _client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
        **CREDENTIALS,
    )


@pytest.fixture
def contract() -> ContractRecorder:
    """Records every SageMaker response of the test's client and checks it against botocore's output shapes."""
    return ContractRecorder()


@pytest.fixture
def sm(sagemaker_service: SageMakerService, contract: ContractRecorder) -> Any:
    """A boto3 SageMaker client against the service; every response is contract-checked."""
    assert sagemaker_service.url is not None
    client = _client("sagemaker", sagemaker_service.url)
    contract.attach(client)
    yield client
    contract.assert_clean()


@pytest.fixture
def s3(moto_endpoint: str) -> Any:
    """A boto3 S3 client against moto."""
    return _client("s3", moto_endpoint)


@pytest.fixture
def logs(moto_endpoint: str) -> Any:
    """A boto3 CloudWatch Logs client against moto."""
    return _client("logs", moto_endpoint)


@pytest.fixture
def bucket(s3: Any, request: pytest.FixtureRequest) -> str:
    """A fresh bucket per test."""
    name = "devstack-" + request.node.name.lower().replace("_", "-").replace("[", "-").replace("]", "")[:40]
    name = name.rstrip("-")
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Job names unique within the session (the service keeps every job it ever ran)."""
    counter = iter(range(1000))

    def make(prefix: str) -> str:
        stamp = str(int(time.time() * 1000))[-7:]
        return f"{prefix}-{stamp}-{next(counter)}"[:63]

    return make
