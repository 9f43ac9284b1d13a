"""Per-environment configuration: every shipped file loads, and a bad file names the file and the field."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
import yaml

from ml_lifecycle import config as cfg

ROOT = Path(__file__).resolve().parents[2]
LOCAL = (ROOT / "include" / "config" / "local.yaml").read_text()


def _write(tmp_path: Path, data: dict | str, env: str = "broken") -> Path:
    path = tmp_path / f"{env}.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


@pytest.fixture
def config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(cfg.CONFIG_DIR_VAR, str(tmp_path))
    cfg._load_cached.cache_clear()
    yield tmp_path
    cfg._load_cached.cache_clear()


@pytest.mark.parametrize("env", sorted(p.stem for p in (ROOT / "include" / "config").glob("*.yaml")))
def test_shipped_environments_load(env):
    config = cfg.load_config(env)
    assert config.environment == env
    assert config.storage.bucket
    assert config.sagemaker.role_arn.startswith("arn:aws:iam::")


def test_environment_variable_selects_the_file(monkeypatch):
    monkeypatch.setenv(cfg.ENV_VAR, "prod")
    assert cfg.load_config().environment == "prod"
    monkeypatch.delenv(cfg.ENV_VAR)
    assert cfg.load_config().environment == "local"


def test_production_example_is_locked_down():
    prod = cfg.load_config("prod")
    assert prod.training.approval == "manual"
    assert prod.training.manual_approval.approvers, "production names who may approve"
    assert prod.sagemaker.security.vpc is not None
    assert prod.sagemaker.security.enable_network_isolation
    assert prod.sagemaker.security.volume_kms_key_id and prod.storage.kms_key_id


def _mutated(path: str, value=None, *, delete: bool = False) -> dict:
    data = yaml.safe_load(LOCAL)
    keys = path.split(".")
    node = data
    for key in keys[:-1]:
        node = node[key]
    if delete:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return data


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        pytest.param(
            _mutated("storage.bucket", delete=True),
            "storage.bucket",
            "required field is missing",
            id="missing-field",
        ),
        pytest.param(
            _mutated("sagemaker.training.instance_count", "two"),
            "sagemaker.training.instance_count",
            "valid integer",
            id="wrong-type",
        ),
        pytest.param(_mutated("deployment.canary_pct", 10), "deployment.canary_pct", "unknown key", id="unknown-key"),
        pytest.param(
            _mutated("snowflake.schema", delete=True),
            "snowflake.schema",
            "required field is missing",
            id="aliased-field-missing",
        ),
        pytest.param(
            _mutated("training.gate.thresholds.auc", 1.5),
            "training.gate.thresholds.auc",
            "less than or equal to 1",
            id="out-of-bounds",
        ),
        pytest.param(_mutated("sagemaker.role_arn", "my-role"), "sagemaker.role_arn", "pattern", id="malformed-arn"),
        pytest.param(
            _mutated("sagemaker.tuning.ranges.eta", {"type": "continuous", "min": 0.5, "max": 0.1}),
            "sagemaker.tuning",
            "min must be below max",
            id="inverted-range",
        ),
        pytest.param(
            _mutated("snowflake.extraction", {"mode": "unload"}),
            "snowflake.extraction",
            "needs extraction.stage",
            id="unload-without-stage",
        ),
        pytest.param(
            _mutated("training.manual_approval", {"timeout_seconds": 5}),
            "training.manual_approval.timeout_seconds",
            "greater than or equal to 10",
            id="approval-timeout-too-short",
        ),
        pytest.param(
            _mutated("training.manual_approval", {"timeout_seconds": 40 * 86400}),
            "training.manual_approval.timeout_seconds",
            "less than or equal to 2592000",
            id="approval-timeout-too-long",
        ),
        pytest.param(
            _mutated(
                "training.manual_approval", {"approvers": [{"id": "ann", "name": "Ann"}, {"id": "ann", "name": "B"}]}
            ),
            "training.manual_approval.approvers",
            "given more than once: ann",
            id="approver-twice",
        ),
        pytest.param(
            _mutated("training.manual_approval", {"approvers": [{"id": "", "name": "Ann"}]}),
            "training.manual_approval.approvers[0].id",
            "at least 1 character",
            id="approver-without-id",
        ),
        pytest.param(
            _mutated("training.manual_approval", {"approvers": ["ann"]}),
            "training.manual_approval.approvers[0]",
            "valid dictionary",
            id="approver-not-a-mapping",
        ),
        pytest.param(
            _mutated("approval_events.queue_url", "ml-lifecycle-local-approvals"),
            "approval_events.queue_url",
            "an SQS queue URL https://sqs.<region>.amazonaws.com/",
            id="approval-queue-not-a-url",
        ),
        pytest.param(
            _mutated("approval_events.queue_url", "https://sqs.eu-west-1.amazonaws.com/123456789012/approvals"),
            "approval_events.queue_url",
            "is in eu-west-1 / account 123456789012, not the environment's us-east-1 / 123456789012",
            id="approval-queue-in-another-region",
        ),
        pytest.param(
            _mutated("approval_events.poll_interval_seconds", -1),
            "approval_events.poll_interval_seconds",
            "greater than or equal to 0",
            id="approval-queue-negative-poll",
        ),
        pytest.param(
            _mutated("monitoring.bias", {"facet": {"name": "Customer Segment"}}),
            "monitoring.bias.facet.name",
            "should match pattern",
            id="bias-facet-not-a-column-name",
        ),
        pytest.param(
            _mutated("monitoring.bias", {"facet": {"values_or_threshold": []}}),
            "monitoring.bias.facet.values_or_threshold",
            "at least 1 item",
            id="bias-facet-empty-sensitive-group",
        ),
        pytest.param(
            _mutated("snowflake.labels_table", "FRAUD LABELS"),
            "snowflake.labels_table",
            "should match pattern",
            id="labels-table-not-an-identifier",
        ),
    ],
)
def test_bad_file_names_file_and_field(config_dir, data, field, words):
    path = _write(config_dir, data)
    with pytest.raises(cfg.ConfigError) as info:
        cfg.load_config("broken")
    message = str(info.value)
    assert str(path) in message
    assert field in message
    assert words in message


def test_bias_facet_and_labels_table_default_to_the_contract_attribute_and_the_seeded_table(config_dir):
    data = _mutated("monitoring.bias", {"facet": {"values_or_threshold": ["student"]}})
    _write(config_dir, data, env="facet")
    loaded = cfg.load_config("facet")
    assert loaded.monitoring.bias.facet.name == "customer_segment"
    assert loaded.monitoring.bias.facet.values_or_threshold == ["student"]
    assert loaded.snowflake.labels_fqn == "FRAUD_DB.RAW.FRAUD_LABELS"


def test_every_problem_is_listed_at_once(config_dir):
    data = _mutated("storage.bucket", delete=True)
    data["aws"]["region"] = 5
    _write(config_dir, data)
    with pytest.raises(cfg.ConfigError, match="2 invalid fields") as info:
        cfg.load_config("broken")
    assert "storage.bucket" in str(info.value) and "aws.region" in str(info.value)


def _with_word(path: str, word: str) -> str:
    """The local file with ``path`` set to the bare YAML word ``word`` (as a person would type it)."""
    return yaml.safe_dump(_mutated(path, "__word__"), sort_keys=False).replace("__word__", word)


@pytest.mark.parametrize(
    ("field", "word"),
    [
        pytest.param("sagemaker.tuning.max_jobs", "yes", id="int-yes"),
        pytest.param("sagemaker.training.instance_count", "true", id="int-true"),
        pytest.param("training.max_active_runs", "on", id="int-on"),
        pytest.param("deployment.wait_interval_seconds", "false", id="int-false"),
        pytest.param("sagemaker.tuning.ranges.max_depth.min", "no", id="tuning-range-int"),
        pytest.param("training.gate.thresholds.auc", "true", id="fraction-true"),
        pytest.param("deployment.canary_percent", "yes", id="percent-yes"),
        pytest.param("deployment.max_latency_p99_ms", "true", id="float-true"),
    ],
)
def test_a_boolean_in_a_number_field_is_rejected(config_dir, field, word):
    """pydantic's lax mode would read ``true``/``yes`` as 1 (``false``/``no`` as 0); the loader refuses them."""
    path = config_dir / "broken.yaml"
    path.write_text(_with_word(field, word))
    with pytest.raises(cfg.ConfigError) as info:
        cfg.load_config("broken")
    message = str(info.value)
    assert message.startswith(f"{path}: 1 invalid field:")
    assert f"  - {field}: expected a number, not a boolean" in message


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        pytest.param("sagemaker.tuning.max_jobs", "4", 4, id="int"),
        pytest.param("deployment.max_latency_p99_ms", "750", 750.0, id="int-in-a-float-field"),
        pytest.param("training.gate.thresholds.auc", "0.8", 0.8, id="fraction"),
        pytest.param("sagemaker.hyperparameters.scale_pos_weight", "auto", "auto", id="hyperparameter-may-be-a-word"),
        pytest.param("training.catchup", "yes", True, id="boolean-field-takes-yes"),
    ],
)
def test_numbers_and_booleans_where_they_belong_still_load(config_dir, field, value, expected):
    (config_dir / "edited.yaml").write_text(_with_word(field, value))
    node = cfg.load_config("edited")
    for key in field.split("."):
        node = node[key] if isinstance(node, dict) else getattr(node, key)
    assert node == expected and type(node) is type(expected)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        pytest.param("aws: [unclosed", "not valid YAML", id="bad-yaml"),
        pytest.param("- a\n- b\n", "expected a mapping", id="not-a-mapping"),
        pytest.param("", "expected a mapping", id="empty"),
    ],
)
def test_unparseable_file(config_dir, text, words):
    path = _write(config_dir, text)
    with pytest.raises(cfg.ConfigError, match=words) as info:
        cfg.load_config("broken")
    assert str(path) in str(info.value)


