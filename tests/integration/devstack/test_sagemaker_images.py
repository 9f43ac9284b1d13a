"""A job sees what its image gives it on SageMaker: /opt/ml as a real path, the image's libraries and
nothing else, requirements.txt installed as the toolkits do (and not under network isolation), the
built-in XGBoost algorithm, and the project's own images built from their Dockerfiles."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from devstack.sagemaker import isolation
from devstack.sagemaker.environments import EnvironmentCache
from devstack.sagemaker.images import parse_image_uri
from devstack.sagemaker.service import SageMakerService
from tests.integration.devstack.hosting_support import client, wait_endpoint
from tests.integration.devstack.sagemaker_support import (
    ROLE,
    SKLEARN_IMAGE,
    build_probe_wheel,
    loopback_index,
    mount_holders,
    put_sourcedir,
    put_text,
    read_tarball,
    wait_for,
)

pytestmark = pytest.mark.integration

SKLEARN_14_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.4-2-cpu-py3"
XGBOOST_30_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.0-5"
RESOURCES = {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5}}

needs_namespaces = pytest.mark.skipif(not isolation.available(), reason="needs private mount namespaces (root)")


def _input(name: str, uri: str, local: str) -> dict[str, Any]:
    return {
        "InputName": name,
        "S3Input": {"S3Uri": uri, "LocalPath": local, "S3DataType": "S3Prefix", "S3InputMode": "File"},
    }


def processing_job(
    sm: Any,
    s3: Any,
    name: str,
    bucket: str,
    script: str,
    *,
    image: str = SKLEARN_14_IMAGE,
    entrypoint: list[str] | None = None,
    isolated: bool = False,
) -> dict[str, Any]:
    """Run one processing job with ``script`` as input ``code`` and ``raw/`` as input ``data``; wait for it."""
    put_text(s3, bucket, f"{name}/code/job.py", script)
    request: dict[str, Any] = {
        "ProcessingJobName": name,
        "RoleArn": ROLE,
        "AppSpecification": {"ImageUri": image},
        "ProcessingInputs": [
            _input("data", f"s3://{bucket}/raw/", "/opt/ml/processing/input/data"),
            _input("code", f"s3://{bucket}/{name}/code/", "/opt/ml/processing/input/code"),
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "out",
                    "S3Output": {
                        "S3Uri": f"s3://{bucket}/{name}/out",
                        "LocalPath": "/opt/ml/processing/output",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        "ProcessingResources": RESOURCES,
        "StoppingCondition": {"MaxRuntimeInSeconds": 300},
    }
    if entrypoint is not None:
        request["AppSpecification"]["ContainerEntrypoint"] = entrypoint
    if isolated:
        request["NetworkConfig"] = {"EnableNetworkIsolation": True}
    sm.create_processing_job(**request)
    return wait_for(lambda: sm.describe_processing_job(ProcessingJobName=name), "ProcessingJobStatus", 300)


@pytest.fixture(autouse=True)
def _raw_data(s3: Any, bucket: str) -> None:
    put_text(s3, bucket, "raw/raw.csv", "a,1\nb,2\nc,3\n")


def log_text(logs: Any, group: str, name: str) -> str:
    """The job's log stream (``<name>/algo-1-<epoch>``) as text."""
    streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=f"{name}/")["logStreams"]
    assert len(streams) == 1, streams
    events = logs.get_log_events(logGroupName=group, logStreamName=streams[0]["logStreamName"], startFromHead=True)
    return "\n".join(e["message"] for e in events["events"])


def training_job(
    sm: Any,
    name: str,
    bucket: str,
    *,
    image: str,
    hyperparameters: dict[str, str],
    channels: dict[str, tuple[str, str | None]],
    isolated: bool = False,
) -> dict[str, Any]:
    """Run one training job; ``channels`` maps a channel to (S3 URI, ContentType)."""
    input_config = []
    for channel, (uri, content_type) in channels.items():
        entry: dict[str, Any] = {
            "ChannelName": channel,
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}
            },
        }
        if content_type:
            entry["ContentType"] = content_type
        input_config.append(entry)
    sm.create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": image, "TrainingInputMode": "File"},
        HyperParameters=hyperparameters,
        InputDataConfig=input_config,
        OutputDataConfig={"S3OutputPath": f"s3://{bucket}/models"},
        ResourceConfig={"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 300},
        EnableNetworkIsolation=isolated,
    )
    return wait_for(lambda: sm.describe_training_job(TrainingJobName=name), "TrainingJobStatus", 300)


