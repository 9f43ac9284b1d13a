"""The IAM policies grant exactly the AWS actions the code can call, on the environment's own resources.

``tools.iam_scan`` finds the operations (our package and DAGs, plus the Amazon provider operators, triggers
and hooks they use); these tests fail when an action is missing from ``infra/iam/mwaa-execution-role.json``,
when the policy grants an action no code needs, or when a grant reaches beyond the environment.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tools import iam_scan

ROOT = Path(__file__).resolve().parents[2]
IAM = ROOT / "infra" / "iam"
MWAA_POLICY = IAM / "mwaa-execution-role.json"
SAGEMAKER_POLICY = IAM / "sagemaker-execution-role.json"
PLACEHOLDERS = {
    "AWS::Partition",
    "AWS::Region",
    "AWS::AccountId",
    "BucketName",
    "KmsKeyArn",
    "SnsTopicArn",
    "SageMakerRoleArn",
    "EnvironmentName",
    "NamePrefix",
    "ModelPackageGroup",
    "EndpointName",
}
# What MWAA itself needs on its execution role (AWS's MWAA execution-role documentation), and Airflow's
# Secrets Manager backend. Not derived from our code: pinned here so they cannot grow unnoticed.
PLATFORM = {
    "MwaaPublishMetrics": {"airflow:PublishMetrics"},
    "MwaaReadBundle": {"s3:GetObject*", "s3:GetBucket*", "s3:List*"},
    "MwaaLogs": {
        "logs:CreateLogStream",
        "logs:CreateLogGroup",
        "logs:PutLogEvents",
        "logs:GetLogEvents",
        "logs:GetLogRecord",
        "logs:GetLogGroupFields",
        "logs:GetQueryResults",
    },
    "MwaaDescribeLogGroups": {"logs:DescribeLogGroups"},
    "MwaaMetrics": {"cloudwatch:PutMetricData"},
    "MwaaCeleryQueue": {
        "sqs:ChangeMessageVisibility",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
        "sqs:ReceiveMessage",
        "sqs:SendMessage",
    },
    "MwaaKmsForQueueAndBucket": {"kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey*", "kms:Encrypt"},
    "MwaaSecretsBackend": {"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"},
}
# Actions that have no resource-level permissions (or whose resources carry generated ids): "*" is allowed.
WILDCARD_OK = {
    "logs:DescribeLogGroups",
    "cloudwatch:PutMetricData",
    "cloudwatch:GetMetricStatistics",
    "sagemaker:ListModelPackages",
    "sagemaker:ListMonitoringExecutions",
    "sagemaker:Search",
    "application-autoscaling:RegisterScalableTarget",
    "application-autoscaling:PutScalingPolicy",
    "application-autoscaling:DescribeScalableTargets",
    "application-autoscaling:DescribeScalingPolicies",
    "application-autoscaling:DeleteScalingPolicy",
    "application-autoscaling:DeregisterScalableTarget",
    "ecr:GetAuthorizationToken",
    "ec2:CreateNetworkInterface",
    "ec2:CreateNetworkInterfacePermission",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
}


def _statements(path: Path) -> list[dict]:
    return json.loads(path.read_text())["Statement"]


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _code_grants(path: Path = MWAA_POLICY) -> dict[str, set[str]]:
    """action -> Sids of the statements derived from code (everything except MWAA's own needs)."""
    grants: dict[str, set[str]] = {}
    for statement in _statements(path):
        if statement["Sid"] in PLATFORM:
            continue
        for action in _as_list(statement["Action"]):
            grants.setdefault(action, set()).add(statement["Sid"])
    return grants


@pytest.fixture(scope="module")
def scan() -> iam_scan.ScanResult:
    return iam_scan.scan()


@pytest.fixture(scope="module")
def required(scan) -> dict[str, set[str]]:
    return iam_scan.required_actions(scan)


# ------------------------------------------------------------------------------- code <-> policy


def test_every_call_is_attributed_to_a_service(scan):
    assert scan.unresolved == [], (
        "calls the scanner cannot attribute to one AWS service; add a reviewed entry to "
        "infra/iam/ambiguous-calls.json:\n" + "\n".join(scan.unresolved)
    )


def test_the_scan_finds_the_calls_we_know_of(required):
    """A floor, so a scanner that silently finds nothing cannot pass the tests below."""
    for action in (
        "sagemaker:CreateTrainingJob",
        "sagemaker:DescribeEndpoint",
        "sagemaker:CreateModelPackage",
        "s3:PutObject",
        "s3:ListBucket",
        "iam:PassRole",
        "cloudwatch:PutMetricAlarm",
    ):
        assert action in required, action


def test_policy_grants_every_action_the_code_needs(required):
    granted = _code_grants()
    missing = {action: sorted(where)[:3] for action, where in required.items() if action not in granted}
    assert not missing, "actions the code calls but infra/iam/mwaa-execution-role.json does not grant:\n" + "\n".join(
        f"  {action}  (e.g. {', '.join(where)})" for action, where in sorted(missing.items())
    )


def test_policy_grants_nothing_the_code_does_not_need(required):
    extra = {action: sids for action, sids in _code_grants().items() if action not in required}
    assert not extra, f"granted but never called (remove, or add the call): {extra}"


def test_platform_statements_are_the_documented_ones():
    found = {s["Sid"]: set(_as_list(s["Action"])) for s in _statements(MWAA_POLICY) if s["Sid"].startswith("Mwaa")}
    assert found == PLATFORM


# ----------------------------------------------------------------------------------- least privilege


@pytest.mark.parametrize("path", [pytest.param(MWAA_POLICY, id="mwaa"), pytest.param(SAGEMAKER_POLICY, id="sagemaker")])
def test_wildcard_resources_only_where_unavoidable(path):
    for statement in _statements(path):
        assert statement["Effect"] == "Allow"
        if "*" in _as_list(statement["Resource"]):
            broad = set(_as_list(statement["Action"])) - WILDCARD_OK
            assert not broad, f"{path.name} {statement['Sid']}: {sorted(broad)} on Resource '*'"
        for action in _as_list(statement["Action"]):
            assert action != "*" and not action.endswith(":*"), f"{statement['Sid']}: {action}"


@pytest.mark.parametrize("path", [pytest.param(MWAA_POLICY, id="mwaa"), pytest.param(SAGEMAKER_POLICY, id="sagemaker")])
def test_placeholders_are_the_template_parameters(path):
    used = set(re.findall(r"\$\{([^}]+)\}", path.read_text()))
    assert used <= PLACEHOLDERS, used - PLACEHOLDERS


@pytest.mark.parametrize("path", [pytest.param(MWAA_POLICY, id="mwaa"), pytest.param(SAGEMAKER_POLICY, id="sagemaker")])
def test_s3_grants_stay_in_the_environment_bucket(path):
    for statement in _statements(path):
        if any(a.startswith("s3:") for a in _as_list(statement["Action"])):
            for resource in _as_list(statement["Resource"]):
                assert resource.startswith("arn:${AWS::Partition}:s3:::${BucketName}"), resource


@pytest.mark.parametrize("env", sorted(p.stem for p in (ROOT / "include" / "config").glob("*.yaml")))
def test_the_workers_may_read_and_write_every_configured_prefix(env):
    """Each storage prefix of the config (datasets, jobs, reports, ..., the step cache's records) is granted."""
    from ml_lifecycle.config import load_config

    prefixes = load_config(env).storage.prefixes.model_dump()
    objects = next(s for s in _statements(MWAA_POLICY) if s["Sid"] == "DataObjects")
    granted = set(_as_list(objects["Resource"]))
    missing = [p for p in prefixes.values() if f"arn:${{AWS::Partition}}:s3:::${{BucketName}}/{p}/*" not in granted]
    assert not missing, f"{env}: no object grant for prefixes {missing}"


def test_pass_role_is_only_for_the_sagemaker_role_and_service():
    passing = [s for s in _statements(MWAA_POLICY) if "iam:PassRole" in _as_list(s["Action"])]
    assert len(passing) == 1
    statement = passing[0]
    assert _as_list(statement["Action"]) == ["iam:PassRole"]
    assert statement["Resource"] == "${SageMakerRoleArn}"
    assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}


