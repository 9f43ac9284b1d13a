"""What the package's SageMaker triggers share: the AWS connection they rebuild in the triggerer, its
serialization, and the poll loop.

There is no ``aiobotocore`` in the MWAA constraints, so the boto3 calls run in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from airflow.triggers.base import BaseTrigger

T = TypeVar("T")


class SageMakerPollingTrigger(BaseTrigger):
    """Polls SageMaker every ``poll_interval`` seconds, at most ``max_attempts`` times.

    A subclass takes its own keyword arguments and passes the rest (these) on; its ``serialize`` gives its
    own arguments to :meth:`_serialize_with`, which adds these, so the event loop can rebuild it. It runs
    its loop with :meth:`_poll`.

    :param poll_interval: seconds between polls
    :param max_attempts: polls before giving up (a ``timeout`` event)
    :param aws_conn_id: Airflow connection for AWS
    :param region_name: AWS region (default: the connection's)
    :param verify: SSL verification for boto3
    :param botocore_config: botocore client configuration
    """

    def __init__(
        self,
        *,
        poll_interval: float = 30,
        max_attempts: int = 120,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict | None = None,
    ) -> None:
        super().__init__()
        self.poll_interval = poll_interval
        self.max_attempts = max_attempts
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config

    def _serialize_with(self, own: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The ``serialize`` answer: this class's path and ``own`` arguments plus the shared ones."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                **own,
                "poll_interval": self.poll_interval,
                "max_attempts": self.max_attempts,
                "aws_conn_id": self.aws_conn_id,
                "region_name": self.region_name,
                "verify": self.verify,
                "botocore_config": self.botocore_config,
            },
        )

    def _client(self) -> Any:
        """A boto3 SageMaker client from the connection (blocking: call it in a thread)."""
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

        return SageMakerHook(
            aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify, config=self.botocore_config
        ).conn

    @property
    def waited_seconds(self) -> float:
        """About how long :meth:`_poll` waits before it gives up."""
        return self.poll_interval * self.max_attempts

    async def _poll(
        self, fetch: Callable[[], T], done: Callable[[T], bool], still_waiting: Callable[[T, int], None]
    ) -> tuple[T | None, bool]:
        """Call ``fetch`` (in a thread) until ``done`` says yes or the attempts run out.

        :param fetch: one blocking SageMaker call.
        :param done: whether its answer ends the wait.
        :param still_waiting: called with an answer that does not, and the attempt number (to log progress).
        :return: the last answer, and whether it was ``done``.
        """
        answer: T | None = None
        for attempt in range(1, max(self.max_attempts, 1) + 1):
            answer = await asyncio.to_thread(fetch)
            if done(answer):
                return answer, True
            still_waiting(answer, attempt)
            await asyncio.sleep(self.poll_interval)
        return answer, False
