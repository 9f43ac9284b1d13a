"""``CreateProcessingJob`` requests: preprocessing (split + fit the preprocessor) and evaluation.

Container contract (SageMaker Processing, as the SDK's ``ScriptProcessor`` lays it out):

- the component's code (``include/code/<component>/``, published by :mod:`ml_lifecycle.code_package`) is
  mounted as input ``code`` at ``/opt/ml/processing/input/code/`` and run as
  ``python3 /opt/ml/processing/input/code/<script> <arguments>``;
- every other input is mounted at ``/opt/ml/processing/input/<name>/`` and every output is collected from
  ``/opt/ml/processing/output/<name>/`` at the end of the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ml_lifecycle.builders.common import (
    BuilderError,
    output_kms_key,
    processing_cluster_and_network,
    run_tags,
    s3_input,
)

if TYPE_CHECKING:
    from ml_lifecycle.config import Config
    from ml_lifecycle.naming import RunPlan

PROCESSING_ROOT = "/opt/ml/processing"
CODE_DIR = f"{PROCESSING_ROOT}/input/code"


def input_path(name: str) -> str:
    return f"{PROCESSING_ROOT}/input/{name}"


def output_path(name: str) -> str:
    return f"{PROCESSING_ROOT}/output/{name}"


@dataclass(frozen=True)
class ProcessingSpec:
    """What one processing step runs: image, script, inputs, outputs and arguments.

    :param inputs: input name -> S3 URI (prefix, or a single object)
    :param outputs: output name -> S3 URI prefix
    """

    job_name: str
    image: str
    code_uri: str
    script: str
    inputs: dict[str, str]
    outputs: dict[str, str]
    arguments: tuple[str, ...] = ()
    environment: dict[str, str] | None = None
    instance_type: str | None = None


def build_processing_request(cfg: Config, plan: RunPlan, spec: ProcessingSpec) -> dict[str, Any]:
    """The ``CreateProcessingJob`` request (also the ``config`` of ``SageMakerProcessingOperator``)."""
    if "code" in spec.inputs:
        raise BuilderError("processing input name 'code' is reserved for the job's code")
    if len(spec.inputs) + 1 > 10 or len(spec.outputs) > 10:
        raise BuilderError("SageMaker allows at most 10 processing inputs and 10 outputs")
    compute = cfg.sagemaker.processing
    security = cfg.sagemaker.security
    inputs = [s3_input("code", spec.code_uri, CODE_DIR)]
    inputs += [s3_input(name, uri, input_path(name)) for name, uri in spec.inputs.items()]
    output_config: dict[str, Any] = {
        "Outputs": [
            {
                "OutputName": name,
                "AppManaged": False,
                "S3Output": {"S3Uri": uri, "LocalPath": output_path(name), "S3UploadMode": "EndOfJob"},
            }
            for name, uri in spec.outputs.items()
        ]
    }
    if kms := output_kms_key(cfg):
        output_config["KmsKeyId"] = kms
    cluster, network = processing_cluster_and_network(
        security, spec.instance_type or compute.instance_type, compute.instance_count, compute.volume_size_gb
    )
    app: dict[str, Any] = {
        "ImageUri": spec.image,
        "ContainerEntrypoint": ["python3", f"{CODE_DIR}/{spec.script}"],
    }
    if spec.arguments:
        app["ContainerArguments"] = [str(a) for a in spec.arguments]
    request: dict[str, Any] = {
        "ProcessingJobName": spec.job_name,
        "ProcessingInputs": inputs,
        "ProcessingOutputConfig": output_config,
        "ProcessingResources": {"ClusterConfig": cluster},
        "StoppingCondition": {"MaxRuntimeInSeconds": compute.max_runtime_seconds},
        "AppSpecification": app,
        "NetworkConfig": network,
        "RoleArn": cfg.sagemaker.role_arn,
        "Tags": run_tags(cfg, plan),
    }
    if spec.environment:
        request["Environment"] = dict(spec.environment)
    return request


# ------------------------------------------------------------------------------------------- the two steps

PREPROCESS_OUTPUTS = ("train", "validation", "test", "baseline", "preprocessor")


def preprocess_request(
    cfg: Config, plan: RunPlan, *, dataset_uri: str, code_uri: str, try_number: int = 1
) -> dict[str, Any]:
    """Split the interval's dataset by time and fit the preprocessor.

    Reads the Parquet files of ``dataset_uri``; writes ``train``/``validation``/``test`` CSV splits (label
    first, no header, as XGBoost reads them), the raw training inputs (``baseline``; input columns only, so
    not the Model Monitor baseline: see :func:`evaluate_request`) and the fitted ``preprocessor`` under the
    run's ``preprocess/`` prefix.
    """
    split = cfg.training.split
    spec = ProcessingSpec(
        job_name=plan.job_name("preprocess", try_number),
        image=cfg.sagemaker.images.processing,
        code_uri=code_uri,
        script="preprocess.py",
        inputs={"data": dataset_uri},
        outputs={name: plan.job_uri("preprocess", name) + "/" for name in PREPROCESS_OUTPUTS},
        arguments=(
            "--input-dir", input_path("data"),
            "--output-root", f"{PROCESSING_ROOT}/output",
            "--validation-fraction", str(split.validation),
            "--test-fraction", str(split.test),
        ),
    )  # fmt: skip
    return build_processing_request(cfg, plan, spec)


def monitor_baseline_uri(plan: RunPlan) -> str:
    """S3 prefix of the run's Model Monitor baseline dataset (the evaluation job's ``baseline`` output)."""
    return plan.job_uri("evaluate", "baseline") + "/"


def evaluate_request(
    cfg: Config, plan: RunPlan, *, model_uri: str, test_uri: str, code_uri: str, try_number: int = 1
) -> dict[str, Any]:
    """Score the test split with the trained model; writes ``evaluation.json``, PNG plots and the Model
    Monitor baseline dataset.

    Runs on the training image (it has the model's framework installed). ``evaluation`` goes to the run's
    ``evaluation`` report prefix; ``baseline`` (``baseline.csv``: the model's CSV output columns, then its
    CSV input columns, with a header: the layout of a flattened capture record) to the run's
    ``evaluate/baseline/`` job prefix (:func:`monitor_baseline_uri`). ``analysis.json`` beside
    ``evaluation.json``: pre-training bias of the training split by ``monitoring.bias.facet``.
    """
    facet = cfg.monitoring.bias.facet
    bias_arguments: tuple[str, ...] = ("--bias-facet", facet.name)
    if facet.values_or_threshold:
        bias_arguments += ("--bias-facet-values", *facet.values_or_threshold)
    spec = ProcessingSpec(
        job_name=plan.job_name("evaluate", try_number),
        image=cfg.sagemaker.images.training,
        code_uri=code_uri,
        script="evaluate.py",
        inputs={"model": model_uri, "test": test_uri},
        outputs={"evaluation": plan.report_uri("evaluation") + "/", "baseline": monitor_baseline_uri(plan)},
        arguments=(
            "--model-dir", input_path("model"),
            "--test-dir", input_path("test"),
            "--output-dir", output_path("evaluation"),
            "--threshold", str(cfg.training.gate.decision_threshold),
            "--baseline-dir", output_path("baseline"),
            *bias_arguments,
        ),
    )  # fmt: skip
    return build_processing_request(cfg, plan, spec)


# -------------------------------------------------------------------------------------------- data validation


def validation_request(
    job: dict[str, Any],
    *,
    job_name: str,
    dataset_uri: str,
    report_uri: str,
    code_uri: str,
    suite_uri: str,
    suite_name: str,
    batch_rows: int,
) -> dict[str, Any]:
    """``CreateProcessingJob`` that runs ``include/code/validation/validate.py`` over an extracted dataset.

    :param job: the operator's ``processing_job`` settings (:func:`ml_lifecycle.dag_defaults.validation_job_settings`)
    :param report_uri: the report prefix the job's ``report`` output is uploaded to
    :param code_uri: the uploaded ``include/code/validation/`` files
    :param suite_uri: the uploaded GX suite's prefix; ``suite_name`` is its file name
    """
    from ml_lifecycle.data.s3 import as_prefix

    output: dict[str, Any] = {
        "Outputs": [
            {
                "OutputName": "report",
                "AppManaged": False,
                "S3Output": {"S3Uri": report_uri, "LocalPath": output_path("report"), "S3UploadMode": "EndOfJob"},
            }
        ]
    }
    if job.get("output_kms_key_id"):
        output["KmsKeyId"] = job["output_kms_key_id"]
    cluster: dict[str, Any] = {
        "InstanceCount": 1,
        "InstanceType": job["instance_type"],
        "VolumeSizeInGB": int(job.get("volume_size_gb") or 30),
    }
    if job.get("volume_kms_key_id"):
        cluster["VolumeKmsKeyId"] = job["volume_kms_key_id"]
    network: dict[str, Any] = {
        "EnableInterContainerTrafficEncryption": bool(job.get("enable_inter_container_traffic_encryption")),
        "EnableNetworkIsolation": bool(job.get("enable_network_isolation")),
    }
    if job.get("vpc"):
        network["VpcConfig"] = {
            "Subnets": list(job["vpc"]["subnets"]),
            "SecurityGroupIds": list(job["vpc"]["security_group_ids"]),
        }
    install = job.get("install_requirements", True) and not job.get("enable_network_isolation")
    tags = job.get("tags") or {}
    return {
        "ProcessingJobName": job_name,
        "ProcessingInputs": [
            s3_input("code", code_uri, input_path("code")),
            s3_input("data", as_prefix(dataset_uri), input_path("data")),
            s3_input("suite", suite_uri, input_path("suite")),
        ],
        "ProcessingOutputConfig": output,
        "ProcessingResources": {"ClusterConfig": cluster},
        "StoppingCondition": {"MaxRuntimeInSeconds": int(job.get("max_runtime_seconds") or 3600)},
        "AppSpecification": {
            "ImageUri": job["image_uri"],
            "ContainerEntrypoint": ["python3", f"{CODE_DIR}/validate.py"],
            "ContainerArguments": [
                "--data-dir", input_path("data"),
                "--suite", f"{input_path('suite')}/{suite_name}",
                "--output-dir", output_path("report"),
                "--batch-rows", str(batch_rows),
                "--dataset-uri", as_prefix(dataset_uri),
            ],
        },
        "Environment": {"VALIDATION_INSTALL_REQUIREMENTS": "1" if install else "0"},
        "NetworkConfig": network,
        "RoleArn": job["role_arn"],
        "Tags": [{"Key": str(k), "Value": str(v)} for k, v in tags.items()] if isinstance(tags, dict) else list(tags),
    }  # fmt: skip
