"""Notifications to the environment's SNS topic: failures, rejected models, approvals to give and given.

Every message goes through :class:`ProjectSnsNotifier`, the Amazon provider's ``SnsNotifier`` with the
project's rules: the topic and connection come from the environment's config (``notifications.sns_topic_arn``,
``aws.conn_id``), secrets are masked in the subject and the body, both are cut to SNS's sizes, and a failure
to send is logged, never raised. A notification is a side channel: if the topic is not configured, does not
exist or SNS fails, the problem is logged and the original outcome stays what it was.

- :data:`on_failure_callback` (a :class:`TaskFailureNotifier`) is every task's failure callback: the DAG,
  task, run, try, a link to the task's log (``notifications.airflow_base_url``) and the error.
- :class:`DagFailureNotifier` is every DAG's failure callback: a run that failed for a reason no task
  callback reports, above all a run that exceeded ``dagrun_timeout`` (Airflow runs the DAG callback in the
  dag-processor, from the scheduler's request). A run that failed because a task failed is already reported
  by that task's callback and is not reported twice.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.providers.amazon.aws.notifications.sns import SnsNotifier

if TYPE_CHECKING:
    from ml_lifecycle.config import Config

log = logging.getLogger(__name__)

SUBJECT_MAX = 100
MESSAGE_MAX = 4000
ERROR_MAX = 1500
# values that look like credentials even when the secrets masker does not know them
_CREDENTIAL = re.compile(
    r"(?i)((?:password|passwd|secret|token|private_key|aws_secret_access_key|authorization)\s*[=:]\s*)\S+"
)
# an access key id wherever it stands (also between underscores, which ``\b`` would not see as an edge)
_ACCESS_KEY = re.compile(r"(?<![A-Z0-9])(AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])")
#: why a DAG run failed (the ``reason`` Airflow puts in a DAG callback's context) -> what it means
DAG_FAILURE_REASONS = {
    "timed_out": "it ran longer than its dagrun_timeout; the tasks still unfinished were set to skipped",
    "all_tasks_deadlocked": "its remaining tasks can never run (their upstream tasks failed or deadlocked)",
}
#: DAG failure reasons a task failure callback has already reported
REPORTED_BY_TASK = frozenset({"task_failure"})


def redact(text: str) -> str:
    """``text`` with credentials masked: ``password=``/``token:``-style values, access key ids, and every secret
    the secrets masker knows (connection passwords and extras it has seen)."""
    # The credential patterns run first, on the text as written: the masker may already have replaced part of
    # a key name (a registered secret such as "secret" turns "aws_secret_access_key" into "aws_***_access_key"),
    # after which the patterns would no longer recognise the value that follows it.
    text = _ACCESS_KEY.sub("***", _CREDENTIAL.sub(r"\1***", text))
    try:
        from airflow.sdk._shared.secrets_masker import redact as mask

        text = str(mask(text))
    except Exception:  # the masker is best effort; the patterns above already applied
        log.debug("secrets masker unavailable", exc_info=True)
    return text


def _quote(part: str, safe: str = "/") -> str:
    # masked before it is quoted: a secret in a run id would not be recognised once percent-encoded
    return quote(redact(str(part)), safe=safe)


def log_url(base_url: str, dag_id: str, run_id: str, task_id: str, try_number: int | None, map_index: int = -1) -> str:
    """Link to a task instance's log in the Airflow 3 UI."""
    url = f"{base_url.rstrip('/')}/dags/{_quote(dag_id)}/runs/{_quote(run_id, safe='')}/tasks/{_quote(task_id)}"
    if map_index is not None and map_index >= 0:
        url += f"/mapped/{map_index}"
    if try_number:
        url += f"?try_number={try_number}"
    return url