def test_sagemaker_resources_are_scoped_to_the_environment():
    for statement in _statements(MWAA_POLICY):
        if statement["Sid"] == "MonitoringExecutionJobs":
            # SageMaker names the processing jobs of monitoring executions itself; only describing is granted
            assert _as_list(statement["Action"]) == ["sagemaker:DescribeProcessingJob"]
            continue
        for resource in _as_list(statement["Resource"]):
            if ":sagemaker:" in resource:
                assert re.search(r":(\w[\w-]*)/\$\{(NamePrefix|EndpointName|ModelPackageGroup)\}", resource), resource


def test_secrets_are_limited_to_the_airflow_prefixes():
    secrets = next(s for s in _statements(MWAA_POLICY) if s["Sid"] == "MwaaSecretsBackend")
    allowed = ("secret:airflow/connections/*", "secret:airflow/variables/*")
    assert all(r.endswith(allowed) for r in secrets["Resource"])


def test_sagemaker_role_covers_what_jobs_do():
    actions = {a for s in _statements(SAGEMAKER_POLICY) for a in _as_list(s["Action"])}
    for action in ("s3:GetObject", "s3:PutObject", "s3:ListBucket", "ecr:BatchGetImage", "logs:PutLogEvents"):
        assert action in actions, action
    assert "iam:PassRole" not in actions, "SageMaker jobs never pass roles"


