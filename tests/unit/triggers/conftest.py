"""Running a trigger in the test's own event loop against a stand-in SageMaker client."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest


def _first_event(trigger: Any, client: Any) -> dict[str, Any]:
    trigger._client = lambda: client

    async def run() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(run())


@pytest.fixture(name="first_event")
def first_event_fixture() -> Callable[[Any, Any], dict[str, Any]]:
    """``first_event(trigger, client)``: the payload of the first event the trigger fires, its boto3 client
    replaced by ``client``."""
    return _first_event
