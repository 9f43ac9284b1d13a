"""On MWAA, connections come from AWS Secrets Manager through the Amazon provider's SecretsManagerBackend,
configured as the CloudFormation template does (``secrets.backend`` and ``secrets.backend_kwargs``).

Checked against a moto server on 127.0.0.1: a connection stored under the prefix is what Airflow gets.
"""

from __future__ import annotations

import json
import socket

import boto3
import pytest

from tools import iam_to_cfn


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def endpoint():
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def secrets(endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return boto3.client("secretsmanager", endpoint_url=endpoint, region_name="us-east-1")


@pytest.fixture
def backend(endpoint):
    """The backend with the template's kwargs, plus the endpoint override a test needs."""
    from airflow.providers.amazon.aws.secrets.secrets_manager import SecretsManagerBackend

    options = iam_to_cfn.load_template()["Resources"]["Environment"]["Properties"]["AirflowConfigurationOptions"]
    kwargs = json.loads(options["secrets.backend_kwargs"])
    return SecretsManagerBackend(**kwargs, endpoint_url=endpoint, region_name="us-east-1")


def test_snowflake_connection_stored_as_json_is_returned(secrets, backend):
    secrets.create_secret(
        Name="airflow/connections/snowflake_default",
        SecretString=json.dumps(
            {
                "conn_type": "snowflake",
                "login": "ml_lifecycle",
                "password": "s3cret",
                "schema": "RAW",
                "extra": {"account": "xy12345", "database": "FRAUD_DB", "warehouse": "COMPUTE_WH"},
            }
        ),
    )
    connection = backend.get_connection("snowflake_default")
    assert connection.conn_type == "snowflake"
    assert connection.login == "ml_lifecycle"
    assert connection.password == "s3cret"
    assert connection.extra_dejson["account"] == "xy12345"


def test_aws_connection_stored_as_uri_is_returned(secrets, backend):
    secrets.create_secret(Name="airflow/connections/aws_default", SecretString="aws://?region_name=eu-west-1")
    assert backend.get_conn_value("aws_default") == "aws://?region_name=eu-west-1"
    assert backend.get_connection("aws_default").extra_dejson == {"region_name": "eu-west-1"}


def test_secret_outside_the_prefix_is_not_a_connection(secrets, backend):
    secrets.create_secret(Name="other/connections/ghost", SecretString="aws://")
    assert backend.get_conn_value("ghost") is None
    assert backend.get_connection("ghost") is None


def test_variables_use_their_own_prefix(secrets, backend):
    secrets.create_secret(Name="airflow/variables/retrain_threshold", SecretString="0.2")
    assert backend.get_variable("retrain_threshold") == "0.2"
