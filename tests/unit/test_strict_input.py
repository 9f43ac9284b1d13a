"""Strict input: unknown conf keys, the hyperparameter schema, model package ARNs and S3 URIs of the environment.

Each rule is checked where it applies: the config loader, the DAGs' params as a trigger validates them
(``SerializedDAG.create_dagrun`` merges the conf into the serialized params), and the task that uses the
value, before any SageMaker call.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from airflow.providers.common.compat.sdk import AirflowFailException

from ml_lifecycle import config as cfg_module
from ml_lifecycle.hyperparameters import SCHEMAS, HyperparameterError, check_hyperparameters, param_schema
from ml_lifecycle.strict_input import (
    InputError,
    check_model_package_arn,
    check_s3_uri,
    refuse_unknown_conf_keys,
)
from tests.unit.operators._hosting_fakes import AWS_CONNECTION, aws  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "include" / "config" / "local.yaml"
ACCOUNT, REGION, GROUP, BUCKET = "123456789012", "us-east-1", "fraud-detector", "ml-lifecycle-local"
OWN_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/7"


@pytest.fixture(scope="module")
def cfg() -> cfg_module.Config:
    return cfg_module.load_config("local")


@pytest.fixture(scope="module")
def dags() -> dict[str, Any]:
    """The package's DAGs as the scheduler and API server hold them (serialized, then read back)."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    return {
        dag_id: SimpleNamespace(parsed=dag, serialized=DagSerialization.from_dict(DagSerialization.to_dict(dag)))
        for dag_id, dag in bag.dags.items()
    }


def _trigger(dags: dict[str, Any], dag_id: str, conf: dict[str, Any]) -> dict[str, Any]:
    """What a trigger does with ``conf`` (raises ParamValidationError naming the param)."""
    return dags[dag_id].serialized.params.deep_merge(conf).validate()


# ------------------------------------------------------------------------------------------ unknown keys


def _context(dag: Any, conf: dict[str, Any]) -> dict[str, Any]:
    return {"dag_run": SimpleNamespace(conf=conf), "task": SimpleNamespace(dag=dag), "dag": dag}


def test_every_task_of_every_dag_refuses_unknown_conf_keys_before_it_runs(dags):
    assert set(dags) >= {"train_model", "deploy_model", "monitor_model", "batch_score"}
    for dag_id, dag in dags.items():
        for task in dag.parsed.tasks:
            assert task._pre_execute_hook is refuse_unknown_conf_keys, f"{dag_id}.{task.task_id}"


def test_a_misspelt_key_fails_naming_it_and_the_accepted_keys(dags):
    dag = dags["train_model"].parsed
    # the trigger itself accepts it: Airflow 3.3 adds an unknown key as a param without a schema
    assert _trigger(dags, "train_model", {"window_dayz": 30})["window_dayz"] == 30
    with pytest.raises(AirflowFailException) as caught:
        refuse_unknown_conf_keys(_context(dag, {"window_dayz": 30, "tuning": True}))
    message = str(caught.value)
    assert "train_model: unknown conf key 'window_dayz'" in message
    assert "accepted: approval, force, hyperparameters, training_instance_type, tuning, tuning_max_jobs, " in message
    assert "window_days" in message and "'tuning'" not in message


@pytest.mark.parametrize("dag_id", ["train_model", "deploy_model", "monitor_model", "batch_score"])
def test_declared_keys_and_an_empty_conf_pass(dags, dag_id):
    dag = dags[dag_id].parsed
    refuse_unknown_conf_keys(_context(dag, {}))
    refuse_unknown_conf_keys(_context(dag, {name: dag.params[name] for name in dag.params}))


def test_several_unknown_keys_are_all_named(dags):
    with pytest.raises(AirflowFailException, match=r"unknown conf keys 'model_arn', 'strategy_name'"):
        refuse_unknown_conf_keys(_context(dags["deploy_model"].parsed, {"strategy_name": "x", "model_arn": "y"}))


# ------------------------------------------------------------------------------------------ hyperparameters


def test_the_bad_values_of_the_report_are_refused_naming_each_and_its_rule():
    with pytest.raises(HyperparameterError) as caught:
        check_hyperparameters({"num_round": "lots", "max_depth": -5}, "xgboost", source="params.hyperparameters")
    message = str(caught.value)
    assert "params.hyperparameters.num_round: 'lots' breaks the rule integer, 1 <= value <= 10000" in message
    assert "params.hyperparameters.max_depth: -5 breaks the rule integer, 0 <= value <= 30" in message


