"""Notifications to the environment's SNS topic: task failures, rejected models, approvals to give.

``on_failure_callback`` is every DAG's failure callback. It publishes the DAG, task, run, try, a link to the
task's log (``notifications.airflow_base_url``) and the error, with secrets masked. A notification is a
side channel: if the topic is not configured, does not exist or SNS fails, the problem is logged and the
original failure stays what the task reports.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import quote

log = logging.getLogger(__name__)

SUBJECT_MAX = 100
MESSAGE_MAX = 4000
ERROR_MAX = 1500
# values that look like credentials even when the secrets masker does not know them
_CREDENTIAL = re.compile(
    r"(?i)((?:password|passwd|secret|token|private_key|aws_secret_access_key|authorization)\s*[=:]\s*)\S+"
)
_ACCESS_KEY = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b")


def _redact(text: str) -> str:
    # The credential patterns run first, on the text as written: the masker may already have replaced part of
    # a key name (a registered secret such as "secret" turns "aws_secret_access_key" into "aws_***_access_key"),
    # after which the patterns would no longer recognise the value that follows it.
    text = _ACCESS_KEY.sub("***", _CREDENTIAL.sub(r"\1***", text))
    try:
        from airflow.sdk._shared.secrets_masker import redact

        text = str(redact(text))
    except Exception:  # the masker is best effort; the patterns above already applied
        log.debug("secrets masker unavailable", exc_info=True)
    return text


def log_url(base_url: str, dag_id: str, run_id: str, task_id: str, try_number: int | None, map_index: int = -1) -> str:
    """Link to a task instance's log in the Airflow 3 UI."""
    url = f"{base_url.rstrip('/')}/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}/tasks/{quote(task_id)}"
    if map_index is not None and map_index >= 0:
        url += f"/mapped/{map_index}"
    if try_number:
        url += f"?try_number={try_number}"
    return url


def publish(subject: str, message: str, *, cfg: Any = None) -> bool:
    """Publish to the configured topic; returns whether it was sent (failures are logged, never raised)."""
    try:
        if cfg is None:
            from ml_lifecycle.config import load_config

            cfg = load_config()
        topic = cfg.notifications.sns_topic_arn
        if not topic:
            log.info("No notifications.sns_topic_arn configured; not sending %r", subject)
            return False
        from airflow.providers.amazon.aws.hooks.sns import SnsHook

        SnsHook(aws_conn_id=cfg.aws.conn_id).publish_to_target(
            target_arn=topic,
            subject=_redact(subject)[:SUBJECT_MAX].replace("\n", " "),
            message=_redact(message)[:MESSAGE_MAX],
        )
        log.info("Sent notification %r to %s", subject, topic)
        return True
    except Exception:
        log.exception("Could not send notification %r; continuing", subject)
        return False


def _task_facts(context: Any, cfg: Any) -> dict[str, Any]:
    ti = context.get("ti") or context.get("task_instance")
    dag = context.get("dag")
    dag_id = getattr(ti, "dag_id", None) or getattr(dag, "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    run_id = context.get("run_id") or getattr(ti, "run_id", "?")
    try_number = getattr(ti, "try_number", None)
    map_index = getattr(ti, "map_index", -1)
    return {
        "dag_id": dag_id,
        "task_id": task_id,
        "run_id": run_id,
        "try_number": try_number,
        "log_url": log_url(cfg.notifications.airflow_base_url, dag_id, run_id, task_id, try_number, map_index),
        "environment": cfg.environment,
    }


def failure_message(context: Any, cfg: Any) -> tuple[str, str]:
    """Subject and body of a task-failure notification."""
    facts = _task_facts(context, cfg)
    error = context.get("exception")
    error_text = f"{type(error).__name__}: {error}" if error is not None else "(no exception recorded)"
    if len(error_text) > ERROR_MAX:
        error_text = error_text[:ERROR_MAX] + " ..."
    subject = f"[{facts['environment']}] Airflow task failed: {facts['dag_id']}.{facts['task_id']}"
    body = "\n".join(
        [
            f"Task {facts['task_id']} of DAG {facts['dag_id']} failed.",
            f"Run: {facts['run_id']}",
            f"Try: {facts['try_number']}",
            f"Log: {facts['log_url']}",
            "",
            f"Error: {error_text}",
        ]
    )
    return subject, body


def on_failure_callback(context: Any) -> None:
    """Task failure callback: notify the environment's SNS topic. Never raises."""
    try:
        from ml_lifecycle.config import load_config

        cfg = load_config()
        subject, body = failure_message(context, cfg)
    except Exception:
        log.exception("Could not build the failure notification")
        return
    publish(subject, body, cfg=cfg)


def notify_gate_rejected(context: Any, gate: dict[str, Any], *, cfg: Any = None) -> bool:
    """Tell the team that the quality gate rejected this run's model (not a system failure)."""
    if cfg is None:
        from ml_lifecycle.config import load_config

        cfg = load_config()
    facts = _task_facts(context, cfg)
    failed = "\n".join(f"  - {check}" for check in gate.get("failed_checks", [])) or "  (none recorded)"
    baseline = gate.get("baseline_model_package_arn") or "none (first model: thresholds only)"
    subject = f"[{facts['environment']}] Model rejected by the quality gate: {facts['dag_id']}"
    body = "\n".join(
        [
            f"The model trained by run {facts['run_id']} did not pass the quality gate and was not registered.",
            "This is a model-quality outcome, not a pipeline failure.",
            "",
            "Failed checks:",
            failed,
            f"Baseline model package: {baseline}",
            f"Evidence: {gate.get('gate_uri')}",
            f"Evaluation report: {gate.get('evaluation_uri')}",
            f"Log: {facts['log_url']}",
        ]
    )
    return publish(subject, body, cfg=cfg)


def notify_approval_needed(context: Any, registration: dict[str, Any], *, cfg: Any = None) -> bool:
    """Ask for a manual approval of a registered model version."""
    if cfg is None:
        from ml_lifecycle.config import load_config

        cfg = load_config()
    facts = _task_facts(context, cfg)
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted((registration.get("metrics") or {}).items())) or "n/a"
    subject = f"[{facts['environment']}] Model awaiting approval: {registration.get('model_package_group')}"
    body = "\n".join(
        [
            f"Model package {registration.get('model_package_arn')} (version {registration.get('version')})",
            "passed the quality gate and awaits manual approval (status PendingManualApproval).",
            f"Metrics: {metrics}",
            f"Evaluation report: {registration.get('evaluation_uri')}",
            f"Gate report: {registration.get('gate_uri')}",
            f"Run: {facts['run_id']}",
            f"Log: {facts['log_url']}",
            "Approve it in the SageMaker model registry (UpdateModelPackage ModelApprovalStatus=Approved).",
        ]
    )
    return publish(subject, body, cfg=cfg)
