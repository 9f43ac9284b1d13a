"""``infra/cloudformation/ml-lifecycle.yaml``: valid for cfn-lint, its role policies are the IAM documents,
and the resources meet MWAA's requirements (versioned, private, encrypted bucket; Airflow 3.3.1; the keys
``tools.deploy`` writes; connections from Secrets Manager)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tools import deploy, iam_to_cfn

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = iam_to_cfn.TEMPLATE


@pytest.fixture(scope="module")
def template() -> dict:
    return iam_to_cfn.load_template()


@pytest.fixture(scope="module")
def resources(template) -> dict:
    return template["Resources"]


def _cfn_lint(path: Path) -> subprocess.CompletedProcess:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    return subprocess.run(
        [str(cfn_lint), "--format", "parseable", "--", str(path)], capture_output=True, text=True, timeout=600
    )


def test_cfn_lint_passes_without_errors_or_warnings():
    proc = _cfn_lint(TEMPLATE)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cfn_lint_checks_the_policy_actions(tmp_path):
    """cfn-lint knows the IAM action catalogue: a misspelt action in the policies is reported (W3037)."""
    broken = tmp_path / "broken.yaml"
    broken.write_text(TEMPLATE.read_text().replace("sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpoints"))
    proc = _cfn_lint(broken)
    assert proc.returncode != 0
    assert "W3037" in proc.stdout


def test_role_policies_are_the_iam_documents(template):
    assert iam_to_cfn.updated(template) == template, "run python -m tools.iam_to_cfn after editing infra/iam/"


def test_a_hand_edit_of_a_role_policy_is_detected(template):
    edited = json.loads(json.dumps(template))
    statements = edited["Resources"]["MwaaExecutionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    statements[0]["Action"].append("s3:*")
    assert iam_to_cfn.updated(edited) != edited


def test_substitutions_name_parameters_or_resources(template):
    known = (
        set(template["Parameters"]) | set(template["Resources"]) | {"AWS::Partition", "AWS::Region", "AWS::AccountId"}
    )
    text = json.dumps(template)
    for name in re.findall(r"\$\{([A-Za-z:]+)(?:\.[A-Za-z]+)?\}", text):
        assert name in known, name


def test_bucket_is_versioned_private_encrypted_and_tls_only(resources):
    bucket = resources["DataBucket"]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    rule = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert rule == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": {"Fn::GetAtt": ["DataKey", "Arn"]}}
    policy = resources["DataBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in policy)
    assert resources["DataKey"]["Properties"]["EnableKeyRotation"] is True


def test_topic_is_encrypted_with_the_key(resources):
    assert resources["NotificationTopic"]["Properties"]["KmsMasterKeyId"] == {"Ref": "DataKey"}


def test_roles_trust_only_their_services(resources):
    sagemaker = resources["SageMakerExecutionRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in sagemaker] == [{"Service": "sagemaker.amazonaws.com"}]
    mwaa = resources["MwaaExecutionRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in mwaa] == [{"Service": ["airflow.amazonaws.com", "airflow-env.amazonaws.com"]}]


def test_mwaa_environment_runs_airflow_3_3_1_from_the_deployed_keys(resources):
    env = resources["Environment"]
    props = env["Properties"]
    assert env["Condition"] == "WithEnvironment"
    assert props["AirflowVersion"] == "3.3.1"
    assert props["DagS3Path"] == f"{deploy.DEFAULT_PREFIX}/dags"
    for file, (path_field, version_field) in deploy.VERSIONED.items():
        assert props[path_field] == f"{deploy.DEFAULT_PREFIX}/{file}"
        assert props[version_field]["Fn::If"][1]["Ref"], version_field
    assert props["ExecutionRoleArn"] == {"Fn::GetAtt": ["MwaaExecutionRole", "Arn"]}
    assert props["SourceBucketArn"] == {"Fn::GetAtt": ["DataBucket", "Arn"]}
    assert props["NetworkConfiguration"] == {
        "SubnetIds": {"Ref": "SubnetIds"},
        "SecurityGroupIds": {"Ref": "SecurityGroupIds"},
    }
    assert props["EnvironmentClass"] == {"Ref": "EnvironmentClass"}
    logging = props["LoggingConfiguration"]
    assert set(logging) == {"DagProcessingLogs", "SchedulerLogs", "TaskLogs", "WebserverLogs", "WorkerLogs"}
    assert all(item["Enabled"] for item in logging.values())


def test_connections_come_from_secrets_manager(resources):
    options = resources["Environment"]["Properties"]["AirflowConfigurationOptions"]
    assert options["secrets.backend"] == "airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend"
    kwargs = json.loads(options["secrets.backend_kwargs"])
    assert kwargs == {"connections_prefix": "airflow/connections", "variables_prefix": "airflow/variables"}
    assert options["ml_lifecycle.env"] == {"Ref": "MlLifecycleEnv"}


def test_secrets_backend_class_exists():
    from airflow.providers.amazon.aws.secrets.secrets_manager import SecretsManagerBackend

    assert SecretsManagerBackend.__name__ == "SecretsManagerBackend"


def test_outputs_give_what_the_config_file_needs(template):
    assert {"BucketName", "KmsKeyArn", "SnsTopicArn", "SageMakerRoleArn"} <= set(template["Outputs"])


def test_network_and_size_are_parameters(template):
    params = template["Parameters"]
    assert params["SubnetIds"]["Type"] == "List<AWS::EC2::Subnet::Id>"
    assert params["SecurityGroupIds"]["Type"] == "List<AWS::EC2::SecurityGroup::Id>"
    assert "mw1.small" in params["EnvironmentClass"]["AllowedValues"]
