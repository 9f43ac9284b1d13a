"""Create on the devstack what the stack creates on AWS for approvals made outside Airflow.

The CloudFormation template (``infra/cloudformation/ml-lifecycle.yaml``) holds the EventBridge rule that sends
SageMaker's approvals of the model package group to the approval queue, the queue with its dead-letter queue,
and the queue policy. This module reads those four resources from the template and creates them on the
devstack's EventBridge and SQS (moto), with the template's own properties, resolved with the environment's
config: ``EnvironmentName`` is the approval queue's name (``approval_events.queue_url``) without its
``-approvals`` suffix, ``ModelPackageGroup`` is ``sagemaker.model_package_group``, the tag parameters are the
config's ``tags``. So the devstack routes exactly the events the stack routes on AWS.

Creating is idempotent (queues, rule and targets are created or updated in place). moto keeps neither
queues nor rules across a restart of the devstack, so the local runtimes call :func:`provision` each time they
start (``make ui``, ``make mwaa-local`` and the test fixtures).

Differences to AWS, all from moto: the rule's ``RetryPolicy`` and ``DeadLetterConfig`` are stored but never
used (moto delivers at once or not at all), the queue policy is stored but not enforced, and the event moto
puts on the queue has no ``account`` field.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tools import iam_to_cfn

if TYPE_CHECKING:
    from ml_lifecycle.config import Config

QUEUE_SUFFIX = "-approvals"
#: the template's resources, in the order they are created
DEAD_LETTER_QUEUE, QUEUE, RULE, QUEUE_POLICY = (
    "ApprovalDeadLetterQueue",
    "ApprovalQueue",
    "ApprovalRule",
    "ApprovalQueuePolicy",
)
_TAG_PARAMETERS = {"Owner": "owner", "CostCentre": "cost-centre", "Project": "project", "MlLifecycleEnv": "environment"}


class ProvisionError(ValueError):
    """The config or the template does not allow creating the approval events resources."""


@dataclass(frozen=True)
class Provisioned:
    """What :func:`provision` created or updated on the devstack."""

    queue_url: str
    queue_arn: str
    dead_letter_queue_url: str
    rule_name: str
    rule_arn: str
    event_pattern: dict[str, Any]


class _Resolver:
    """Resolves the template's ``Ref``, ``Fn::Sub`` and ``Fn::GetAtt`` with the parameters and created resources."""

    def __init__(self, parameters: dict[str, str], region: str, account: str) -> None:
        self.values = dict(parameters) | {"AWS::Region": region, "AWS::AccountId": account, "AWS::Partition": "aws"}
        self.refs: dict[str, str] = {}
        self.arns: dict[str, str] = {}

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self(v) for v in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Ref"}:
            name = value["Ref"]
            if name in self.refs:
                return self.refs[name]
            if name not in self.values:
                raise ProvisionError(f"the template refers to {name}, which the devstack cannot resolve")
            return self.values[name]
        if set(value) == {"Fn::Sub"}:
            return re.sub(r"\$\{([A-Za-z:]+)\}", lambda m: str(self({"Ref": m[1]})), value["Fn::Sub"])
        if set(value) == {"Fn::GetAtt"}:
            resource, attribute = value["Fn::GetAtt"]
            if attribute != "Arn" or resource not in self.arns:
                raise ProvisionError(f"the template reads {resource}.{attribute}, which is not created before it")
            return self.arns[resource]
        return {k: self(v) for k, v in value.items()}


def environment_name(cfg: Config) -> str:
    """The stack's ``EnvironmentName`` the config's approval queue belongs to.

    :raises ProvisionError: the config has no approval queue, or its name is not ``<EnvironmentName>-approvals``
    """
    if cfg.approval_events is None:
        raise ProvisionError(f"{cfg.source_file}: no approval_events.queue_url, nothing to create")
    name = cfg.approval_events.queue_name
    if not name.endswith(QUEUE_SUFFIX) or name == QUEUE_SUFFIX:
        raise ProvisionError(
            f"{cfg.source_file}: approval_events.queue_url names the queue {name!r}; the stack names it "
            f"<EnvironmentName>{QUEUE_SUFFIX}"
        )
    return name.removesuffix(QUEUE_SUFFIX)


def _queue_attributes(properties: dict[str, Any]) -> dict[str, str]:
    attributes = {}
    for key, value in properties.items():
        if key in ("QueueName", "Tags"):
            continue
        if isinstance(value, dict):
            attributes[key] = json.dumps(value)
        elif isinstance(value, bool):
            attributes[key] = str(value).lower()
        else:
            attributes[key] = str(value)
    return attributes


def provision(stack_info: Any, cfg: Config, template: dict[str, Any] | None = None) -> Provisioned | None:
    """Create (or update) the approval queue, its dead-letter queue, the rule and the queue policy on the devstack.

    :param stack_info: the running devstack (``devstack.stack.StackInfo``)
    :param cfg: the environment's config; nothing is created when it has no ``approval_events``
    :param template: the CloudFormation template (default: the repository's)
    :return: what was created, or ``None`` for an environment without an approval queue
    :raises ProvisionError: the queue's name does not follow the stack's naming, or the template lacks a resource
    """
    if cfg.approval_events is None:
        return None
    template = template or iam_to_cfn.load_template()
    resources = template["Resources"]
    missing = [r for r in (DEAD_LETTER_QUEUE, QUEUE, RULE, QUEUE_POLICY) if r not in resources]
    if missing:
        raise ProvisionError(f"{iam_to_cfn.TEMPLATE.name} has no {', '.join(missing)}")
    parameters = {
        "EnvironmentName": environment_name(cfg),
        "ModelPackageGroup": cfg.sagemaker.model_package_group,
        **{parameter: cfg.tags[key] for parameter, key in _TAG_PARAMETERS.items()},
    }
    resolve = _Resolver(parameters, cfg.aws.region, cfg.aws.account_id)
    sqs, events = stack_info.client("sqs"), stack_info.client("events")

    urls = {}
    for name in (DEAD_LETTER_QUEUE, QUEUE):
        properties = resolve(resources[name]["Properties"])
        url = sqs.create_queue(
            QueueName=properties["QueueName"],
            Attributes=_queue_attributes(properties),
            tags={t["Key"]: t["Value"] for t in properties.get("Tags", [])},
        )["QueueUrl"]
        resolve.refs[name] = urls[name] = url
        resolve.arns[name] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
    if resolve.arns[QUEUE].rsplit(":", 1)[1] != cfg.approval_events.queue_name:
        raise ProvisionError(f"the template names the approval queue {resolve.arns[QUEUE]}, not the config's")

    rule = resolve(resources[RULE]["Properties"])
    # CloudFormation names the rule itself; the devstack names it after the queue
    rule_name = cfg.approval_events.queue_name
    pattern = rule["EventPattern"]
    rule_arn = events.put_rule(
        Name=rule_name,
        EventPattern=json.dumps(pattern),
        State=rule.get("State", "ENABLED"),
        Description=rule.get("Description", ""),
        Tags=rule.get("Tags", []),
    )["RuleArn"]
    resolve.arns[RULE] = rule_arn
    failed = events.put_targets(Rule=rule_name, Targets=rule["Targets"]).get("FailedEntries") or []
    if failed:
        raise ProvisionError(f"EventBridge refused the rule's targets: {failed}")

    policy = resolve(resources[QUEUE_POLICY]["Properties"])
    for url in policy["Queues"]:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy["PolicyDocument"])})
    return Provisioned(urls[QUEUE], resolve.arns[QUEUE], urls[DEAD_LETTER_QUEUE], rule_name, rule_arn, pattern)
