"""The step cache's key: every input that decides a job's outputs changes it, run naming does not."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from ml_lifecycle.builders import (
    TrainingInputs,
    evaluate_request,
    preprocess_request,
    training_request,
    tuning_request,
)
from ml_lifecycle.cache import (
    CacheError,
    CacheRecord,
    cache_key,
    cacheable_request,
    dataset_digest,
    force_requested,
    new_record,
    record_uri,
    reused_from_metadata,
    reused_metadata,
    reused_steps,
)
from ml_lifecycle.config import load_config
from ml_lifecycle.naming import RunPlan

ANCHOR = datetime(2026, 3, 1, tzinfo=UTC)
METRICS = [{"Name": "validation:auc", "Regex": "validation-auc:([0-9.]+)"}]
SPLITS = {
    "train": "s3://b/jobs/train_model/w/aaaa1111/preprocess/train/",
    "validation": "s3://b/jobs/train_model/w/aaaa1111/preprocess/validation/",
    "preprocessor": "s3://b/jobs/train_model/w/aaaa1111/preprocess/preprocessor/",
    "inference": "s3://b/code/1111/src/",
}
MANIFEST = {
    "schema": [{"name": "amount", "type": "double"}, {"name": "is_fraud", "type": "int64"}],
    "row_count": 150,
    "parts": [
        {"name": "part-00000.parquet", "rows": 100, "bytes": 10, "sha256": "a" * 64},
        {"name": "part-00001.parquet", "rows": 50, "bytes": 5, "sha256": "b" * 64},
    ],
}


@pytest.fixture
def cfg():
    return load_config("local")


def _plan(cfg, run_id="manual__2026-03-01T00:00:00+00:00", anchor=ANCHOR, days=30):
    return RunPlan.create(cfg, dag_id="train_model", run_id=run_id, anchor=anchor, window_days=days)


def _key(plan, request, datasets=None, step="preprocess"):
    return cache_key(
        dag_id=plan.dag_id,
        step=step,
        window_start=plan.window.start.isoformat(),
        window_end=plan.window.end.isoformat(),
        request=request,
        datasets=datasets,
    )


def _requests(cfg, plan, try_number=1, **overrides):
    """Every job request of the training pipeline for ``plan``, as a step -> request map."""
    train = TrainingInputs(
        **{
            "splits": SPLITS,
            "sourcedir_uri": "s3://b/code/2222/sourcedir.tar.gz",
            "metric_definitions": METRICS,
            "hyperparameter_overrides": {"num_round": 20},
            "instance_type": None,
            **overrides,
        }
    )
    return {
        "preprocess": preprocess_request(
            cfg, plan, dataset_uri=plan.dataset_uri, code_uri="s3://b/code/3333/src/", try_number=try_number
        ),
        "train": training_request(cfg, plan, train, try_number=try_number),
        "tune": tuning_request(cfg, plan, train, try_number=try_number, max_jobs=2, max_parallel_jobs=1),
        "evaluate": evaluate_request(
            cfg,
            plan,
            model_uri="s3://b/jobs/train_model/w/aaaa1111/train/job/output/model.tar.gz",
            test_uri=SPLITS["train"].replace("train/", "test/"),
            code_uri="s3://b/code/4444/src/",
            try_number=try_number,
        ),
    }


def test_same_inputs_give_the_same_key_whatever_the_run_and_try(cfg):
    """A second run (other run id, other logical time the same day) and a retry compute the same keys."""
    first, second = _plan(cfg), _plan(cfg, run_id="scheduled__x", anchor=ANCHOR.replace(hour=14, minute=30))
    assert first.run_hash != second.run_hash and first.window == second.window
    a, b = _requests(cfg, first), _requests(cfg, second, try_number=3)
    for step in a:
        assert a[step] != b[step], "the requests differ in their run naming"
        assert _key(first, a[step], step=step) == _key(second, b[step], step=step), step


@pytest.mark.parametrize("step", ["preprocess", "train", "tune", "evaluate"])
def test_the_request_without_run_naming_names_nothing_of_the_run(cfg, step):
    plan = _plan(cfg)
    text = json.dumps(cacheable_request(_requests(cfg, plan, try_number=2)[step]))
    for token in (plan.run_hash, plan.run_id, plan.job_name(step, 2)):
        assert token not in text, f"{step}: {token} left in the key's request"


def test_each_input_changes_the_key(cfg):
    plan = _plan(cfg)
    base = _requests(cfg, plan)["preprocess"]
    digest = {"dataset": dataset_digest(MANIFEST)}
    key = _key(plan, base, digest)
    variants = {
        "step": _key(plan, base, digest, step="evaluate"),
        "dag": cache_key(
            dag_id="other_dag",
            step="preprocess",
            window_start=plan.window.start.isoformat(),
            window_end=plan.window.end.isoformat(),
            request=base,
            datasets=digest,
        ),
        "window": _key(_plan(cfg, days=29), base, digest),
        "dataset digest": _key(plan, base, {"dataset": "0" * 64}),
        "no dataset": _key(plan, base, {}),
    }
    assert key not in variants.values()
    assert len(set(variants.values())) == len(variants)


def test_params_code_image_and_instance_settings_change_the_key(cfg):
    plan = _plan(cfg)
    base = _key(plan, _requests(cfg, plan)["train"], step="train")
    changed = {
        "hyperparameter": _requests(cfg, plan, hyperparameter_overrides={"num_round": 21})["train"],
        "instance type": _requests(cfg, plan, instance_type="ml.m5.4xlarge")["train"],
        "code digest": _requests(cfg, plan, sourcedir_uri="s3://b/code/9999/sourcedir.tar.gz")["train"],
        "upstream output": _requests(cfg, plan, splits={**SPLITS, "train": "s3://b/jobs/other/train/"})["train"],
    }
    image = cfg.model_copy(
        update={
            "sagemaker": cfg.sagemaker.model_copy(
                update={"images": cfg.sagemaker.images.model_copy(update={"training": "1.dkr.ecr/other:2"})}
            )
        }
    )
    changed["image"] = _requests(image, plan)["train"]
    count = cfg.model_copy(
        update={
            "sagemaker": cfg.sagemaker.model_copy(
                update={"training": cfg.sagemaker.training.model_copy(update={"instance_count": 2})}
            )
        }
    )
    changed["instance count"] = _requests(count, plan)["train"]
    keys = {what: _key(plan, request, step="train") for what, request in changed.items()}
    assert base not in keys.values(), [w for w, k in keys.items() if k == base]
    assert len(set(keys.values())) == len(keys)


def test_run_naming_alone_does_not_change_the_key():
    request = {
        "TrainingJobName": "a-train-1",
        "Tags": [{"Key": "ml-lifecycle:run-id", "Value": "r1"}],
        "OutputDataConfig": {"S3OutputPath": "s3://b/jobs/r1/train/", "CompressionType": "GZIP"},
        "ProcessingOutputConfig": {
            "Outputs": [{"OutputName": "train", "S3Output": {"S3Uri": "s3://b/r1/", "LocalPath": "/opt/ml/x"}}]
        },
        "HyperParameters": {"num_round": "20"},
    }
    other = json.loads(json.dumps(request).replace("r1", "r2").replace("a-train-1", "b-train-2"))
    assert cacheable_request(request) == cacheable_request(other)
    assert cacheable_request(request)["ProcessingOutputConfig"]["Outputs"][0]["S3Output"] == {"LocalPath": "/opt/ml/x"}
    changed = {**request, "HyperParameters": {"num_round": "21"}}
    assert cacheable_request(changed) != cacheable_request(request)
    local_path = json.loads(json.dumps(request).replace("/opt/ml/x", "/opt/ml/y"))
    assert cacheable_request(local_path) != cacheable_request(request), "an output's local path is kept"


def test_dataset_digest_follows_the_content():
    digest = dataset_digest(MANIFEST)
    assert digest == dataset_digest(json.loads(json.dumps(MANIFEST)))
    assert digest == dataset_digest({**MANIFEST, "started_at": "x", "snowflake_query_id": "y"}), "timing ignored"
    checksum = json.loads(json.dumps(MANIFEST))
    checksum["parts"][1]["sha256"] = "c" * 64
    rows = json.loads(json.dumps(MANIFEST))
    rows["parts"][1]["rows"] = 51
    schema = {**MANIFEST, "schema": MANIFEST["schema"][:1]}
    etag = json.loads(json.dumps(MANIFEST))
    for part in etag["parts"]:
        part["etag"] = part.pop("sha256")[:32]
    digests = [dataset_digest(m) for m in (checksum, rows, schema, etag)]
    assert digest not in digests and len(set(digests)) == 4 and all(digests)


def test_a_dataset_without_checksums_has_no_digest_and_no_key(cfg):
    unknown = json.loads(json.dumps(MANIFEST))
    del unknown["parts"][0]["sha256"]
    assert dataset_digest(unknown) is None
    assert dataset_digest({"parts": None}) is None
    plan = _plan(cfg)
    with pytest.raises(CacheError, match="'dataset' has no content digest"):
        _key(plan, {}, {"dataset": None})


@pytest.mark.parametrize(("params", "expected"), [({}, False), (None, False), ({"force": True}, True),
                                                  ({"force": False}, False), ({"force": None}, False)])  # fmt: skip
def test_force_param(params, expected):
    assert force_requested(params) is expected


@pytest.mark.parametrize("value", ["true", "yes", 1, 0, "false"])
def test_force_param_must_be_a_boolean(value):
    with pytest.raises(CacheError, match=r"param force must be a boolean \(true or false\), got"):
        force_requested({"force": value})


def test_record_round_trip_and_rejects_other_keys_and_versions():
    record = new_record(
        key="k1",
        dag_id="d",
        step="train",
        run_id="r",
        job_name="j",
        result={"model_uri": "s3://b/m"},
        outputs=["s3://b/m"],
    )
    document = json.loads(json.dumps(record.as_dict()))
    assert CacheRecord.from_dict(document, key="k1") == record
    assert CacheRecord.from_dict(document, key="k2") is None
    assert CacheRecord.from_dict({**document, "cache_version": 0}, key="k1") is None
    assert CacheRecord.from_dict(None, key="k1") is None
    assert record_uri("b", "cache", dag_id="d", step="train", key="k1") == "s3://b/cache/d/train/k1.json"


def test_reused_steps_for_the_lineage():
    results = [
        {"job_name": "p", "cache": {"reused": True, "step": "preprocess", "source_job_name": "p0",
                                    "source_run_id": "r0", "key": "k"}},
        {"job_name": "t", "cache": {"reused": False, "step": "train", "key": "k2"}},
        None,
        {"job_name": "e"},
    ]  # fmt: skip
    reused = reused_steps(json.dumps(results))
    assert reused == {"preprocess": {"job_name": "p0", "run_id": "r0", "key": "k"}}
    assert reused_steps(results) == reused
    assert reused_steps("None") == {} and reused_steps(None) == {}
    metadata = reused_metadata(reused)
    assert metadata == {"reused:preprocess": "p0 from run r0"}
    assert reused_from_metadata({**metadata, "dag_id": "x"}) == {"preprocess": "p0 from run r0"}
    with pytest.raises(CacheError, match="JSON list"):
        reused_steps("{not json")


# ------------------------------------------------------------------------------------ validation and transform

PACKAGE = {
    "ModelPackageArn": "arn:aws:sagemaker:us-east-1:000000000000:model-package/fraud-detector/3",
    "ModelPackageVersion": 3,
    "InferenceSpecification": {
        "Containers": [{"Image": "img:1", "ModelDataUrl": "s3://b/models/3/model.tar.gz", "Environment": {"A": "1"}}]
    },
}


def _validation_inputs(cfg, **overrides):
    from ml_lifecycle.code_package import package_component
    from ml_lifecycle.config import include_dir
    from ml_lifecycle.dag_defaults import validation_job_settings

    inputs = {
        "dag_id": "train_model",
        "window_start": "2026-01-30T00:00:00",
        "window_end": "2026-03-01T00:00:00",
        "dataset": dataset_digest(MANIFEST),
        "suite": (include_dir() / cfg.training.validation.suite).read_bytes(),
        "contract": (include_dir() / "code" / "common" / "features_schema.json").read_bytes(),
        "code": package_component(include_dir() / "code", "validation").files,
        "mode": "processing",
        "batch_rows": 50_000,
        "processing_job": validation_job_settings(cfg, job_name="fraud-validate-20260301-aaaa1111"),
    }
    return {**inputs, **overrides}


def test_validation_key_is_the_same_for_another_run_and_try(cfg):
    from ml_lifecycle.cache import validation_cache_key
    from ml_lifecycle.dag_defaults import validation_job_settings

    first = validation_cache_key(**_validation_inputs(cfg))
    other_job = validation_job_settings(cfg, job_name="fraud-validate-20260301-bbbb2222-r2")
    other_job["tags"] = {"run": "other"}
    assert validation_cache_key(**_validation_inputs(cfg, processing_job=other_job)) == first
    assert len(first) == 64


def test_each_validation_input_changes_the_key(cfg):
    from ml_lifecycle.cache import validation_cache_key
    from ml_lifecycle.dag_defaults import validation_job_settings

    base = _validation_inputs(cfg)
    code = dict(base["code"])
    first_file = sorted(code)[0]
    code[first_file] = code[first_file] + b"\n# changed\n"
    image = {**base["processing_job"], "image_uri": "other-image:2"}
    instance = {**base["processing_job"], "instance_type": "ml.m5.4xlarge"}
    changes = {
        "window": {"window_start": "2026-01-31T00:00:00"},
        "dataset": {"dataset": "c" * 64},
        "suite": {"suite": base["suite"] + b" "},
        "contract": {"contract": None},
        "code": {"code": code},
        "mode": {"mode": "worker"},
        "batch_rows": {"batch_rows": 10_000},
        "image": {"processing_job": image},
        "instance": {"processing_job": instance},
        "dag": {"dag_id": "other_dag"},
    }
    first = validation_cache_key(**base)
    keys = {name: validation_cache_key(**{**base, **change}) for name, change in changes.items()}
    for name, key in keys.items():
        assert key != first, f"{name} does not change the validation key"
    assert len(set(keys.values())) == len(keys)
    # worker mode runs no job: its settings are not part of the key
    worker = {**base, "mode": "worker"}
    other = {**worker, "processing_job": validation_job_settings(cfg, job_name="x") | {"image_uri": "other:9"}}
    assert validation_cache_key(**worker) == validation_cache_key(**other)


def test_validation_key_refuses_a_dataset_without_digest(cfg):
    from ml_lifecycle.cache import validation_cache_key

    with pytest.raises(CacheError, match="dataset"):
        validation_cache_key(**_validation_inputs(cfg, dataset=None))


def _transform_inputs(cfg, *, run_id="scheduled__2026-03-01T00:00:00+00:00", try_number=1, package=PACKAGE, **kw):
    from ml_lifecycle.builders.endpoint import model_request
    from ml_lifecycle.builders.transform import transform_job_name, transform_request

    model = model_request(cfg, package)
    name = transform_job_name(cfg, dag_id="batch_score", run_id=run_id, start=ANCHOR, try_number=try_number)
    inputs = {
        "dag_id": "batch_score",
        "window_start": "2026-03-01T00:00:00",
        "window_end": "2026-03-02T00:00:00",
        "dataset": dataset_digest(MANIFEST),
        "model_package_arn": package["ModelPackageArn"],
        "model": model,
        "transform": transform_request(
            cfg,
            job_name=name,
            model_name=model["ModelName"],
            input_uri="s3://b/batch/batch_score/20260301T0000-20260302T0000/input/",
            output_uri="s3://b/batch/batch_score/20260301T0000-20260302T0000/output/",
        ),
        "features": ["amount", "hour"],
    }
    return {**inputs, **kw}


def test_transform_key_is_the_same_for_a_re_run_and_a_retry_of_the_interval(cfg):
    from ml_lifecycle.cache import transform_cache_key

    first = transform_cache_key(**_transform_inputs(cfg))
    again = transform_cache_key(**_transform_inputs(cfg, run_id="manual__2026-03-02T09:00:00+00:00", try_number=3))
    assert first == again


def test_another_model_or_input_changes_the_transform_key(cfg):
    from ml_lifecycle.cache import transform_cache_key

    first = transform_cache_key(**_transform_inputs(cfg))
    other_version = {
        **PACKAGE,
        "ModelPackageArn": PACKAGE["ModelPackageArn"][:-1] + "4",
        "ModelPackageVersion": 4,
    }
    other_image = json.loads(json.dumps(PACKAGE))
    other_image["InferenceSpecification"]["Containers"][0]["Image"] = "img:2"
    other_env = json.loads(json.dumps(PACKAGE))
    other_env["InferenceSpecification"]["Containers"][0]["Environment"] = {"A": "2"}
    base = _transform_inputs(cfg)
    bigger = json.loads(json.dumps(base["transform"]))
    bigger["TransformResources"]["InstanceType"] = "ml.m5.4xlarge"
    variants = {
        "model version": _transform_inputs(cfg, package=other_version),
        "image": _transform_inputs(cfg, package=other_image),
        "model environment": _transform_inputs(cfg, package=other_env),
        "dataset": {**base, "dataset": "d" * 64},
        "interval": {**base, "window_start": "2026-03-02T00:00:00", "window_end": "2026-03-03T00:00:00"},
        "instance": {**base, "transform": bigger},
        "features": {**base, "features": ["hour", "amount"]},
    }
    keys = {name: transform_cache_key(**inputs) for name, inputs in variants.items()}
    for name, key in keys.items():
        assert key != first, f"{name} does not change the transform key"
    assert len(set(keys.values())) == len(keys)


def test_content_digest_is_order_independent_and_content_sensitive():
    from ml_lifecycle.cache import content_digest

    assert content_digest({"a": b"1", "b": b"2"}) == content_digest({"b": b"2", "a": b"1"})
    assert content_digest({"a": b"1", "b": b"2"}) != content_digest({"a": b"1", "b": b"3"})
    assert content_digest({"a": b"1"}) != content_digest({"c": b"1"})
