"""Keep the CloudFormation template's role policies identical to the IAM documents in ``infra/iam/``.

``infra/iam/*.json`` are the single source of the two roles' permissions. Their placeholders
(``${BucketName}``, ``${KmsKeyArn}``, ...) become ``Fn::Sub`` expressions over the template's parameters and
resources, and the result replaces the ``PolicyDocument`` of each role in
``infra/cloudformation/ml-lifecycle.yaml``. The template is written in CloudFormation's long-form syntax
(``Fn::Sub``, ``Ref``), so it is plain YAML.

Usage: ``python -m tools.iam_to_cfn`` (rewrite the template) or ``python -m tools.iam_to_cfn --check``
(exit 1 when the template's policies differ from the documents).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "infra" / "cloudformation" / "ml-lifecycle.yaml"
POLICIES = {
    # role resource -> (policy name, document)
    "MwaaExecutionRole": ("ml-lifecycle-mwaa", ROOT / "infra" / "iam" / "mwaa-execution-role.json"),
    "SageMakerExecutionRole": ("ml-lifecycle-sagemaker", ROOT / "infra" / "iam" / "sagemaker-execution-role.json"),
}
# Placeholder in the documents -> what it is in the template (Fn::Sub syntax).
SUBSTITUTIONS = {
    "${BucketName}": "${DataBucket}",
    "${KmsKeyArn}": "${DataKey.Arn}",
    "${SnsTopicArn}": "${NotificationTopic}",
    "${SageMakerRoleArn}": "${SageMakerExecutionRole.Arn}",
}
HEADER = """\
# ml-lifecycle on AWS: the data bucket (versioned, KMS-encrypted, TLS only), its KMS key, the SNS topic,
# the EventBridge rule that sends SageMaker's approvals of the model package group to an SQS queue (with a
# dead-letter queue) that deploy_model's asset watcher reads, the SageMaker and MWAA execution roles and the
# Amazon MWAA environment (Airflow 3.3.1).
# The roles' policies are generated from infra/iam/*.json by `python -m tools.iam_to_cfn`: edit those files,
# not the PolicyDocument blocks below. Deployment steps: docs/how-to/deploy-to-mwaa.md.
"""


def render(document: Any) -> Any:
    """``document`` with every string that holds a placeholder turned into an ``Fn::Sub``."""
    if isinstance(document, dict):
        return {key: render(value) for key, value in document.items()}
    if isinstance(document, list):
        return [render(value) for value in document]
    if isinstance(document, str) and "${" in document:
        for placeholder, replacement in SUBSTITUTIONS.items():
            document = document.replace(placeholder, replacement)
        return {"Fn::Sub": document}
    return document


def expected_policies() -> dict[str, list[dict[str, Any]]]:
    return {
        role: [{"PolicyName": name, "PolicyDocument": render(json.loads(path.read_text(encoding="utf-8")))}]
        for role, (name, path) in POLICIES.items()
    }


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def updated(template: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(template)
    for role, policies in expected_policies().items():
        result["Resources"][role]["Properties"]["Policies"] = policies
    return result


def dump(template: dict[str, Any]) -> str:
    return HEADER + yaml.safe_dump(template, sort_keys=False, width=120, default_flow_style=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when the template is stale")
    args = parser.parse_args(argv)
    template = load_template()
    fresh = updated(template)
    if args.check:
        if fresh != template:
            print(f"{TEMPLATE}: role policies differ from infra/iam/*.json; run python -m tools.iam_to_cfn")
            return 1
        return 0
    TEMPLATE.write_text(dump(fresh), encoding="utf-8")
    print(f"wrote {TEMPLATE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