@pytest.mark.parametrize(
    ("values", "words"),
    [
        pytest.param({"max_dept": 4}, "max_dept: not a hyperparameter of xgboost (accepted: colsample_bytree",
                     id="unknown-name"),
        pytest.param({"max_depth": True}, "max_depth: True breaks the rule integer", id="boolean-for-integer"),
        pytest.param({"max_depth": 4.5}, "max_depth: 4.5 breaks the rule integer", id="fraction-for-integer"),
        pytest.param({"eta": 0}, "eta: 0 breaks the rule number, 0 < value <= 1", id="eta-zero"),
        pytest.param({"subsample": 1.5}, "subsample: 1.5 breaks the rule number, 0 < value <= 1", id="subsample"),
        pytest.param({"threshold": 1}, "threshold: 1 breaks the rule number, 0 < value < 1", id="threshold-one"),
        pytest.param({"scale_pos_weight": "many"}, "scale_pos_weight: 'many' breaks the rule number, 0 < value "
                     "<= 10000 or one of 'auto'", id="scale-pos-weight-word"),
        pytest.param({"num_round": float("nan")}, "num_round: nan breaks", id="nan"),
    ],
)  # fmt: skip
def test_each_rule_is_enforced(values, words):
    with pytest.raises(HyperparameterError, match=None) as caught:
        check_hyperparameters(values, "xgboost")
    assert words in str(caught.value)


def test_valid_values_pass():
    check_hyperparameters(
        {"num_round": 50, "max_depth": 0, "eta": 1, "subsample": 0.5, "scale_pos_weight": "auto", "seed": 7,
         "early_stopping_rounds": 0, "threshold": 0.3, "min_child_weight": 0.5, "colsample_bytree": 1.0},
        "xgboost",
    )  # fmt: skip
    check_hyperparameters({"num_round": 100.0, "scale_pos_weight": 3.5}, "xgboost")  # integral float: as JSON


def _config_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit) -> Path:
    document = yaml.safe_load(LOCAL.read_text(encoding="utf-8"))
    edit(document["sagemaker"])
    (tmp_path / "edited.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    monkeypatch.setenv(cfg_module.CONFIG_DIR_VAR, str(tmp_path))
    return tmp_path / "edited.yaml"


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        pytest.param(lambda sm: sm["hyperparameters"].update(num_round="lots"),
                     "hyperparameters.num_round: 'lots' breaks the rule integer", id="config-value"),
        pytest.param(lambda sm: sm["hyperparameters"].update(max_dpth=4),
                     "hyperparameters.max_dpth: not a hyperparameter of xgboost", id="config-name"),
        pytest.param(lambda sm: sm["tuning"]["ranges"].update(max_depth={"type": "integer", "min": 3, "max": 80}),
                     "tuning.ranges.max_depth: 80 breaks the rule integer, 0 <= value <= 30", id="range-end"),
        pytest.param(lambda sm: sm["tuning"]["ranges"].update(gamma={"type": "continuous", "min": 0.1, "max": 1}),
                     "tuning.ranges.gamma: not a hyperparameter of xgboost", id="range-name"),
        pytest.param(lambda sm: sm["tuning"]["ranges"].update(num_round={"type": "continuous", "min": 10, "max": 90}),
                     "tuning.ranges.num_round: a continuous range over an integer hyperparameter",
                     id="continuous-over-integer"),
        pytest.param(lambda sm: sm["tuning"]["ranges"].update(eta={"type": "categorical", "values": ["0.1", "2"]}),
                     "tuning.ranges.eta: 2 breaks the rule number, 0 < value <= 1", id="categorical-value"),
        pytest.param(lambda sm: sm.update(algorithm="lightgbm"), "sagemaker.algorithm: Input should be 'xgboost'",
                     id="unknown-algorithm"),
    ],
)  # fmt: skip
def test_a_config_breaking_the_schema_fails_to_load_naming_the_field(tmp_path, monkeypatch, edit, words):
    path = _config_with(tmp_path, monkeypatch, edit)
    with pytest.raises(cfg_module.ConfigError) as caught:
        cfg_module.load_config("edited")
    message = str(caught.value)
    assert message.startswith(f"{path}: 1 invalid field:"), message
    assert words in message, message


def test_the_config_files_follow_their_schema():
    for path in sorted((ROOT / "include" / "config").glob("*.yaml")):
        loaded = cfg_module.load_config(path.stem)
        check_hyperparameters(loaded.sagemaker.hyperparameters, loaded.sagemaker.algorithm)