# -- /opt/ml is a real path -----------------------------------------------------------------------------


HARD_CODED = """
import os, pathlib
os.chdir("/opt/ml/processing/input/code/")          # as the SDK's FrameworkProcessor does
rows = open("/opt/ml/processing/input/data/raw.csv").read().splitlines()
config = open("/opt/ml/config/processingjobconfig.json").read()
pathlib.Path("/opt/ml/processing/output/seen.txt").write_text(f"{len(rows)} rows, cwd {os.getcwd()}")
"""


@needs_namespaces
def test_processing_script_with_hard_coded_opt_ml_paths_completes(
    sm: Any, s3: Any, bucket: str, unique_name: Any
) -> None:
    name = unique_name("hard-paths")

    desc = processing_job(
        sm, s3, name, bucket, HARD_CODED, entrypoint=["python3", "/opt/ml/processing/input/code/job.py"]
    )

    assert desc["ProcessingJobStatus"] == "Completed", desc.get("FailureReason")
    seen = s3.get_object(Bucket=bucket, Key=f"{name}/out/seen.txt")["Body"].read().decode()
    assert seen == "3 rows, cwd /opt/ml/processing/input/code"
    assert not Path("/opt/ml/processing").exists(), "the job's /opt/ml must not leak into the host"


@needs_namespaces
def test_a_stopped_job_leaves_no_mount_behind(
    sm: Any, s3: Any, bucket: str, unique_name: Any, sagemaker_service: SageMakerService
) -> None:
    name = unique_name("mount-stop")
    put_text(s3, bucket, f"{name}/code/job.py", "import time\ntime.sleep(120)\n")
    sandbox = str(sagemaker_service.sandbox("processing-jobs", name) / "opt" / "ml")
    sm.create_processing_job(
        ProcessingJobName=name,
        RoleArn=ROLE,
        AppSpecification={
            "ImageUri": SKLEARN_14_IMAGE,
            "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/job.py"],
        },
        ProcessingInputs=[_input("code", f"s3://{bucket}/{name}/code/", "/opt/ml/processing/input/code")],
        ProcessingResources=RESOURCES,
    )
    deadline = time.monotonic() + 120
    while not mount_holders(sandbox):
        assert time.monotonic() < deadline, "the job never ran in a namespace with its sandbox at /opt/ml"
        time.sleep(0.1)
    assert sandbox not in Path("/proc/self/mountinfo").read_text(), "the bind must be private to the job"

    sm.stop_processing_job(ProcessingJobName=name)
    desc = wait_for(lambda: sm.describe_processing_job(ProcessingJobName=name), "ProcessingJobStatus", 60)

    assert desc["ProcessingJobStatus"] == "Stopped"
    assert mount_holders(sandbox) == []


def test_without_namespaces_paths_are_rewritten_and_the_log_says_so(
    sm: Any, s3: Any, logs: Any, bucket: str, unique_name: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(isolation.ENV_SWITCH, "0")
    isolation.reset_probe()
    try:
        args_name = unique_name("fallback-args")
        script = "import sys, pathlib\npathlib.Path(sys.argv[1], 'ok.txt').write_text('ok')\n"
        put_text(s3, bucket, f"{args_name}/code/job.py", script)
        sm.create_processing_job(
            ProcessingJobName=args_name,
            RoleArn=ROLE,
            AppSpecification={
                "ImageUri": SKLEARN_14_IMAGE,
                "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/job.py"],
                "ContainerArguments": ["/opt/ml/processing/output"],
            },
            ProcessingInputs=[_input("code", f"s3://{bucket}/{args_name}/code/", "/opt/ml/processing/input/code")],
            ProcessingOutputConfig={
                "Outputs": [
                    {
                        "OutputName": "out",
                        "S3Output": {
                            "S3Uri": f"s3://{bucket}/{args_name}/out",
                            "LocalPath": "/opt/ml/processing/output",
                            "S3UploadMode": "EndOfJob",
                        },
                    }
                ]
            },
            ProcessingResources=RESOURCES,
        )
        desc = wait_for(lambda: sm.describe_processing_job(ProcessingJobName=args_name), "ProcessingJobStatus", 300)
        hard = processing_job(
            sm,
            s3,
            unique_name("fallback-hard"),
            bucket,
            HARD_CODED,
            entrypoint=["python3", "/opt/ml/processing/input/code/job.py"],
        )
    finally:
        monkeypatch.delenv(isolation.ENV_SWITCH)
        isolation.reset_probe()

    assert desc["ProcessingJobStatus"] == "Completed", desc.get("FailureReason")
    assert "private mount namespaces are unavailable" in log_text(logs, "/aws/sagemaker/ProcessingJobs", args_name)
    assert hard["ProcessingJobStatus"] == "Failed"
    assert "/opt/ml/processing/input/code/" in hard["FailureReason"]


