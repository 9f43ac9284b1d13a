"""Every taggable resource of ``infra/cloudformation/ml-lifecycle.yaml`` carries the required tags.

Taggable is what CloudFormation's own resource schemas say (cfn-lint's copy: ``tagging.taggable``), so a
resource added to the template fails here until it is tagged. The tag values are the stack's parameters
(``Owner``, ``CostCentre``, ``Project``, and ``MlLifecycleEnv`` for the environment), the same four the
package's config requires (``ml_lifecycle.config.REQUIRED_TAGS``).
"""

from __future__ import annotations

import pytest

from ml_lifecycle.config import REQUIRED_TAGS
from tools import iam_to_cfn

#: tag key -> the parameter its value refers to
EXPECTED = {"owner": "Owner", "cost-centre": "CostCentre", "project": "Project", "environment": "MlLifecycleEnv"}


@pytest.fixture(scope="module")
def template() -> dict:
    return iam_to_cfn.load_template()


def _taggable(resource_type: str) -> bool:
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", resource_type).schema
    return bool(schema.get("tagging", {}).get("taggable")) and "Tags" in schema.get("properties", {})


def _tags(properties: dict) -> dict:
    tags = properties.get("Tags")
    if isinstance(tags, list):  # [{Key, Value}] (most resources)
        return {t["Key"]: t["Value"] for t in tags}
    return dict(tags or {})  # {key: value} (AWS::MWAA::Environment)


def test_the_expected_tags_are_the_required_ones():
    assert set(EXPECTED) == set(REQUIRED_TAGS)


def test_every_taggable_resource_carries_the_required_tags(template):
    problems = {}
    taggable = 0
    for name, resource in template["Resources"].items():
        if not _taggable(resource["Type"]):
            continue
        taggable += 1
        tags = _tags(resource.get("Properties", {}))
        wrong = {key: tags.get(key) for key, parameter in EXPECTED.items() if tags.get(key) != {"Ref": parameter}}
        if wrong:
            problems[f"{name} ({resource['Type']})"] = wrong
    assert taggable >= 7, "the template's bucket, key, topic, repository, roles and environment are taggable"
    assert problems == {}


def test_the_tag_parameters_are_declared_and_checked(template):
    for parameter in EXPECTED.values():
        declared = template["Parameters"][parameter]
        assert declared["Type"] == "String"
        assert "AllowedPattern" in declared, parameter