# -------------------------------------------------------------------------------- the scanner itself


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param("c.describe_endpoint(EndpointName='x')", {"sagemaker:DescribeEndpoint"}, id="client-call"),
        pytest.param(
            "await asyncio.to_thread(client.describe_endpoint, EndpointName='x')",
            {"sagemaker:DescribeEndpoint"},
            id="method-reference",
        ),
        pytest.param("s3.get_paginator('list_objects_v2')", {"s3:ListBucket"}, id="paginator-name"),
        pytest.param("c.get_waiter('endpoint_in_service')", {"sagemaker:DescribeEndpoint"}, id="waiter-name"),
        pytest.param("s3.head_object(Bucket='b', Key='k')", {"s3:GetObject", "kms:Decrypt"}, id="s3-head-is-get"),
        pytest.param(
            "s3_client.upload_file('f', 'b', 'k')",
            {"s3:PutObject", "s3:AbortMultipartUpload", "kms:GenerateDataKey"},
            id="transfer",
        ),
        pytest.param(
            "c.create_processing_job(**request)",
            {"sagemaker:CreateProcessingJob", "iam:PassRole", "sagemaker:AddTags", "kms:CreateGrant"},
            id="implied-passrole-tags-kms",
        ),
        pytest.param(
            "cloudwatch.list_tags_for_resource(ResourceARN='a')", {"cloudwatch:ListTagsForResource"}, id="hint"
        ),
        pytest.param("import re\nre.search('a', 'b')", set(), id="module-function-is-not-a-call"),
        pytest.param("self.verify", set(), id="own-attribute-is-not-a-call"),
    ],
)
def test_scanner_maps_calls_to_actions(source, expected):
    result = iam_scan.scan_source(source, "example.py", allowlist={})
    assert result.unresolved == []
    assert set(iam_scan.required_actions(result)) == expected