def test_unknown_environment_lists_the_available_ones(config_dir):
    _write(config_dir, LOCAL, env="local")
    with pytest.raises(cfg.ConfigError, match=r"no config file for environment 'staging' \(available: local"):
        cfg.load_config("staging")


def test_environment_name_is_checked(monkeypatch):
    monkeypatch.setenv(cfg.ENV_VAR, "../../etc/passwd")
    with pytest.raises(cfg.ConfigError, match="not a valid environment name"):
        cfg.load_config()


def test_an_edited_file_is_read_again(config_dir):
    path = _write(config_dir, LOCAL, env="local")
    assert cfg.load_config("local").training.window_days == 60
    path.write_text(LOCAL.replace("window_days: 60", "window_days: 30"))
    import os

    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert cfg.load_config("local").training.window_days == 30


def test_loading_reads_only_the_file_and_opens_no_socket(config_dir, monkeypatch):
    path = _write(config_dir, LOCAL, env="local")
    opened: list[str] = []
    recording = True

    def audit(event, args):
        if recording and event == "open":
            opened.append(str(args[0]))

    sys.addaudithook(audit)

    def no_network(*args, **kwargs):
        raise AssertionError("config loading opened a socket")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    try:
        cfg.load_config("local")
    finally:
        recording = False
    assert [p for p in opened if not p.endswith((".pyc", ".py"))] == [str(path)]


