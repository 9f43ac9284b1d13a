"""Fault: a Model Monitor execution fails (the analyzer job fails).

Expected:

- one-off analysis (``monitor_model.run_now``): the task fails naming the one-off schedule and the
  execution's FailureReason; the one-off schedule is deleted, its execution kept;
- hourly schedule (``monitor_model.read_latest``): the failed execution is reported, not raised (an hour
  without traffic also ends ``Failed``): the findings carry ``execution_status: Failed`` and the
  FailureReason, the report is written to S3, and ``publish_drift`` is skipped saying that the execution
  failed and why (never "no drift"); no drift asset is emitted;
- the endpoint is untouched and the model serves 100 %; one processing job per execution.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowSkipException

from tests.faults.conftest import (
    ENDPOINT,
    control,
    fail_task,
    notifications,
    run_task,
    s3_json,
    s3_keys,
    sagemaker_faults,
    served,
    task_context,
    wait_for,
)
from tests.faults.deploy_checks import assert_previous_model_serves_everything

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REASON = "AlgorithmError: analyzer: java.lang.OutOfMemoryError: Java heap space (injected), exit code: 1"
FAULT = {"fail_jobs": {"name_prefix": "model-monitoring-", "count": 1, "reason": REASON}}


def monitor_jobs(aws: SimpleNamespace) -> list[str]:
    pages = aws.sm.get_paginator("list_processing_jobs").paginate(NameContains="model-monitoring-")
    return [j["ProcessingJobName"] for page in pages for j in page["ProcessingJobSummaries"]]


@pytest.fixture(scope="module")
def monitored(aws: SimpleNamespace, trained: dict[str, Any], serving: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """``deploy_model``'s tail on the suite's endpoint: data-quality baseline, then the hourly schedule."""
    from ml_lifecycle.operators.monitor import DataQualityBaselineOperator, MonitoringScheduleOperator

    version = serving["model_package_version"]
    baseline = run_task(
        DataQualityBaselineOperator(
            task_id="baseline",
            dataset_uri=trained["preprocess"]["outputs"]["baseline"],
            model_package_version=version,
            endpoint_name=ENDPOINT,
            poll_interval=1,
        ),
        task_context("baseline", "faults__monitoring", dag_id="deploy_model"),
    )
    schedule = run_task(
        MonitoringScheduleOperator(
            task_id="schedule_monitoring",
            statistics_uri=baseline["statistics_uri"],
            constraints_uri=baseline["constraints_uri"],
            model_package_version=version,
            endpoint_name=ENDPOINT,
        ),
        task_context("schedule_monitoring", "faults__monitoring", dag_id="deploy_model"),
    )
    # traffic captured in the last hour, for the analysis to read
    capture = serving["data_capture_uri"].rstrip("/") + f"/{ENDPOINT}/"
    served(aws, 10)
    wait_for(lambda: s3_keys(aws.s3, capture), 30, f"captured requests under {capture}")
    yield schedule
    # no hourly executions through the rest of the session
    aws.sm.delete_monitoring_schedule(MonitoringScheduleName=schedule["schedule_name"])


def test_model_monitor_execution_failure_is_reported_with_its_reason(
    aws: SimpleNamespace, cfg: Any, monitored: dict[str, Any], previous_model: dict[str, Any]
) -> None:
    from ml_lifecycle.operators.monitor import (
        LatestMonitoringResultOperator,
        MonitoringRunOperator,
        PublishDriftOperator,
    )

    run_id = "faults__model_monitor_failure"
    jobs_before = monitor_jobs(aws)

    # 1. the one-off analysis (run_now) fails loudly
    with sagemaker_faults(aws.url, FAULT):
        error = fail_task(
            MonitoringRunOperator(task_id="run_now", endpoint_name=ENDPOINT, window_hours=1, poll_interval=1),
            task_context("run_now", run_id, dag_id="monitor_model"),
            AirflowException,
        )
    assert "one-off monitoring run" in str(error) and f"failed: {REASON}" in str(error)
    notes = notifications(aws, run_id)
    assert any("monitor_model.run_now" in n["subject"] and REASON in n["message"] for n in notes), notes
    one_off = [s["MonitoringScheduleName"] for s in aws.sm.list_monitoring_schedules()["MonitoringScheduleSummaries"]]
    assert one_off == [monitored["schedule_name"]], "the one-off schedule is deleted, the hourly one stays"

    # 2. the hourly schedule's execution fails; read_latest reports it, publish_drift says why it skips
    with sagemaker_faults(aws.url, FAULT):
        control(
            aws.url, "POST", "/_devstack/monitoring/run-now", {"MonitoringScheduleName": monitored["schedule_name"]}
        )
        execution = wait_for(
            lambda: next(
                (
                    e
                    for e in aws.sm.list_monitoring_executions(MonitoringScheduleName=monitored["schedule_name"])[
                        "MonitoringExecutionSummaries"
                    ]
                    if e["MonitoringExecutionStatus"] in ("Failed", "Completed", "CompletedWithViolations")
                ),
                None,
            ),
            120,
            "the hourly schedule's execution to finish",
        )
    assert execution["MonitoringExecutionStatus"] == "Failed" and REASON in execution["FailureReason"]

    read_ctx = task_context("read_latest", run_id, dag_id="monitor_model")
    findings = run_task(LatestMonitoringResultOperator(task_id="read_latest", endpoint_name=ENDPOINT), read_ctx)
    assert findings["execution_status"] == "Failed" and REASON in findings["failure_reason"]
    assert findings["violation_count"] == 0 and findings["drift"] is False
    assert s3_json(aws.s3, findings["report_uri"])["failure_reason"] == findings["failure_reason"], "report kept"

    drift_uri = cfg.storage.uri("reports", "faults", "drift.json")
    publish_ctx = task_context("publish_drift", run_id, dag_id="monitor_model")
    with pytest.raises(AirflowSkipException) as skipped:
        run_task(PublishDriftOperator(task_id="publish_drift", findings=findings, drift_uri=drift_uri), publish_ctx)
    assert "FAILED" in str(skipped.value) and REASON in str(skipped.value), str(skipped.value)
    assert not str(skipped.value).startswith("No drift:"), "a failed analysis is never reported as no drift"
    assert not s3_keys(aws.s3, drift_uri), "no drift asset for an analysis that did not run"

    assert len(monitor_jobs(aws)) == len(jobs_before) + 2, "one processing job per execution"
    assert_previous_model_serves_everything(aws, previous_model)
