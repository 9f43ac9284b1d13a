"""Fault injection rules."""

from __future__ import annotations

import pytest

from devstack.sagemaker.faults import Faults, FaultSpecError


def test_job_faults_apply_to_the_next_matching_jobs_only() -> None:
    faults = Faults()
    faults.configure(
        {
            "fail_jobs": {"name_prefix": "train-", "count": 2, "reason": "CapacityError: no ml.m5 left"},
            "delay_jobs": [{"name_prefix": "proc-", "seconds": 1.5}],
        }
    )
    assert faults.take_job_fault("proc-1").delay_seconds == 1.5
    assert faults.take_job_fault("proc-2").delay_seconds == 0
    assert faults.take_job_fault("other").fail_reason is None
    assert faults.take_job_fault("train-1").fail_reason == "CapacityError: no ml.m5 left"
    assert faults.take_job_fault("train-2").fail_reason == "CapacityError: no ml.m5 left"
    assert faults.take_job_fault("train-3").fail_reason is None
    assert faults.snapshot() == {
        "fail_jobs": [], "delay_jobs": [], "throttle": [], "fail_updates": [], "throttled": {}, "calls": {},
        "hold_answers": [],
    }  # fmt: skip


def test_throttle_expires_and_clear_removes_everything() -> None:
    faults = Faults()
    faults.configure({"throttle": {"action": "CreateTrainingJob", "seconds": 60}})
    assert faults.is_throttled("CreateTrainingJob")
    assert not faults.is_throttled("DescribeTrainingJob")
    assert faults.is_throttled("CreateTrainingJob")
    faults.configure({"throttle": {"action": "ListModels", "seconds": 0}})
    assert not faults.is_throttled("ListModels")
    assert faults.snapshot()["throttled"] == {"CreateTrainingJob": 2}, "throttled answers are counted per action"
    faults.clear()
    assert not faults.is_throttled("CreateTrainingJob")
    assert faults.snapshot()["throttled"] == {}


def test_a_counted_throttle_refuses_exactly_that_many_calls() -> None:
    faults = Faults()
    faults.configure({"throttle": {"action": "DescribeTrainingJob", "count": 3}})
    assert faults.snapshot()["throttle"] == [{"action": "DescribeTrainingJob", "count": 3}]
    assert [faults.is_throttled("DescribeTrainingJob") for _ in range(5)] == [True, True, True, False, False]
    assert faults.snapshot()["throttle"] == [] and faults.snapshot()["throttled"] == {"DescribeTrainingJob": 3}


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param([], id="not-object"),
        pytest.param({"explode": {}}, id="unknown-key"),
        pytest.param({"delay_jobs": {"name_prefix": "a"}}, id="missing-seconds"),
        pytest.param({"throttle": {"seconds": 3}}, id="missing-action"),
        pytest.param({"throttle": {"action": "X"}}, id="throttle-without-seconds-or-count"),
        pytest.param({"throttle": {"action": "X", "seconds": 1, "count": 2}}, id="throttle-with-seconds-and-count"),
        pytest.param({"fail_jobs": {"count": -1}}, id="negative-count"),
        pytest.param({"fail_updates": {"status": "Failed"}}, id="update-without-endpoint"),
        pytest.param({"fail_updates": {"endpoint": "ep", "status": "RollingBack"}}, id="update-status-not-terminal"),
        pytest.param({"fail_updates": {"endpoint": "ep", "status": "Failed", "reason": ""}}, id="update-empty-reason"),
    ],
)
def test_malformed_specs_are_rejected(payload: object) -> None:
    faults = Faults()
    with pytest.raises(FaultSpecError):
        faults.configure(payload)
    assert faults.snapshot() == {
        "fail_jobs": [], "delay_jobs": [], "throttle": [], "fail_updates": [], "throttled": {}, "calls": {},
        "hold_answers": [],
    }  # fmt: skip


def test_update_faults_end_the_next_updates_of_their_endpoint_only() -> None:
    faults = Faults()
    faults.configure(
        {
            "fail_updates": [
                {"endpoint": "ep", "status": "UpdateRollbackFailed", "count": 2},
                {"endpoint": "other", "status": "Failed", "reason": "InternalServerError: boom"},
            ]
        }
    )
    assert faults.take_update_fault("ep-2") is None, "the endpoint name is matched exactly"
    first = faults.take_update_fault("ep")
    assert first is not None and first.status == "UpdateRollbackFailed" and "rollback" in first.reason
    assert faults.snapshot()["fail_updates"][0]["count"] == 1
    assert faults.take_update_fault("ep") is not None
    assert faults.take_update_fault("ep") is None, "count bounds the updates that fail"
    other = faults.take_update_fault("other")
    assert other is not None and (other.status, other.reason) == ("Failed", "InternalServerError: boom")
    assert faults.snapshot()["fail_updates"] == []


def test_handled_calls_are_counted_per_action_until_cleared() -> None:
    faults = Faults()
    for action in ("UpdateEndpoint", "DescribeEndpoint", "UpdateEndpoint"):
        faults.count_call(action)
    assert faults.snapshot()["calls"] == {"DescribeEndpoint": 1, "UpdateEndpoint": 2}
    faults.clear()
    assert faults.snapshot()["calls"] == {}


def test_a_held_answer_waits_its_seconds_or_until_the_faults_are_cleared() -> None:
    import threading
    import time

    faults = Faults()
    faults.configure({"hold_answers": {"action": "CreateProcessingJob", "count": 1, "seconds": 0.2}})
    assert faults.snapshot()["hold_answers"] == [{"action": "CreateProcessingJob", "count": 1, "seconds": 0.2}]
    assert faults.take_hold("CreateTrainingJob") is None
    hold = faults.take_hold("CreateProcessingJob")
    assert hold is not None and faults.take_hold("CreateProcessingJob") is None, "count answers are held"
    started = time.monotonic()
    hold.wait()
    assert time.monotonic() - started >= 0.2

    faults.configure({"hold_answers": {"action": "UpdateEndpoint", "seconds": 600}})
    hold = faults.take_hold("UpdateEndpoint")
    assert hold is not None
    waiter = threading.Thread(target=hold.wait)
    waiter.start()
    faults.clear()
    waiter.join(timeout=5)
    assert not waiter.is_alive(), "clearing the faults releases the held answers"