def test_the_trigger_refuses_bad_hyperparameters_naming_them(dags):
    from airflow.sdk.exceptions import ParamValidationError

    for bad, name in (
        ({"num_round": "lots"}, "num_round"),
        ({"max_depth": -5}, "max_depth"),
        ({"nround": 5}, "nround"),
    ):
        with pytest.raises(ParamValidationError) as caught:
            _trigger(dags, "train_model", {"hyperparameters": bad})
        assert "Invalid input for param hyperparameters:" in str(caught.value)
        assert name in str(caught.value)
    assert _trigger(dags, "train_model", {"hyperparameters": {"num_round": 50}})["hyperparameters"] == {"num_round": 50}


def test_the_param_schema_is_the_algorithms():
    schema = param_schema("xgboost")
    assert schema["additionalProperties"] is False and schema["properties"] == SCHEMAS["xgboost"]
    schema["properties"]["num_round"]["maximum"] = 1
    assert SCHEMAS["xgboost"]["num_round"]["maximum"] == 10_000  # a copy: a Param cannot change the rules


def test_training_and_tuning_refuse_bad_overrides_before_any_request(cfg):
    from ml_lifecycle.builders.common import BuilderError
    from ml_lifecycle.builders.training import merged_hyperparameters
    from ml_lifecycle.operators.sagemaker import TrainingJobOperator, TuningJobOperator

    with pytest.raises(BuilderError, match=r"hyperparameters\.max_depth: -5 breaks the rule"):
        merged_hyperparameters(cfg, {"max_depth": -5})
    for cls in (TrainingJobOperator, TuningJobOperator):
        op = cls(task_id="t", splits={}, sourcedir_uri="s3://b/x", hyperparameter_overrides='{"num_round": "lots"}')
        with pytest.raises(AirflowFailException, match=r"params.hyperparameters.num_round: 'lots' breaks the rule"):
            op._training_inputs()
    good = TrainingJobOperator(
        task_id="t", splits={}, sourcedir_uri="s3://b/x", hyperparameter_overrides='{"eta": 0.1}'
    )
    assert good._training_inputs().hyperparameter_overrides == {"eta": 0.1}


# ------------------------------------------------------------------------------------------ model packages


@pytest.mark.parametrize(
    ("arn", "words"),
    [
        pytest.param(f"arn:aws:sagemaker:{REGION}:999999999999:model-package/{GROUP}/7",
                     "account '999999999999' is not '123456789012'", id="other-account"),
        pytest.param(f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:model-package/{GROUP}/7",
                     "region 'eu-west-1' is not 'us-east-1'", id="other-region"),
        pytest.param(f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/churn-model/7",
                     "group 'churn-model' is not 'fraud-detector'", id="other-group"),
        pytest.param(f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package-group/{GROUP}",
                     "is not a model package version ARN", id="group-arn"),
    ],
)  # fmt: skip
def test_a_foreign_model_package_is_refused_naming_what_differs(cfg, dags, arn, words):
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(InputError) as caught:
        check_model_package_arn(arn, cfg)
    assert words in str(caught.value)
    assert f"expected arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/<version>" in str(caught.value)
    for dag_id in ("deploy_model", "batch_score"):
        with pytest.raises(ParamValidationError, match="Invalid input for param model_package_arn:"):
            _trigger(dags, dag_id, {"model_package_arn": arn})


def test_the_environments_own_versions_and_latest_pass(cfg, dags):
    check_model_package_arn(OWN_ARN, cfg)
    for dag_id in ("deploy_model", "batch_score"):
        for value in (OWN_ARN, "latest"):
            assert _trigger(dags, dag_id, {"model_package_arn": value})["model_package_arn"] == value


def test_resolve_refuses_a_foreign_arn_before_calling_sagemaker():
    from ml_lifecycle.operators.approval import ResolveModelPackageOperator
    from tests.unit.operators._hosting_fakes import FakeSageMaker, context

    fake = FakeSageMaker()
    op = ResolveModelPackageOperator(
        task_id="resolve", model_package_arn=f"arn:aws:sagemaker:{REGION}:999999999999:model-package/{GROUP}/1"
    )
    op.__dict__["hook"] = SimpleNamespace(
        conn=fake, conn_region_name=REGION, conn_partition="aws", conn_config=AWS_CONNECTION
    )
    with pytest.raises(AirflowFailException, match="account '999999999999' is not '123456789012'"):
        op.execute(context())
    assert fake.calls == []


