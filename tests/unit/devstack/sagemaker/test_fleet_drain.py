"""A fleet whose traffic moved away lets the requests already routed to it finish before it stops."""

from __future__ import annotations

import threading
import time

from devstack.sagemaker.deployments import Fleet


def fleet() -> Fleet:
    return Fleet("ep", "cfg-1", {"VariantName": "AllTraffic"}, None)


def test_drain_waits_for_requests_in_flight_and_refuses_new_ones() -> None:
    serving = fleet()
    assert serving.enter()
    drained = threading.Event()
    drainer = threading.Thread(target=lambda: (serving.drain(10), drained.set()))
    drainer.start()
    time.sleep(0.1)

    assert not drained.is_set(), "the request in flight is not cut off"
    assert not serving.enter(), "no new request once the fleet drains"
    serving.leave()
    drainer.join(5)
    assert drained.is_set()


def test_drain_is_bounded() -> None:
    stuck = fleet()
    assert stuck.enter()
    started = time.monotonic()
    stuck.drain(0.2)
    assert time.monotonic() - started < 2