# -- the image's libraries, and only those ----------------------------------------------------------------

VERSIONS_PY = """
import json, os, sys, importlib.util
import numpy, pandas, sklearn
found = {"sklearn": sklearn.__version__, "numpy": numpy.__version__, "pandas": pandas.__version__,
         "great_expectations": importlib.util.find_spec("great_expectations") is not None,
         "dev_lock_visible": [m for m in ("airflow", "moto", "fakesnow") if importlib.util.find_spec(m)],
         "cwd": os.getcwd()}
json.dump(found, open(os.path.join(os.environ["SM_MODEL_DIR"], "versions.json"), "w"))
assert sklearn.__version__ == "1.2.1", sklearn.__version__
"""


def test_scikit_learn_1_2_1_job_gets_the_images_versions_and_nothing_else(
    sm: Any, s3: Any, bucket: str, unique_name: Any
) -> None:
    name = unique_name("skl-version")
    sourcedir = put_sourcedir(s3, bucket, f"{name}/sourcedir.tar.gz", {"train.py": VERSIONS_PY})

    desc = training_job(
        sm,
        name,
        bucket,
        image=SKLEARN_IMAGE,
        hyperparameters={"sagemaker_program": '"train.py"', "sagemaker_submit_directory": json.dumps(sourcedir)},
        channels={"train": (f"s3://{bucket}/raw/", "text/csv")},
    )

    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    found = json.loads(read_tarball(s3, desc["ModelArtifacts"]["S3ModelArtifacts"])["versions.json"])
    assert found["sklearn"] == "1.2.1"
    assert found["numpy"] == "1.24.1"
    assert found["pandas"] == "1.5.3"  # the image's 1.1.3 has no wheel for Python 3.11 (documented)
    assert found["great_expectations"] is False
    assert found["dev_lock_visible"] == []


def test_a_job_importing_a_library_its_image_lacks_fails_naming_it(
    sm: Any, s3: Any, bucket: str, unique_name: Any
) -> None:
    name = unique_name("no-gx")

    desc = processing_job(
        sm,
        s3,
        name,
        bucket,
        "import great_expectations\n",
        entrypoint=["python3", "/opt/ml/processing/input/code/job.py"],
    )

    assert desc["ProcessingJobStatus"] == "Failed"
    assert desc["FailureReason"].startswith("AlgorithmError: ")
    assert "No module named 'great_expectations'" in desc["FailureReason"]


# -- requirements.txt -------------------------------------------------------------------------------------

PROBE_PY = """
import os, devstack_probe
open(os.path.join(os.environ["SM_MODEL_DIR"], "probe.txt"), "w").write(devstack_probe.VERSION)
"""