def test_ambiguous_call_is_reported_until_reviewed():
    source = "client.list_tags_for_resource(ResourceArn='a')"
    assert iam_scan.scan_source(source, "x.py", allowlist={}).unresolved
    reviewed = iam_scan.scan_source(source, "x.py", allowlist={"x.py:list_tags_for_resource": "sns"})
    assert reviewed.unresolved == []
    assert set(iam_scan.required_actions(reviewed)) == {"sns:ListTagsForResource"}


def test_adding_a_call_without_its_permission_fails(required, tmp_path):
    """A new ``delete_model_package`` call in the package shows up as an action the policy lacks."""
    package = tmp_path / "plugins" / "ml_lifecycle"
    package.mkdir(parents=True)
    (tmp_path / "dags").mkdir()
    (package / "cleanup.py").write_text(
        "def purge(client, arn):\n    client.delete_model_package(ModelPackageName=arn)\n"
    )
    found = iam_scan.required_actions(iam_scan.scan_our_code(tmp_path, allowlist={}))
    assert "sagemaker:DeleteModelPackage" in found
    assert "sagemaker:DeleteModelPackage" not in _code_grants()
    assert found["sagemaker:DeleteModelPackage"] == {"plugins/ml_lifecycle/cleanup.py:2"}


def test_a_provider_hook_method_brings_its_calls():
    """Calling ``SageMakerHook.count_processing_jobs_by_name`` needs ``sagemaker:ListProcessingJobs``
    although our code never names that boto3 operation: the hook's source is followed."""
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

    result = iam_scan.scan_provider({"SageMakerHook": SageMakerHook}, {"count_processing_jobs_by_name"})
    assert ("sagemaker", "ListProcessingJobs") in result.operations()


def test_provider_operators_used_are_scanned(scan):
    wheres = {c.where for c in scan.calls}
    assert any(w.startswith("airflow.providers.amazon.aws.hooks.sagemaker.SageMakerHook.") for w in wheres)


@pytest.mark.parametrize(("trigger", "hook"), [pytest.param(k, v, id=k) for k, v in iam_scan.TRIGGER_HOOKS.items()])
def test_trigger_hook_table_matches_the_trigger_source(trigger, hook):
    import importlib
    import inspect

    module = importlib.import_module(hook[0].replace(".hooks.", ".triggers."))
    assert hook[1] in inspect.getsource(getattr(module, trigger)), f"{trigger} no longer uses {hook[1]}"


@pytest.mark.parametrize(("notifier", "hook"), [pytest.param(k, v, id=k) for k, v in iam_scan.NOTIFIER_HOOKS.items()])
def test_notifier_hook_table_matches_the_notifier_source(notifier, hook):
    import importlib
    import inspect

    module = importlib.import_module("airflow.providers.amazon.aws.notifications.sns")
    assert hook[1] in inspect.getsource(getattr(module, notifier)), f"{notifier} no longer uses {hook[1]}"


def test_the_sns_notifier_is_scanned_for_publish():
    where = {c.where for c in iam_scan.scan().calls if (c.service, c.operation) == ("sns", "Publish")}
    assert any("SnsHook.publish_to_target" in w for w in where), where


def test_allowlist_entries_still_match_the_code():
    entries = json.loads(iam_scan.ALLOWLIST.read_text())
    for key, entry in entries.items():
        if key.startswith("_"):
            continue
        path, name = key.split(":", 1)
        assert (ROOT / path).is_file(), f"{key}: {path} no longer exists"
        assert entry["reason"], key
        source = (ROOT / path).read_text()
        if "(" not in name:
            assert f".{name}" in source, f"{key}: {path} no longer calls {name}"
            assert entry["service"] in {*iam_scan.SERVICES, "not-aws"}
            continue
        function, argument = name.split("(", 1)
        assert function in source and argument.rstrip(")") in source, f"{key}: {path} no longer has {name}"
        if "services" in entry:
            assert set(entry["services"]) <= set(iam_scan.SERVICES), key
        elif entry["service"] != "not-aws":
            model = iam_scan._session().get_service_model(entry["service"])
            assert set(entry["operations"]) <= set(model.operation_names), key


