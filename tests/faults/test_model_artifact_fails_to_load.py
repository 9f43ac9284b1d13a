"""Fault: the new model's artefact does not load (a corrupt ``xgboost-model.json`` in ``model.tar.gz``).

Expected: the new fleet fails to start, SageMaker rolls the update back before any traffic moves; the
``deploy_guarded`` task fails with ``AirflowFailException`` saying ``ROLLED BACK`` with SageMaker's
FailureReason (the model server's load error); the evidence is kept in XCom and S3; a rollback
notification is sent; the previous model serves 100 %.
"""

from __future__ import annotations

import io
import tarfile
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from tests.faults.conftest import (
    ENDPOINT,
    deploy_context,
    deploy_operator,
    fail_task,
    model_archive,
    notifications,
    s3_json,
)
from tests.faults.deploy_checks import assert_previous_model_serves_everything, endpoint_configs_of

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def corrupt_copy(aws: SimpleNamespace, model_uri: str) -> str:
    """A copy of the trained ``model.tar.gz`` whose booster file is not a model; returns its URI."""
    bucket, key = model_uri.removeprefix("s3://").split("/", 1)
    body = aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as original:
        files = {m.name: original.extractfile(m).read() for m in original.getmembers() if m.isfile()}
    assert "xgboost-model.json" in files, sorted(files)
    files["xgboost-model.json"] = b'{"learner": "truncated'
    broken = f"faults/models/corrupt/{key.rsplit('/', 1)[-1]}"
    aws.s3.put_object(Bucket=bucket, Key=broken, Body=model_archive(files))
    return f"s3://{bucket}/{broken}"


def test_model_artifact_that_fails_to_load_rolls_back(
    aws: SimpleNamespace, packages: Any, trained: dict[str, Any], previous_model: dict[str, Any], cfg: Any
) -> None:
    from ml_lifecycle.builders.endpoint import model_name
    from ml_lifecycle.operators.deploy import ROLLBACK_XCOM_KEY

    arn = packages(model_uri=corrupt_copy(aws, trained["train"]["model_uri"]), note="corrupt artefact")
    version = aws.sm.describe_model_package(ModelPackageName=arn)["ModelPackageVersion"]
    ctx = deploy_context("faults__model_artifact_fails_to_load")

    error = fail_task(deploy_operator(arn), ctx, AirflowFailException)

    message = str(error)
    evidence = ctx["ti"].pushed[ROLLBACK_XCOM_KEY]
    assert "ROLLED BACK" in message and previous_model["endpoint_config_name"] in message
    reason = evidence["failure_reason"]
    assert reason and f"FailureReason: {reason}" in message
    package = aws.sm.describe_model_package(ModelPackageName=arn)
    assert f"model server for model {model_name(cfg, package)} exited" in reason and "before it was ready" in reason
    assert s3_json(aws.s3, evidence["evidence_uri"])["failure_reason"] == reason
    notes = notifications(aws, f"Deployment rolled back: {ENDPOINT}")
    assert any(evidence["target_endpoint_config"] in n["message"] for n in notes), notes
    assert endpoint_configs_of(aws, version) == [evidence["target_endpoint_config"]]
    assert_previous_model_serves_everything(aws, previous_model, rolled_back=arn)