def test_requirements_txt_is_installed_and_cannot_be_under_network_isolation(
    sm: Any, s3: Any, logs: Any, bucket: str, unique_name: Any, tmp_path: Path, sagemaker_service: SageMakerService
) -> None:
    wheel = build_probe_wheel(tmp_path / "wheels")
    with loopback_index([wheel], tmp_path / "index") as index:
        files = {"train.py": PROBE_PY, "requirements.txt": f"--index-url {index}\ndevstack-probe==1.0\n"}
        sourcedir = put_sourcedir(s3, bucket, f"{unique_name('src')}/sourcedir.tar.gz", files)
        hyperparameters = {"sagemaker_program": '"train.py"', "sagemaker_submit_directory": json.dumps(sourcedir)}
        channels = {"train": (f"s3://{bucket}/raw/", "text/csv")}
        open_name, isolated_name = unique_name("reqs"), unique_name("reqs-iso")

        opened = training_job(
            sm, open_name, bucket, image=SKLEARN_IMAGE, hyperparameters=hyperparameters, channels=channels
        )
        isolated = training_job(
            sm,
            isolated_name,
            bucket,
            image=SKLEARN_IMAGE,
            hyperparameters=hyperparameters,
            channels=channels,
            isolated=True,
        )

    assert opened["TrainingJobStatus"] == "Completed", opened.get("FailureReason")
    assert read_tarball(s3, opened["ModelArtifacts"]["S3ModelArtifacts"])["probe.txt"] == b"1.0"
    assert "-m pip install -r requirements.txt" in log_text(logs, "/aws/sagemaker/TrainingJobs", open_name)
    assert isolated["TrainingJobStatus"] == "Failed"
    assert isolated["FailureReason"].startswith("AlgorithmError: InstallRequirementsError:\nExitCode ")
    assert 'Command "' in isolated["FailureReason"]
    # the install went to the job's own layer: the cached environment is unchanged
    spec = sagemaker_service.images.spec_for(parse_image_uri(SKLEARN_IMAGE))
    assert spec is not None
    env = sagemaker_service.images.cache.path_for(spec)
    assert not list(env.glob("lib/python*/site-packages/devstack_probe"))


PROBE_INFERENCE_PY = """
import devstack_probe


def model_fn(model_dir):
    return devstack_probe.VERSION


def input_fn(body, content_type):
    return body


def predict_fn(data, model):
    return model


def output_fn(prediction, accept):
    return prediction, "text/plain"
"""


def _serve(sm: Any, name: str, model_uri: str, *, isolated: bool) -> dict[str, Any]:
    """One script-mode model of ``model_uri`` on an endpoint of its own; the endpoint's final description."""
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": SKLEARN_14_IMAGE,
            "ModelDataUrl": model_uri,
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
        },
        EnableNetworkIsolation=isolated,
    )
    variant = {
        "VariantName": "AllTraffic",
        "ModelName": name,
        "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large",
        "InitialVariantWeight": 1.0,
    }
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    return wait_endpoint(sm, name, timeout=300)


def test_inference_requirements_txt_is_installed_and_cannot_be_under_network_isolation(
    sm: Any, s3: Any, bucket: str, unique_name: Any, tmp_path: Path, sagemaker_service: SageMakerService
) -> None:
    """The inference toolkit installs ``/opt/ml/model/code/requirements.txt`` before the server starts; under
    network isolation the install cannot download anything and the model never serves."""
    wheel = build_probe_wheel(tmp_path / "wheels")
    opened, isolated = unique_name("infer-reqs"), unique_name("infer-reqs-iso")
    with loopback_index([wheel], tmp_path / "index") as index:
        files = {
            "code/inference.py": PROBE_INFERENCE_PY,
            "code/requirements.txt": f"--index-url {index}\ndevstack-probe==1.0\n",
        }
        model_uri = put_sourcedir(s3, bucket, f"{opened}/model.tar.gz", files)
        served = _serve(sm, opened, model_uri, isolated=False)
        refused = _serve(sm, isolated, model_uri, isolated=True)
    try:
        assert served["EndpointStatus"] == "InService", served.get("FailureReason")
        assert sagemaker_service.url is not None
        answer = client("sagemaker-runtime", sagemaker_service.url).invoke_endpoint(
            EndpointName=opened, ContentType="text/plain", Body=b"x"
        )
        assert answer["Body"].read() == b"1.0", "the handler imported the package requirements.txt installed"
        assert refused["EndpointStatus"] == "Failed"
        assert "requirements.txt could not be installed" in refused["FailureReason"]
        assert "network isolation" in refused["FailureReason"]
        # the install went to the server's own layer: the cached environment is unchanged
        spec = sagemaker_service.images.spec_for(parse_image_uri(SKLEARN_14_IMAGE))
        assert spec is not None
        env = sagemaker_service.images.cache.path_for(spec)
        assert not list(env.glob("lib/python*/site-packages/devstack_probe"))
    finally:
        for name in (opened, isolated):
            sm.delete_endpoint(EndpointName=name)