class ProjectSnsNotifier(SnsNotifier):
    """The provider's ``SnsNotifier`` publishing to the environment's topic, with secrets masked; never raises.

    Give it a fixed ``subject`` and ``message``, or subclass it and override :meth:`compose`. The text is
    composed when the notification is sent and is not rendered as a template (an error message may contain
    ``{{``); the notifier's template fields keep their provider meaning for the topic and the connection.

    :param cfg: the environment's config (default: loaded when the notification is sent)
    :param subject: the subject (a fixed message)
    :param message: the body (a fixed message)
    """

    def __init__(self, *, cfg: Config | None = None, subject: str = "", message: str = "", **kwargs: Any) -> None:
        super().__init__(
            aws_conn_id=cfg.aws.conn_id if cfg else None,
            target_arn=(cfg.notifications.sns_topic_arn or "") if cfg else "",
            message=message,
            subject=subject,
            **kwargs,
        )
        self.cfg = cfg

    def compose(self, context: Any, cfg: Config) -> tuple[str, str] | None:
        """Subject and body of the notification for ``context``; ``None`` sends nothing.

        :param context: the Airflow context the notifier was called with
        :param cfg: the environment's config
        """
        return self.subject or "", self.message

    def notify(self, context: Any) -> None:
        """Publish; a problem (no topic, no text, SNS error) is logged, never raised."""
        self.send(context)

    def send(self, context: Any) -> bool:
        """Publish the composed notification; returns whether it was sent.

        :param context: the Airflow context (may be empty for a fixed message)
        """
        subject, message = self.subject, self.message
        description = "notification"
        try:
            cfg = self.cfg
            if cfg is None:
                from ml_lifecycle.config import load_config

                cfg = load_config()
            composed = self.compose(context, cfg)
            if composed is None:
                return False
            description = repr(composed[0])
            topic = cfg.notifications.sns_topic_arn
            if not topic:
                log.info("No notifications.sns_topic_arn configured; not sending %s", description)
                return False
            if self.aws_conn_id is None and "hook" not in self.__dict__:
                self.aws_conn_id = cfg.aws.conn_id
            self.target_arn = topic
            self._load_connection()
            self.subject = redact(composed[0])[:SUBJECT_MAX].replace("\n", " ")
            self.message = redact(composed[1])[:MESSAGE_MAX]
            super().notify(context)
            log.info("Sent notification %s to %s", description, topic)
            return True
        except Exception:
            log.exception("Could not send %s; continuing", description)
            return False
        finally:
            # the notifier may be called again (a DAG's callback object serves every run): keep no message
            self.subject, self.message = subject, message

    def _load_connection(self) -> None:
        """Read the AWS connection before the text is masked, so that the secrets masker knows its secrets
        (Airflow registers a connection's password and extra with the masker when it reads the connection)."""
        try:
            self.hook.conn_config  # noqa: B018 - read for its effect
        except Exception:  # publishing reports a connection that cannot be read
            log.debug("could not read connection %s before masking", self.aws_conn_id, exc_info=True)


def publish(subject: str, message: str, *, cfg: Config | None = None) -> bool:
    """Publish to the configured topic; returns whether it was sent (failures are logged, never raised)."""
    return ProjectSnsNotifier(cfg=cfg, subject=subject, message=message).send({})


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


class TaskFailureNotifier(ProjectSnsNotifier):
    """Task failure callback: the DAG, task, run, try, log link and error (see :func:`failure_message`)."""

    def compose(self, context: Any, cfg: Config) -> tuple[str, str]:
        return failure_message(context, cfg)


#: every task's failure callback (``default_args``); never raises
on_failure_callback = TaskFailureNotifier()


def run_url(base_url: str, dag_id: str, run_id: str) -> str:
    """Link to a DAG run in the Airflow 3 UI."""
    return f"{base_url.rstrip('/')}/dags/{_quote(dag_id)}/runs/{_quote(run_id, safe='')}"


def dag_failure_message(context: Any, cfg: Config) -> tuple[str, str] | None:
    """Subject and body of a DAG-run failure notification; ``None`` for a failure a task callback reported.

    :param context: the DAG callback's context: ``dag``, ``run_id`` and ``reason``, and when the run had
        started a task, that task's template context (``ti``, ``dag_run``...)
    """
    reason = str(context.get("reason") or "unknown")
    if reason in REPORTED_BY_TASK:
        return None
    dag = context.get("dag")
    ti = context.get("ti") or context.get("task_instance")
    dag_id = getattr(dag, "dag_id", None) or getattr(ti, "dag_id", None) or "?"
    run_id = str(context.get("run_id") or getattr(ti, "run_id", None) or "?")
    explained = DAG_FAILURE_REASONS.get(reason, reason)
    timeout = getattr(dag, "dagrun_timeout", None)
    label = "timed out" if reason == "timed_out" else "failed"
    lines = [
        f"Run {run_id} of DAG {dag_id} {label}: {explained}.",
        f"Reason: {reason}",
    ]
    if reason == "timed_out" and timeout is not None:
        lines.append(f"dagrun_timeout: {timeout}")
    lines.append(f"Run: {run_url(cfg.notifications.airflow_base_url, dag_id, run_id)}")
    if ti is not None and getattr(ti, "task_id", None):
        try_number = getattr(ti, "try_number", None)
        lines.append(f"Last task started: {ti.task_id} (try {try_number})")
        lines.append(
            "Log: "
            + log_url(
                cfg.notifications.airflow_base_url,
                dag_id,
                run_id,
                ti.task_id,
                try_number,
                getattr(ti, "map_index", -1),
            )
        )
    subject = f"[{cfg.environment}] Airflow DAG run {label}: {dag_id}"
    return subject, "\n".join(lines)


class DagFailureNotifier(ProjectSnsNotifier):
    """DAG failure callback: a run that timed out (``dagrun_timeout``) or deadlocked.

    Airflow calls it in the dag-processor with the context of :func:`dag_failure_message`. A run that failed
    because a task failed sends nothing here: that task's :data:`on_failure_callback` reported it.
    """

    def compose(self, context: Any, cfg: Config) -> tuple[str, str] | None:
        composed = dag_failure_message(context, cfg)
        if composed is None:
            log.info("DAG run failed on a task failure, which the task's callback reported; not sending again")
        return composed


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
