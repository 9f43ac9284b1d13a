"""A person approves or rejects the run's model in Airflow (the standard provider's Human-in-the-loop approval).

``ModelApprovalOperator`` is the provider's ``ApprovalOperator`` (options ``Approve`` / ``Reject``) placed
between ``register`` and ``publish_approval``:

- **auto approval** (the package was registered ``Approved``): it skips itself at once and asks nobody;
  ``publish_approval`` runs as before;
- **manual approval** (``PendingManualApproval``): it writes the request (subject, and a Markdown body with the
  metrics, gate report, evaluation report and plots, lineage and console links), sends it to the team's topic
  with a link to the task's **Required Actions** page, and waits in Airflow 3.3's ``awaiting_input`` state,
  which holds no worker slot and no triggerer. Who may answer (``assigned_users``) and how long the request
  waits come from ``training.manual_approval``;
- **Approve** (UI or ``PATCH .../hitlDetails``): ``UpdateModelPackage`` sets ``Approved`` with an
  ``ApprovalDescription`` naming the responder and their comment, and the decision goes into the package's
  ``CustomerMetadataProperties`` (``approval:*``); ``publish_approval`` then emits the approved-model asset;
- **Reject**: the package is ``Rejected`` with the reason, and ``publish_approval`` is skipped;
- **no answer by the deadline**: fails closed. The scheduler resumes the task with a timeout; the package is
  ``Rejected`` ("approval timed out after ..."), and the task fails without retries, so nothing is published.

Every decision is sent to the team's topic. The task has no retries: a new try would ask again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException
from airflow.providers.standard.operators.hitl import ApprovalOperator, HITLOperator
from airflow.sdk import Param
from airflow.sdk.definitions.param import ParamsDict

from ml_lifecycle.links import Console, SageMakerModelPackageLink, persist_package_link
from ml_lifecycle.notifications import ProjectSnsNotifier, publish

if TYPE_CHECKING:
    from airflow.sdk import Context

    from ml_lifecycle.config import Config

APPROVED, REJECTED, PENDING = "Approved", "Rejected", "PendingManualApproval"
#: the form field a person fills in when answering
COMMENT = "comment"
#: SageMaker's limits: ApprovalDescription, and a CustomerMetadataProperties value
DESCRIPTION_MAX = 1024
METADATA_VALUE_MAX = 256
#: the lineage keys shown in the request, in order
LINEAGE_KEYS = (
    "dag_run_id",
    "window_start",
    "window_end",
    "dataset_uri",
    "manifest_uri",
    "validation_result_uri",
    "training_job",
    "code_digest",
    "git_commit",
    "baseline_uri",
)
#: the plots the evaluation writes beside ``evaluation.json``
PLOTS = ("roc_curve.png", "pr_curve.png", "confusion_matrix.png")


def format_timeout(timeout: timedelta | None) -> str:
    """``2 days``, ``1 h 30 min``, ``20 s``: how long a request waits."""
    if timeout is None:
        return "no limit"
    seconds = int(timeout.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days} day{'s' if days != 1 else ''}" if days else "", f"{hours} h" if hours else ""]
    parts += [f"{minutes} min" if minutes else "", f"{secs} s" if secs else ""]
    return " ".join(p for p in parts if p) or "0 s"


def approval_request(
    registration: dict[str, Any],
    package: dict[str, Any],
    cfg: Config,
    timeout: timedelta | None = None,
    console: Console | None = None,
) -> tuple[str, str]:
    """Subject and Markdown body of the request to approve ``package``.

    :param registration: the ``register`` task's XCom
    :param package: the version's ``DescribeModelPackage`` response
    :param cfg: the environment's config
    :param timeout: how long the request waits (default ``training.manual_approval.timeout_seconds``)
    :param console: where the links open (default: the AWS console of the config's region)
    """
    timeout = cfg.training.manual_approval.timeout if timeout is None else timeout
    from ml_lifecycle.operators.gate import package_metrics

    props = package.get("CustomerMetadataProperties") or {}
    group = package.get("ModelPackageGroupName") or registration.get("model_package_group")
    version = package.get("ModelPackageVersion") or registration.get("version")
    console = console or Console(cfg.aws.region)
    metrics = registration.get("metrics") or package_metrics(props)
    subject = f"[{cfg.environment}] Approve model {group} version {version}?"
    lines = [
        f"Model package **{group}** version **{version}** passed the quality gate and waits for a decision.",
        "",
        f"- Package: `{package['ModelPackageArn']}` ([console]({console.model_package(group, version)}))",
        "- Approve: the package becomes Approved and the deployment DAG starts.",
        "- Reject: the package becomes Rejected; nothing is deployed.",
        f"- No answer within {format_timeout(timeout)}: the package is Rejected.",
        *(["", f"**Why you are asked:** {registration['approval_hold']}"] if registration.get("approval_hold") else []),
        "",
        "**Metrics (test split)**",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {name} | {value:.4f} |" for name, value in sorted(metrics.items())],
    ]
    if not metrics:
        lines.append("| (none recorded) | |")
    reports = []
    for label, key in (("Gate report", "gate_uri"), ("Evaluation report", "evaluation_uri")):
        uri = registration.get(key) or props.get(key)
        if uri:
            reports.append(f"- {label}: `{uri}` ([console]({console.s3(uri)}))")
    evaluation = registration.get("evaluation_uri") or props.get("evaluation_uri")
    if evaluation:
        folder = evaluation.rsplit("/", 1)[0]
        reports += [f"- Plot {p}: [{folder}/{p}]({console.s3(f'{folder}/{p}')})" for p in PLOTS]
    if reports:
        lines += ["", "**Reports**", "", *reports]
    lineage = [f"- {key}: `{props[key]}`" for key in LINEAGE_KEYS if props.get(key)]
    reused = registration.get("reused_steps") or {}
    lineage += [f"- reused {step}: {source}" for step, source in sorted(reused.items())]
    if lineage:
        lines += ["", "**Lineage**", "", *lineage]
    return subject, "\n".join(lines)


class ApprovalRequestNotifier(ProjectSnsNotifier):
    """Sends the approval request (the task's subject and body) with the link to its Required Actions page."""

    def compose(self, context: Any, cfg: Config) -> tuple[str, str]:
        task = context["task"]
        try:
            link = HITLOperator.generate_link_to_ui_from_context(
                context=context, base_url=cfg.notifications.airflow_base_url
            )
        except ValueError:  # not an HITL task (a notifier given to another operator)
            link = None
        body = str(task.body or "")
        if link:
            body = f"Answer in Airflow (Required Actions): {link}\n\n{body}"
        return str(task.subject), body


def describe_response(decision: str, response: dict[str, Any]) -> str:
    """``Approved by alice (id 42) in Airflow at 2026-05-01T10:00:00+00:00: looks good``.

    :param decision: ``Approved`` or ``Rejected``
    :param response: the HITL response (``responded_by_user``, ``responded_at``, ``params_input``)
    """
    user = response.get("responded_by_user") or {}
    who = f"{user.get('name') or '?'} (id {user.get('id') or '?'})"
    at = response.get("responded_at")
    at = at.isoformat() if hasattr(at, "isoformat") else str(at or "?")
    comment = str((response.get("params_input") or {}).get(COMMENT) or "").strip() or "no comment given"
    return f"{decision} by {who} in Airflow at {at}: {comment}"


class ModelApprovalOperator(ApprovalOperator):
    """Ask a person to approve the registered model version; record the answer in the model registry.

    XCom: ``{"decision": "approved" | "rejected", "model_package_arn", "version", "approval_status",
    "responded_by": {"id", "name"}, "responded_at", "comment", "description"}``. None when the package was
    approved automatically (the task skips itself) or the request timed out (the task fails).

    :param registration: the ``register`` task's XCom (templated; in a DAG ``register.output``)
    :param aws_conn_id: the AWS connection (default ``aws.conn_id``)
    :param cfg: the environment's config (default: loaded)
    :param response_timeout: how long to wait; default ``training.manual_approval.timeout_seconds``
    :param assigned_users: who may answer; default ``training.manual_approval.approvers``
    """

    template_fields: Sequence[str] = ("subject", "body", "registration")
    operator_extra_links = (SageMakerModelPackageLink(),)
    ui_color = "#fde2c4"

    def __init__(
        self,
        *,
        registration: dict[str, Any] | str | None = None,
        aws_conn_id: str | None = None,
        cfg: Config | None = None,
        **kwargs: Any,
    ) -> None:
        if cfg is None:
            from ml_lifecycle.config import load_config

            cfg = load_config()
        manual = cfg.training.manual_approval
        kwargs.setdefault("response_timeout", manual.timeout)
        kwargs.setdefault("assigned_users", manual.assigned_users())
        kwargs.setdefault("notifiers", [ApprovalRequestNotifier(cfg=cfg)])
        kwargs.setdefault("subject", "Approve the model of this run?")
        # the form of the request; Airflow has already merged the DAG's params in (source "dag"), which the
        # provider drops: only task params make the form
        params = ParamsDict(kwargs.get("params") or {})
        if COMMENT not in params:
            params[COMMENT] = Param(
                "",
                type="string",
                maxLength=500,
                title="Comment",
                description="Why you approve or reject this model; recorded in the model registry.",
                source="task",
            )
        kwargs["params"] = params
        if kwargs.get("defaults") is not None:
            raise ValueError("ModelApprovalOperator never answers on its own: defaults must not be set")
        kwargs["retries"] = 0  # a new try would ask again
        super().__init__(**kwargs)
        self.registration = registration
        self.aws_conn_id = aws_conn_id or cfg.aws.conn_id
        self.cfg = cfg

    # ------------------------------------------------------------------------------------------ registry

    @cached_property
    def hook(self) -> Any:
        """The SageMaker hook of :attr:`aws_conn_id` (its region names the console links)."""
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

        return SageMakerHook(aws_conn_id=self.aws_conn_id)

    @property
    def client(self) -> Any:
        return self.hook.conn

    def _registration(self) -> dict[str, Any]:
        registration = self.registration
        if isinstance(registration, str):
            import json

            registration = json.loads(registration) if registration.strip() else None
        if not registration or not registration.get("model_package_arn"):
            raise AirflowFailException("no result from the registration (the registration input is empty)")
        return registration

    def _record(self, arn: str, status: str, description: str, metadata: dict[str, str]) -> dict[str, Any]:
        self.log.info("Setting %s to %s: %s", arn, status, description)
        self.client.update_model_package(
            ModelPackageArn=arn,
            ModelApprovalStatus=status,
            ApprovalDescription=description[:DESCRIPTION_MAX],
            CustomerMetadataProperties={k: str(v)[:METADATA_VALUE_MAX] for k, v in metadata.items()},
        )
        return self.client.describe_model_package(ModelPackageName=arn)

    # ------------------------------------------------------------------------------------------ execute

    def execute(self, context: Context) -> Any:
        registration = self._registration()
        arn = registration["model_package_arn"]
        package = self.client.describe_model_package(ModelPackageName=arn)
        persist_package_link(self, context, package)
        status = package.get("ModelApprovalStatus")
        if status == APPROVED:
            raise AirflowSkipException(f"{arn} was approved automatically at registration; nobody is asked")
        if status != PENDING:
            raise AirflowFailException(f"{arn} is {status}, not {PENDING}: there is nothing to approve")
        self.subject, self.body = approval_request(
            registration, package, self.cfg, self.response_timeout, Console.of(self.hook, self.cfg.aws.region)
        )
        self.log.info(
            "Asking %s to approve %s; the request waits %s, then the package is Rejected",
            ", ".join(u["id"] for u in self.assigned_users or []) or "any permitted user",
            arn,
            format_timeout(self.response_timeout),
        )
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        registration = self._registration()
        arn = registration["model_package_arn"]
        run_id = context.get("run_id") or getattr(context.get("ti"), "run_id", "")
        if "error" in event:
            if event.get("error_type") != "timeout":
                raise AirflowFailException(f"the approval request of {arn} failed: {event.get('error')}")
            waited = format_timeout(self.response_timeout)
            description = f"Rejected: approval timed out after {waited} without an answer (run {run_id})"
            self._record(
                arn,
                REJECTED,
                description,
                {"approval:decision": "timed_out", "approval:by": "timeout", "approval:run_id": run_id},
            )
            self._notify(registration, "timed out: Rejected", description)
            raise AirflowFailException(
                f"approval timed out after {waited}: {arn} is now Rejected and nothing is published"
            )
        # validates the option and the form, and returns the response (chosen_options, params_input, by, at)
        response = HITLOperator.execute_complete(self, context=context, event=event)
        approved = response["chosen_options"][0] == self.APPROVE
        status = APPROVED if approved else REJECTED
        description = describe_response(status, response)
        user = response.get("responded_by_user") or {}
        comment = str((response.get("params_input") or {}).get(COMMENT) or "").strip()
        at = response.get("responded_at")
        at = at.isoformat() if hasattr(at, "isoformat") else str(at or "")
        package = self._record(
            arn,
            status,
            description,
            {
                "approval:decision": status.lower(),
                "approval:by": f"{user.get('name') or '?'} (id {user.get('id') or '?'})",
                "approval:at": at,
                "approval:comment": comment or "-",
                "approval:run_id": run_id,
            },
        )
        self._notify(registration, status, description)
        cleared = self._clear_bias_hold() if approved else None
        result = {
            "decision": status.lower(),
            "model_package_arn": arn,
            "version": package.get("ModelPackageVersion"),
            "approval_status": package.get("ModelApprovalStatus"),
            "responded_by": {"id": user.get("id"), "name": user.get("name")},
            "responded_at": at,
            "comment": comment,
            "description": description[:DESCRIPTION_MAX],
            "bias_hold_cleared": cleared,
        }
        if not approved:
            downstream = [t for t in context["task"].get_direct_relatives(upstream=False) if not t.is_teardown]
            if downstream:
                # skipping ends the task (the task runner takes it from here), so the result is pushed first
                context["ti"].xcom_push(key="return_value", value=result)
                self.log.info("Rejected: skipping %s", ", ".join(t.task_id for t in downstream))
                self.skip(ti=context["ti"], tasks=downstream)
        return result

    def _clear_bias_hold(self) -> str | None:
        """A person approved: clear the endpoint's bias hold (:mod:`ml_lifecycle.bias_hold`); its URI, if any."""
        from ml_lifecycle.bias_hold import clear_hold

        hold = clear_hold(self.hook.s3_hook.get_conn(), self.cfg, self.cfg.deployment.endpoint_name)
        if hold is None:
            return None
        self.log.info("A person approved: cleared the bias hold %s (%s)", hold["uri"], hold.get("reason"))
        return hold["uri"]

    def _notify(self, registration: dict[str, Any], outcome: str, description: str) -> None:
        group, version = registration.get("model_package_group"), registration.get("version")
        subject = f"[{self.cfg.environment}] Model approval {outcome}: {group} version {version}"
        body = "\n".join(
            [
                f"Model package {registration['model_package_arn']} (version {version}): {description}.",
                "Approved: the approved-model asset is updated and deploy_model starts."
                if outcome == APPROVED
                else "Nothing is deployed.",
                f"Gate report: {registration.get('gate_uri')}",
            ]
        )
        publish(subject, body, cfg=self.cfg)