def test_storage_uri_helper():
    config = cfg.load_config("local")
    assert config.storage.uri("datasets", "train_model", "/20260101-20260301/") == (
        "s3://ml-lifecycle-local/datasets/train_model/20260101-20260301"
    )


def test_extraction_mode_switch_runs_the_local_config_in_unload_mode(monkeypatch):
    monkeypatch.setenv(cfg.EXTRACTION_MODE_VAR, "unload")
    config = cfg.load_config("local")
    assert config.snowflake.extraction.mode == "unload"
    assert config.snowflake.extraction.stage == "FRAUD_DB.RAW.ML_LIFECYCLE_STAGE"
    monkeypatch.delenv(cfg.EXTRACTION_MODE_VAR)
    assert cfg.load_config("local").snowflake.extraction.mode == "stream", "the cached file is left as it was"


def test_extraction_mode_switch_is_validated(config_dir, monkeypatch):
    data = yaml.safe_load((cfg.include_dir() / "config" / "local.yaml").read_text())
    del data["snowflake"]["extraction"]["stage"]
    _write(config_dir, data)
    monkeypatch.setenv(cfg.EXTRACTION_MODE_VAR, "unload")
    with pytest.raises(
        cfg.ConfigError, match=r"ML_LIFECYCLE_EXTRACTION_MODE='unload' does not apply.*needs extraction\.stage"
    ):
        cfg.load_config("broken")
    monkeypatch.setenv(cfg.EXTRACTION_MODE_VAR, "fast")
    with pytest.raises(cfg.ConfigError, match="'fast'"):
        cfg.load_config("broken")


