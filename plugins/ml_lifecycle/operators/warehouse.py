"""What the operators between Snowflake and S3 share: the Snowflake hook, the query files under ``include/``,
the interval instants they bind and the encryption of the objects they write.

- :class:`SnowflakeS3OperatorBase`: the task's AWS connection with the S3 hook, and ``snowflake_conn_id``.
- :class:`SnowflakeQueryToS3Base`: runs a query file under ``include/`` and writes what it returns to S3
  (the feature extraction, the labels export).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator


def parse_instant(name: str, value: Any) -> dt.datetime:
    """A naive UTC datetime from a datetime or an ISO 8601 string (what ``{{ data_interval_start }}`` renders).

    :raises ValueError: the value is neither; the message names the parameter
    """
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, dt.date):
        parsed = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{name}={value!r} is not an ISO 8601 date or datetime") from None
    else:
        raise ValueError(f"{name} must be a datetime or an ISO 8601 string, got {type(value).__name__}")
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed


def resolve_include_path(relative: str) -> Path:
    """``include/<relative>``, refusing absolute paths and ``..`` so a task only reads shipped files."""
    from ml_lifecycle.config import include_dir

    candidate = Path(relative)
    if candidate.is_absolute() or ".." in candidate.parts:
        raise ValueError(f"{relative!r} must be a relative path under include/ (no '..')")
    path = include_dir() / candidate
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found (looked under include/ for {relative!r})")
    return path


class SnowflakeS3OperatorBase(AwsBaseOperator[S3Hook]):
    """An operator on the task's AWS connection (S3) and a Snowflake connection.

    :param snowflake_conn_id: Airflow connection for Snowflake
    """

    aws_hook_class = S3Hook

    def __init__(self, *, snowflake_conn_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.snowflake_conn_id = snowflake_conn_id

    def get_snowflake_hook(self) -> Any:
        """The project's Snowflake hook (it forwards ``protocol`` / ``port``, which the devstack needs)."""
        from ml_lifecycle.hooks.snowflake_hook import SnowflakeHook

        return SnowflakeHook(snowflake_conn_id=self.snowflake_conn_id)


class SnowflakeQueryToS3Base(SnowflakeS3OperatorBase):
    """Runs a query file under ``include/`` in Snowflake and writes what it returns to S3.

    :param sql_path: the query, relative to ``include/`` (templated in the operators that list it)
    :param source_name: what the query reads, for messages (e.g. ``FRAUD_DB.RAW.CARD_TRANSACTIONS``)
    :param kms_key_id: KMS key for server-side encryption of the written objects
    """

    ui_color = "#d8eefa"

    def __init__(
        self, *, sql_path: str, source_name: str | None = None, kms_key_id: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.sql_path = sql_path
        self.source_name = source_name
        self.kms_key_id = kms_key_id

    def read_sql(self) -> str:
        """The query's text (``include/<sql_path>``)."""
        return resolve_include_path(self.sql_path).read_text(encoding="utf-8")

    @property
    def source(self) -> str:
        """What the query reads, for messages: ``source_name``, else the query file."""
        return self.source_name or f"the result of {self.sql_path}"

    @property
    def _put_args(self) -> dict[str, Any]:
        """``PutObject`` arguments of the written objects' encryption (SSE-KMS with ``kms_key_id``)."""
        if self.kms_key_id:
            return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id}
        return {}
