"""The quality gate: absolute thresholds AND no regression against the champion.

``QualityGateOperator`` reads the evaluation report (``evaluation.json``) of this run and checks:

- every metric of ``training.gate.thresholds`` is at least its threshold;
- every metric of ``training.gate.max_regression`` has not dropped by more than the allowed amount against
  the **champion** (the package serving the endpoint, see :mod:`ml_lifecycle.operators.champion`); before any
  deployment, against the newest Approved package that never rolled back. Its metrics are read from the package's
  ``CustomerMetadataProperties`` ``metric:<name>``, else from its ``ModelMetrics`` report in S3. The first
  model of a group has no baseline and is judged by the thresholds only. The baseline is never this run's own
  package (a re-run of the gate after this run registered).

It writes ``gate.json`` to this run's evaluation report folder (``report_uri``; by default next to the
evaluation report, which belongs to another run when the step cache reused the evaluation) with the
decision, every check (observed, threshold, baseline) and the baseline package ARN, and returns (XCom)
``{"decision", "passed", "gate_uri", "evaluation_uri", "metrics", "baseline_model_package_arn",
"baseline_source", "baseline_metrics", "failed_checks", "reason"}`` (``baseline_source``: ``champion``,
``latest_approved`` or ``None``).

A rejection is a model-quality outcome, not a system failure: the gate task **succeeds** with decision
``rejected`` (its log lists the failed checks), sends the "model rejected" notification, and the
``register`` task downstream then skips itself with the reason, so the run ends without a registered model
and without a red task.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowFailException

from ml_lifecycle.links import S3ReportLink
from ml_lifecycle.operators.base import SageMakerOperatorBase

if TYPE_CHECKING:
    from airflow.sdk import Context

    from ml_lifecycle.config import Config

PASSED = "passed"
REJECTED = "rejected"
GATE_REPORT = "gate.json"
METRIC_PREFIX = "metric:"


@dataclass(frozen=True)
class Check:
    """One gate check and its evidence."""

    kind: str  # "threshold" or "regression"
    metric: str
    observed: float | None
    threshold: float
    passed: bool
    baseline: float | None = None
    max_regression: float | None = None

    def describe(self) -> str:
        observed = "missing" if self.observed is None else f"{self.observed:.4f}"
        if self.kind == "threshold":
            return f"{self.metric} {observed} {'>=' if self.passed else '<'} threshold {self.threshold:.4f}"
        return (
            f"{self.metric} {observed} {'>=' if self.passed else '<'} {self.threshold:.4f} "
            f"(baseline {self.baseline:.4f} - allowed regression {self.max_regression:.4f})"
        )


def _number(value: Any) -> float | None:
    if isinstance(value, dict):
        value = value.get("value")
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


#: ``summary`` entries that are counts or settings, not quality metrics
_NOT_METRICS = frozenset({"threshold", "rows", "positives", "predicted_positives"})


def report_metrics(report: dict[str, Any], wanted: Sequence[str] = ()) -> dict[str, float]:
    """Quality metrics of an evaluation report: its flat ``summary`` block, plus any ``wanted`` metric found
    only as ``binary_classification_metrics.<name>.value`` (SageMaker's model-quality layout)."""
    metrics: dict[str, float] = {}
    for name, value in (report.get("summary") or {}).items():
        if name not in _NOT_METRICS and (number := _number(value)) is not None:
            metrics[name] = number
    detailed = report.get("binary_classification_metrics") or {}
    for name in wanted:
        if name not in metrics and (number := _number(detailed.get(name))) is not None:
            metrics[name] = number
    if not metrics:  # a report without a summary block: take every scalar metric
        for name, value in detailed.items():
            if (number := _number(value)) is not None:
                metrics[name] = number
    return metrics


def package_metrics(customer_metadata: dict[str, str] | None) -> dict[str, float]:
    """``metric:<name>`` entries of a model package's ``CustomerMetadataProperties``."""
    metrics = {}
    for key, value in (customer_metadata or {}).items():
        if key.startswith(METRIC_PREFIX) and (number := _number(value)) is not None:
            metrics[key.removeprefix(METRIC_PREFIX)] = number
    return metrics


def evaluate_gate(
    metrics: dict[str, float],
    thresholds: dict[str, float],
    max_regression: dict[str, float],
    baseline: dict[str, float] | None,
) -> list[Check]:
    """All checks of the gate. A metric missing from the report fails its check; a regression check whose
    metric the baseline lacks is skipped (it cannot be compared) and logged by the caller."""
    checks = [
        Check("threshold", name, metrics.get(name), float(minimum), metrics.get(name, -math.inf) >= minimum)
        for name, minimum in sorted(thresholds.items())
    ]
    if baseline:
        for name, allowed in sorted(max_regression.items()):
            if name not in baseline:
                continue
            floor = baseline[name] - float(allowed)
            observed = metrics.get(name)
            checks.append(
                Check(
                    "regression",
                    name,
                    observed,
                    floor,
                    observed is not None and observed >= floor - 1e-12,
                    baseline=baseline[name],
                    max_regression=float(allowed),
                )
            )
    return checks


class QualityGateOperator(SageMakerOperatorBase):
    """Decide whether this run's model may be registered; write the evidence to ``gate.json``.

    :param evaluation_uri: the ``evaluation.json`` of this run (templated)
    :param report_uri: the S3 folder this run's ``gate.json`` is written to (templated); default: the
        evaluation report's folder
    :param notify_on_reject: send the "model rejected" notification when the gate says no
    """

    template_fields: Sequence[str] = aws_template_fields("evaluation_uri", "report_uri")
    operator_extra_links = (S3ReportLink(),)
    ui_color = "#fff3c4"

    def __init__(
        self, *, evaluation_uri: str, report_uri: str | None = None, notify_on_reject: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.evaluation_uri = evaluation_uri
        self.report_uri = report_uri
        self.notify_on_reject = notify_on_reject
        self._cfg: Config | None = None

    # ------------------------------------------------------------------------------------------- baseline

    def find_baseline(self, cfg: Config, run_id: str) -> tuple[str, int | None, dict[str, float], str] | None:
        """The champion (else the newest Approved package that never rolled back), never this run's own:
        ``(arn, version, metrics, source)``."""
        from ml_lifecycle.operators.champion import current_model

        client = self.hook.conn
        group = cfg.sagemaker.model_package_group
        excluded: set[str] = set()
        while (current := current_model(client, group, exclude=excluded)) is not None:
            package = client.describe_model_package(ModelPackageName=current.arn)
            props = package.get("CustomerMetadataProperties") or {}
            if props.get("dag_run_id") == run_id:
                excluded.add(current.arn)  # a re-run of this gate after this run registered: never itself
                continue
            metrics = package_metrics(props)
            if not metrics:
                metrics = self._metrics_from_report(package)
            return current.arn, package.get("ModelPackageVersion"), metrics, current.source
        self.log.info("No champion and no Approved version in %s: no baseline", group)
        return None

    def _metrics_from_report(self, package: dict[str, Any]) -> dict[str, float]:
        from ml_lifecycle.data.s3 import get_json

        uri = (package.get("ModelMetrics") or {}).get("ModelQuality", {}).get("Statistics", {}).get("S3Uri")
        if not uri:
            self.log.warning(
                "Baseline %s has neither metric metadata nor a ModelMetrics report", package.get("ModelPackageArn")
            )
            return {}
        try:
            gate_cfg = self._cfg.training.gate if self._cfg else None
            wanted = [*gate_cfg.thresholds, *gate_cfg.max_regression] if gate_cfg else []
            return report_metrics(get_json(self.hook.s3_hook.get_conn(), uri), wanted=wanted)
        except Exception as exc:
            self.log.warning("Cannot read the baseline's metrics report %s: %s", uri, exc)
            return {}

    # -------------------------------------------------------------------------------------------- execute

    def execute(self, context: Context) -> dict[str, Any]:
        from ml_lifecycle.config import load_config
        from ml_lifecycle.data.s3 import get_json, put_json, split_s3_uri
        from ml_lifecycle.notifications import notify_gate_rejected

        cfg = self._cfg = load_config()
        gate_cfg = cfg.training.gate
        s3 = self.hook.s3_hook.get_conn()
        try:
            report = get_json(s3, self.evaluation_uri)
        except Exception as exc:
            raise AirflowFailException(f"Cannot read the evaluation report {self.evaluation_uri}: {exc}") from exc
        metrics = report_metrics(report, wanted=[*gate_cfg.thresholds, *gate_cfg.max_regression])
        if not metrics:
            raise AirflowFailException(f"{self.evaluation_uri} holds no metrics the gate can read")

        run_id = context["run_id"]
        baseline = self.find_baseline(cfg, run_id)
        baseline_arn, baseline_version, baseline_metrics, baseline_source = baseline or (None, None, {}, None)
        checks = evaluate_gate(metrics, gate_cfg.thresholds, gate_cfg.max_regression, baseline_metrics or None)
        for name in gate_cfg.max_regression:
            if baseline and name not in baseline_metrics:
                self.log.warning("Baseline %s has no %r metric; regression check skipped", baseline_arn, name)
        failed = [c for c in checks if not c.passed]
        decision = PASSED if not failed else REJECTED
        folder = (self.report_uri or "").strip() or self.evaluation_uri.rsplit("/", 1)[0]
        gate_uri = folder.rstrip("/") + "/" + GATE_REPORT
        reason = "all checks passed" if not failed else "; ".join(c.describe() for c in failed)
        document = {
            "decision": decision,
            "reason": reason,
            "dag_id": context["dag"].dag_id,
            "run_id": run_id,
            "evaluation_uri": self.evaluation_uri,
            "metrics": metrics,
            "baseline": None
            if baseline is None
            else {
                "model_package_arn": baseline_arn,
                "version": baseline_version,
                "source": baseline_source,
                "metrics": baseline_metrics,
            },
            "checks": [asdict(c) | {"description": c.describe()} for c in checks],
        }
        put_json(s3, gate_uri, document, **cfg.storage.encryption())

        self.log.info(
            "Quality gate: %s (baseline: %s)",
            decision.upper(),
            f"{baseline_arn} ({baseline_source})" if baseline_arn else "none, thresholds only",
        )
        for check in checks:
            self.log.info("  [%s] %s check: %s", "PASS" if check.passed else "FAIL", check.kind, check.describe())
        bucket, key = split_s3_uri(gate_uri)
        self.persist_link(S3ReportLink, context, bucket=bucket, prefix=key.rsplit("/", 1)[0] + "/")
        result = {
            "decision": decision,
            "passed": not failed,
            "gate_uri": gate_uri,
            "evaluation_uri": self.evaluation_uri,
            "metrics": metrics,
            "baseline_model_package_arn": baseline_arn,
            "baseline_source": baseline_source,
            "baseline_metrics": baseline_metrics,
            "failed_checks": [c.describe() for c in failed],
            "reason": reason,
        }
        if failed:
            self.log.warning(
                "The model is NOT registered: %s. Evidence: %s. This is a quality outcome, not a task failure.",
                reason,
                gate_uri,
            )
            if self.notify_on_reject:
                notify_gate_rejected(context, result, cfg=cfg)
        return result