def test_devstack_provisions_the_stage_and_integration_the_local_config_names():
    from devstack import stack

    local = cfg.load_config("local")
    assert local.snowflake.extraction.stage == f"{stack.DATABASE}.{stack.SCHEMA}.{stack.EXTERNAL_STAGE}"
    assert local.snowflake.extraction.storage_integration == stack.STORAGE_INTEGRATION
    assert local.storage.bucket == stack.LOCAL_BUCKET


@pytest.mark.parametrize(
    ("data", "words"),
    [
        pytest.param(_mutated("tags", delete=True), "required field is missing", id="no-tags-block"),
        pytest.param(_mutated("tags.cost-centre", delete=True), "missing required tag(s) cost-centre", id="no-cc"),
        pytest.param(
            _mutated("tags", {"project": "p", "environment": "e"}),
            "missing required tag(s) owner, cost-centre",
            id="only-the-old-two",
        ),
        pytest.param(_mutated("tags.owner", ""), "'owner': the value '' must be 1-256", id="empty-value"),
        pytest.param(_mutated("tags.aws:createdBy", "me"), "aws: prefix is reserved", id="aws-prefix"),
        pytest.param(_mutated("tags.ml-lifecycle:run-id", "x"), "the package's own", id="package-prefix"),
        pytest.param(_mutated("tags.team#1", "x"), "tag key 'team#1'", id="bad-key"),
        pytest.param(_mutated("tags.cost-centre", 1042), "valid string", id="number-value"),
        pytest.param(_mutated("sagemaker.tags", {"project": "p"}), "sagemaker.tags is no longer read", id="old-place"),
    ],
)
def test_bad_tags_name_the_tag(config_dir, data, words):
    path = _write(config_dir, data)
    with pytest.raises(cfg.ConfigError) as info:
        cfg.load_config("broken")
    assert str(path) in str(info.value)
    assert "tags" in str(info.value)
    assert words in str(info.value)


def test_too_many_tags_are_refused(config_dir):
    data = _mutated("tags.owner", "me")
    data["tags"].update({f"extra-{i}": "x" for i in range(cfg.MAX_CONFIG_TAGS)})
    _write(config_dir, data)
    with pytest.raises(cfg.ConfigError, match=f"at most {cfg.MAX_CONFIG_TAGS}"):
        cfg.load_config("broken")


@pytest.mark.parametrize("env", sorted(p.stem for p in (ROOT / "include" / "config").glob("*.yaml")))
def test_shipped_environments_carry_the_required_tags(env):
    tags = cfg.load_config(env).tags
    assert set(cfg.REQUIRED_TAGS) <= set(tags)
    assert tags["environment"] == env


def test_manual_approval_defaults_let_any_permitted_user_answer_within_a_day(config_dir):
    data = _mutated("training.manual_approval", delete=True)
    _write(config_dir, data)
    manual = cfg.load_config("broken").training.manual_approval
    assert manual.timeout_seconds == 86400
    assert manual.assigned_users() is None


def test_approvers_become_the_assigned_users():
    manual = cfg.load_config("prod").training.manual_approval
    assert manual.assigned_users() == [{"id": a.id, "name": a.name} for a in manual.approvers]
    assert manual.timeout.total_seconds() == manual.timeout_seconds