# ----------------------------------------------------------------------------------------------- S3 URIs


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        pytest.param("s3://someone-elses-data/baseline/", "bucket 'someone-elses-data' is not one of this "
                     "environment's buckets (ml-lifecycle-local;", id="other-bucket"),
        pytest.param(f"s3://{BUCKET}-copy/baseline/", f"bucket '{BUCKET}-copy' is not one", id="bucket-name-prefix"),
        pytest.param("https://example.com/baseline.csv", "is not an S3 URI", id="not-s3"),
        pytest.param("s3:///baseline/", "is not an S3 URI", id="no-bucket"),
    ],
)  # fmt: skip
def test_an_s3_uri_outside_the_environments_buckets_is_refused(cfg, dags, uri, words):
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(InputError) as caught:
        check_s3_uri(uri, cfg, field="baseline_dataset_uri")
    assert str(caught.value).startswith(f"baseline_dataset_uri {uri!r}")
    assert words in str(caught.value)
    with pytest.raises(ParamValidationError, match="Invalid input for param baseline_dataset_uri:"):
        _trigger(dags, "deploy_model", {"baseline_dataset_uri": uri})


def test_the_environments_bucket_and_its_input_buckets_pass(cfg, dags):
    for uri in (f"s3://{BUCKET}/baselines/v3/", f"s3://{BUCKET}", ""):
        assert _trigger(dags, "deploy_model", {"baseline_dataset_uri": uri})["baseline_dataset_uri"] == uri
    check_s3_uri(f"s3://{BUCKET}/baselines/v3/", cfg, field="baseline_dataset_uri")
    wider = cfg.model_copy(update={"storage": cfg.storage.model_copy(update={"input_buckets": ["shared-data"]})})
    check_s3_uri("s3://shared-data/fraud/baseline/", wider, field="baseline_dataset_uri")
    with pytest.raises(InputError):
        check_s3_uri("s3://shared-data/fraud/baseline/", cfg, field="baseline_dataset_uri")


@pytest.mark.usefixtures("aws")
def test_the_baseline_task_refuses_a_foreign_bucket_before_calling_sagemaker():
    from ml_lifecycle.operators.monitor import DataQualityBaselineOperator
    from tests.unit.operators._hosting_fakes import FakeMonitoring, context

    fake = FakeMonitoring()
    op = DataQualityBaselineOperator(task_id="b", dataset_uri="s3://someone-elses-data/x/", model_package_version=1)
    op.__dict__["hook"] = SimpleNamespace(
        conn=fake, conn_region_name=REGION, conn_partition="aws", conn_config=AWS_CONNECTION
    )
    with pytest.raises(AirflowFailException, match="bucket 'someone-elses-data' is not one of this environment's"):
        op.execute(context())
    assert fake.calls == [] and fake.jobs == {}


# ------------------------------------------------------------------------- the schema and the training code


def _train_args(name: str, value: Any) -> list[str]:
    import json

    text = value if isinstance(value, str) else json.dumps(value)
    return ["--train", "/tmp", "--validation", "/tmp", "--model-dir", "/tmp", f"--{name}", text]


#: each hyperparameter of the schema: a value its rule accepts, one it refuses
_SCRIPT_CASES = [
    pytest.param("num_round", 1, 0, id="num_round"),
    pytest.param("max_depth", 0, -1, id="max_depth"),
    pytest.param("eta", 1, 0, id="eta"),
    pytest.param("subsample", 1, 1.01, id="subsample"),
    pytest.param("colsample_bytree", 0.01, 0, id="colsample_bytree"),
    pytest.param("scale_pos_weight", "auto", 0, id="scale_pos_weight"),
    pytest.param("threshold", 0.99, 1, id="threshold"),
    pytest.param("early_stopping_rounds", 0, 2.5, id="early_stopping_rounds"),
    pytest.param("seed", 0, "x", id="seed"),
    pytest.param("min_child_weight", 0.5, "x", id="min_child_weight"),
]


@pytest.mark.parametrize(("name", "good", "bad"), _SCRIPT_CASES)
def test_the_xgboost_schema_is_what_the_training_script_accepts(name: str, good: Any, bad: Any):
    from tests.unit.include.conftest import SCRIPTS, load_script

    train = load_script(SCRIPTS["train"], "train")
    assert set(SCHEMAS["xgboost"]) == {p.values[0] for p in _SCRIPT_CASES}
    check_hyperparameters({name: good}, "xgboost")
    train.parse_args(_train_args(name, good))
    with pytest.raises(HyperparameterError):
        check_hyperparameters({name: bad}, "xgboost")
    with pytest.raises(SystemExit):
        train.parse_args(_train_args(name, bad))


def test_a_name_outside_the_schema_is_one_the_training_script_refuses():
    from tests.unit.include.conftest import SCRIPTS, load_script

    train = load_script(SCRIPTS["train"], "train")
    with pytest.raises(HyperparameterError):
        check_hyperparameters({"gamma": 1}, "xgboost")
    with pytest.raises(SystemExit):
        train.parse_args(_train_args("gamma", 1))
