"""Snowflake hook that honours ``host``, ``port`` and ``protocol`` from the Airflow connection.

The Snowflake provider's hook (6.x) builds the connector's arguments from the connection extra and passes
``host`` and ``port`` only when they are in the extra, never from the connection's own Host and Port
fields, and it drops ``protocol`` altogether. The connector then always speaks HTTPS to
``<account>.snowflakecomputing.com``: fine for Snowflake itself, but it cannot reach a Snowflake-compatible
endpoint served over plain HTTP on a chosen host and port, such as the devstack's. This subclass
forwards the three settings; everything else is the provider's behaviour.

Connection example (JSON form of ``AIRFLOW_CONN_SNOWFLAKE_DEFAULT``)::

    {"conn_type": "snowflake", "host": "127.0.0.1", "port": 8765, "login": "dev", "password": "dev",
     "schema": "RAW", "extra": {"account": "fakesnow", "database": "FRAUD_DB", "protocol": "http"}}
"""

from __future__ import annotations

from typing import Any

from airflow.providers.snowflake.hooks.snowflake import SnowflakeHook as _ProviderSnowflakeHook

_PROTOCOLS = ("http", "https")


class SnowflakeHook(_ProviderSnowflakeHook):
    """:class:`airflow.providers.snowflake.hooks.snowflake.SnowflakeHook` that forwards host, port, protocol.

    ``host`` and ``port`` are read from the connection extra first (as the provider does), then from the
    connection's Host and Port fields; ``protocol`` (``http`` or ``https``) from the extra.
    Without any of them the hook behaves exactly like the provider's.
    """

    def _add_network_config(self, conn_config: dict[str, Any], extra_dict: dict[str, Any]) -> None:
        super()._add_network_config(conn_config, extra_dict)
        conn = self.get_connection(self.get_conn_id())

        host = extra_dict.get("host") or conn.host
        if host:
            conn_config["host"] = host

        port = extra_dict.get("port") or conn.port
        if port:
            try:
                conn_config["port"] = int(port)
            except (TypeError, ValueError):
                raise ValueError(
                    f"Snowflake connection {self.get_conn_id()!r}: port must be an integer, got {port!r}"
                ) from None

        protocol = extra_dict.get("protocol")
        if protocol:
            protocol = str(protocol).lower()
            if protocol not in _PROTOCOLS:
                raise ValueError(
                    f"Snowflake connection {self.get_conn_id()!r}: extra 'protocol' must be one of "
                    f"{', '.join(_PROTOCOLS)}, got {extra_dict.get('protocol')!r}"
                )
            conn_config["protocol"] = protocol
