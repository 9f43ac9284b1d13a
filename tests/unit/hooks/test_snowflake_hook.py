"""The project's SnowflakeHook reaches a Snowflake endpoint on a given host, port and protocol."""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import pytest
from airflow.providers.snowflake.hooks.snowflake import SnowflakeHook as ProviderSnowflakeHook

from ml_lifecycle.hooks.snowflake_hook import SnowflakeHook

CONN_ID = "snowflake_hook_test"


def _set_conn(monkeypatch: pytest.MonkeyPatch, **fields: Any) -> None:
    conn = {"conn_type": "snowflake", "login": "dev", "password": "secret", "schema": "RAW"} | fields
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))


def _connect_kwargs(hook_class: type[ProviderSnowflakeHook]) -> dict[str, Any]:
    with mock.patch("snowflake.connector.connect") as connect:
        hook_class(snowflake_conn_id=CONN_ID).get_conn()
    connect.assert_called_once()
    return connect.call_args.kwargs


DEVSTACK_EXTRA = {"account": "fakesnow", "database": "FRAUD_DB", "warehouse": "WH", "protocol": "http"}


def test_provider_hook_drops_protocol_and_port_field(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gap this hook exists for: if the provider fixes it, the subclass can go."""
    _set_conn(monkeypatch, host="127.0.0.1", port=8765, extra=DEVSTACK_EXTRA)
    kwargs = _connect_kwargs(ProviderSnowflakeHook)
    assert "protocol" not in kwargs
    assert "port" not in kwargs
    assert "host" not in kwargs


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param(
            {"host": "127.0.0.1", "port": 8765, "extra": DEVSTACK_EXTRA},
            {"host": "127.0.0.1", "port": 8765, "protocol": "http"},
            id="host-port-fields",
        ),
        pytest.param(
            {"extra": DEVSTACK_EXTRA | {"host": "localhost", "port": "9000", "protocol": "HTTP"}},
            {"host": "localhost", "port": 9000, "protocol": "http"},
            id="all-in-extra",
        ),
        pytest.param(
            {"host": "ignored.example", "port": 1, "extra": DEVSTACK_EXTRA | {"host": "127.0.0.2", "port": 9001}},
            {"host": "127.0.0.2", "port": 9001, "protocol": "http"},
            id="extra-wins-over-fields",
        ),
    ],
)
def test_forwards_host_port_protocol(
    monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any], expected: dict[str, Any]
) -> None:
    _set_conn(monkeypatch, **fields)
    kwargs = _connect_kwargs(SnowflakeHook)
    assert {k: kwargs.get(k) for k in expected} == expected
    assert kwargs["account"] == "fakesnow"
    assert kwargs["database"] == "FRAUD_DB"
    assert kwargs["schema"] == "RAW"


def test_plain_snowflake_connection_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without host, port or protocol, the connector gets what the provider's hook gives it."""
    _set_conn(monkeypatch, extra={"account": "xy12345", "database": "DB", "region": "eu-west-1"})
    assert _connect_kwargs(SnowflakeHook) == _connect_kwargs(ProviderSnowflakeHook)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param({"protocol": "ftp"}, "protocol", id="bad-protocol"),
        pytest.param({"port": "eighty"}, "port must be an integer", id="bad-port"),
    ],
)
def test_rejects_invalid_settings(monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any], message: str) -> None:
    _set_conn(monkeypatch, extra={"account": "fakesnow"} | extra)
    with pytest.raises(ValueError, match=message) as excinfo:
        _connect_kwargs(SnowflakeHook)
    assert CONN_ID in str(excinfo.value)