# -- the built-in XGBoost algorithm ------------------------------------------------------------------------


def _fraud_like_csv(rows: int, seed: int, label: bool = True) -> tuple[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4))
    y = ((x[:, 0] + 0.5 * x[:, 1]) > 0.3).astype(int)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for features, target in zip(x, y, strict=True):
        writer.writerow(([int(target)] if label else []) + [f"{v:.5f}" for v in features])
    return buffer.getvalue(), x


def test_builtin_xgboost_algorithm_trains_reports_metrics_and_serves_csv(
    sm: Any, s3: Any, bucket: str, unique_name: Any, sagemaker_service: SageMakerService
) -> None:
    train, _ = _fraud_like_csv(400, 1)
    validation, _ = _fraud_like_csv(100, 2)
    put_text(s3, bucket, "builtin/train/train.csv", train)
    put_text(s3, bucket, "builtin/validation/validation.csv", validation)
    name = unique_name("xgb-builtin")
    hyperparameters = {"num_round": "20", "objective": "binary:logistic", "eval_metric": "auc", "max_depth": "3"}

    desc = training_job(
        sm,
        name,
        bucket,
        image=XGBOOST_30_IMAGE,
        hyperparameters=hyperparameters,
        channels={
            "train": (f"s3://{bucket}/builtin/train/", "text/csv"),
            "validation": (f"s3://{bucket}/builtin/validation/", "text/csv"),
        },
    )

    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    final = {m["MetricName"]: m["Value"] for m in desc["FinalMetricDataList"]}
    assert set(final) == {"train:auc", "validation:auc"}
    assert final["validation:auc"] > 0.85
    names = {d["Name"] for d in desc["AlgorithmSpecification"]["MetricDefinitions"]}
    assert {"train:auc", "validation:auc", "validation:rmse"} <= names
    assert list(read_tarball(s3, desc["ModelArtifacts"]["S3ModelArtifacts"])) == ["xgboost-model"]

    extraneous = training_job(
        sm,
        unique_name("xgb-extra"),
        bucket,
        image=XGBOOST_30_IMAGE,
        hyperparameters=hyperparameters,
        channels={
            "train": (f"s3://{bucket}/builtin/train/", "text/csv"),
            "test": (f"s3://{bucket}/builtin/validation/", "text/csv"),
        },
    )
    assert extraneous["TrainingJobStatus"] == "Failed"
    assert "Extraneous channel found: test" in extraneous["FailureReason"]
    missing = training_job(
        sm,
        unique_name("xgb-noround"),
        bucket,
        image=XGBOOST_30_IMAGE,
        hyperparameters={"objective": "binary:logistic"},
        channels={"train": (f"s3://{bucket}/builtin/train/", "text/csv")},
    )
    assert "Missing required hyperparameter: num_round" in missing["FailureReason"]

    model = unique_name("xgb-model")
    sm.create_model(
        ModelName=model,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": XGBOOST_30_IMAGE, "ModelDataUrl": desc["ModelArtifacts"]["S3ModelArtifacts"]},
    )
    endpoint = unique_name("xgb-ep")
    sm.create_endpoint_config(
        EndpointConfigName=endpoint,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": model,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": 1.0,
            }
        ],
    )
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=endpoint)
    try:
        status = wait_endpoint(sm, endpoint, timeout=180)
        assert status["EndpointStatus"] == "InService", status.get("FailureReason")
        rows, _ = _fraud_like_csv(5, 3, label=False)
        assert sagemaker_service.url is not None
        answer = client("sagemaker-runtime", sagemaker_service.url).invoke_endpoint(
            EndpointName=endpoint, ContentType="text/csv", Body=rows.encode()
        )
        scores = [float(line) for line in answer["Body"].read().decode().split()]
        assert answer["ContentType"] == "text/csv"
        assert len(scores) == 5
        assert all(0.0 <= s <= 1.0 for s in scores)
    finally:
        sm.delete_endpoint(EndpointName=endpoint)