@pytest.mark.parametrize(
    ("source", "reported"),
    [
        pytest.param(
            "import boto3\nboto3.client('dynamodb').get_item(TableName='t')", "'dynamodb' client", id="boto3-dynamodb"
        ),
        pytest.param("AwsBaseHook(client_type='ecr').conn", "'ecr' client", id="hook-ecr"),
        pytest.param("self._client('ssm').get_parameter(Name='p')", "'ssm' client", id="own-helper-ssm"),
        pytest.param("getattr(client, f'describe_{kind}_job')(Name=n)", "named at run time", id="dynamic-name"),
        pytest.param("AwsBaseHook(client_type=service).conn", "service named at run time", id="dynamic-service"),
        pytest.param("import boto3\nboto3.resource('s3').Bucket('b').objects.all()", "resource API", id="resource"),
        pytest.param("S3Hook().get_resource_type('s3')", "resource API", id="hook-resource"),
    ],
)
def test_what_the_scan_cannot_see_through_is_reported(source, reported):
    result = iam_scan.scan_source(source, "x.py", allowlist={})
    assert any(reported in item for item in result.unresolved), result.unresolved


def test_a_reviewed_dynamic_name_brings_the_operations_it_can_call():
    source = "getattr(client, self.describe_method)(**request)"
    entry = {"service": "sagemaker", "operations": ["DescribeTransformJob"]}
    result = iam_scan.scan_source(source, "x.py", allowlist={"x.py:getattr(client, self.describe_method)": entry})
    assert result.unresolved == []
    assert set(iam_scan.required_actions(result)) == {"sagemaker:DescribeTransformJob"}


def test_a_reviewed_variable_service_must_stay_within_the_scanned_services():
    source = "AwsBaseHook(client_type=service).conn"
    key = "x.py:AwsBaseHook(client_type=service)"
    assert iam_scan.scan_source(source, "x.py", allowlist={key: {"services": ["cloudwatch"]}}).unresolved == []
    outside = iam_scan.scan_source(source, "x.py", allowlist={key: {"services": ["cloudwatch", "dynamodb"]}})
    assert any("dynamodb" in item for item in outside.unresolved)


def test_a_provider_hook_of_an_unscanned_service_is_reported():
    from airflow.providers.amazon.aws.hooks.ecr import EcrHook
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    found = iam_scan.unscanned_provider_services({"EcrHook": EcrHook, "S3Hook": S3Hook})
    assert len(found) == 1 and found[0].startswith("EcrHook") and "'ecr'" in found[0]


MQ_IMPORT = "from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger\n"


def test_the_approval_queue_watcher_brings_its_sqs_calls(required):
    """deploy_model's asset watcher (MessageQueueTrigger, scheme sqs) receives and deletes the queue's messages."""
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage"} <= set(required)
    assert any("SqsSensorTrigger" in where for where in required["sqs:DeleteMessage"])


@pytest.mark.parametrize(
    ("call", "found", "problem"),
    [
        pytest.param("MessageQueueTrigger(scheme='sqs', sqs_queue=url)", "SqsSensorTrigger", None, id="sqs"),
        pytest.param("MessageQueueTrigger(scheme=scheme, sqs_queue=url)", None, "without a literal scheme",
                     id="variable-scheme"),
        pytest.param("MessageQueueTrigger(scheme='carrier-pigeon')", None, "served by 0 installed queue providers",
                     id="unknown-scheme"),
    ],
)  # fmt: skip
def test_a_message_queue_trigger_is_scanned_as_its_provider_trigger(tmp_path, call, found, problem):
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "watch.py").write_text(MQ_IMPORT + f"trigger = {call}\n")
    triggers, problems = iam_scan.message_queue_triggers(tmp_path)
    assert list(triggers) == ([found] if found else [])
    assert (problem is None and problems == []) or any(problem in p for p in problems), problems