# -- the project's own images (BYOC) ----------------------------------------------------------------------

BYOC_PY = """
import os, pathlib, devstack_probe
pathlib.Path("/opt/ml/processing/output/byoc.txt").write_text(devstack_probe.VERSION + " " + os.environ["PROBE_MODE"])
"""


def test_own_image_runs_in_the_environment_its_dockerfile_describes(
    sm: Any,
    s3: Any,
    logs: Any,
    bucket: str,
    unique_name: Any,
    tmp_path: Path,
    sagemaker_service: SageMakerService,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wheel = build_probe_wheel(tmp_path / "wheels")
    images = tmp_path / "images"
    (images / "probe-image").mkdir(parents=True)
    monkeypatch.setattr(sagemaker_service.images, "images_dir", images)
    monkeypatch.setattr(sagemaker_service.images, "cache", EnvironmentCache(tmp_path / "cache"))
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/probe-image:0a1b2c3"
    with loopback_index([wheel], tmp_path / "index") as index:
        (images / "probe-image" / "Dockerfile").write_text(
            "ARG REGION=us-east-1\n"
            "FROM 683313688378.dkr.ecr.${REGION}.amazonaws.com/sagemaker-scikit-learn:1.4-2-cpu-py3\n"
            f"RUN pip install --no-cache-dir --index-url {index} devstack-probe==1.0\n"
            "ENV PROBE_MODE=byoc\n"
            'ENTRYPOINT ["python3", "/opt/ml/processing/input/code/job.py"]\n'
        )
        first_name, second_name = unique_name("byoc"), unique_name("byoc-again")
        first = processing_job(sm, s3, first_name, bucket, BYOC_PY, image=image)
        second = processing_job(sm, s3, second_name, bucket, BYOC_PY, image=image)

    assert first["ProcessingJobStatus"] == "Completed", first.get("FailureReason")
    assert s3.get_object(Bucket=bucket, Key=f"{first_name}/out/byoc.txt")["Body"].read() == b"1.0 byoc"
    assert "Building the environment of probe-image" in log_text(logs, "/aws/sagemaker/ProcessingJobs", first_name)
    assert second["ProcessingJobStatus"] == "Completed", second.get("FailureReason")
    assert "Building the environment" not in log_text(logs, "/aws/sagemaker/ProcessingJobs", second_name)


def test_a_training_jobs_environment_is_built_while_it_shows_downloading(
    sm: Any,
    s3: Any,
    logs: Any,
    bucket: str,
    unique_name: Any,
    tmp_path: Path,
    sagemaker_service: SageMakerService,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    images = tmp_path / "images"
    (images / "trainer").mkdir(parents=True)
    (images / "trainer" / "Dockerfile").write_text(
        "FROM 683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3\n"
    )
    monkeypatch.setattr(sagemaker_service.images, "images_dir", images)
    monkeypatch.setattr(sagemaker_service.images, "cache", EnvironmentCache(tmp_path / "cache"))
    name = unique_name("build-status")
    sourcedir = put_sourcedir(s3, bucket, f"{name}/sourcedir.tar.gz", {"train.py": "print('trained')\n"})

    desc = training_job(
        sm,
        name,
        bucket,
        image="123456789012.dkr.ecr.us-east-1.amazonaws.com/trainer:1",
        hyperparameters={"sagemaker_program": '"train.py"', "sagemaker_submit_directory": json.dumps(sourcedir)},
        channels={"train": (f"s3://{bucket}/raw/", "text/csv")},
    )

    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    downloading = next(t for t in desc["SecondaryStatusTransitions"] if t["Status"] == "Downloading")
    assert downloading["StatusMessage"] == "Downloading the training image"
    streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{name}/")
    events = logs.get_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs",
        logStreamName=streams["logStreams"][0]["logStreamName"],
        startFromHead=True,
    )["events"]
    built = [e for e in events if e["message"].startswith(("Building the environment", "Environment of trainer"))]
    assert len(built) == 2, [e["message"] for e in events][:5]
    start, end = downloading["StartTime"].timestamp(), downloading["EndTime"].timestamp()
    assert all(start - 0.01 <= e["timestamp"] / 1000 <= end + 0.01 for e in built)
