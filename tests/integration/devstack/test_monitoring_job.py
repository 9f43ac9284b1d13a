"""The monitoring job (include/code/monitoring) as a SageMaker Processing job on the devstack, in the project's
monitoring image (include/images/ml-lifecycle-monitoring, the environment its Dockerfile describes), with the
code shipped as code_package ships it and the capture passed through an S3 manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from ml_lifecycle.code_package import package_component
from tests.integration.devstack.sagemaker_support import ROLE, wait_for
from tests.unit.include import monitoring_data as data
from tests.unit.include.conftest import CODE

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
IMAGE = yaml.safe_load((ROOT / "include" / "config" / "local.yaml").read_text())["sagemaker"]["images"]["monitoring"]
OUTPUTS = {"report.html", "summary.json", "analysis.json", "metrics.json", "drift.png", "model_quality.png"}


def _upload_folder(s3: Any, bucket: str, folder: Path, prefix: str) -> list[str]:
    keys = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        key = f"{prefix}/{path.relative_to(folder).as_posix()}"
        s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
        keys.append(key)
    return keys


def _input(name: str, uri: str, data_type: str = "S3Prefix") -> dict[str, Any]:
    return {
        "InputName": name,
        "S3Input": {
            "S3Uri": uri,
            "LocalPath": f"/opt/ml/processing/input/{name}",
            "S3DataType": data_type,
            "S3InputMode": "File",
        },
    }


def start_job(sm: Any, s3: Any, bucket: str, name: str, root: Path) -> None:
    """Upload the inputs under ``root`` and the component, and create the job (not waiting)."""
    for file, body in package_component(CODE, "monitoring").files.items():
        s3.put_object(Bucket=bucket, Key=f"{name}/code/{file}", Body=body)
    capture_keys = _upload_folder(s3, bucket, root / "capture", f"capture/{name}/fraud-endpoint/AllTraffic")
    prefix = f"s3://{bucket}/capture/{name}/fraud-endpoint/AllTraffic/"
    manifest = [{"prefix": prefix}, *(key.split("AllTraffic/", 1)[1] for key in capture_keys)]
    s3.put_object(Bucket=bucket, Key=f"{name}/capture.manifest", Body=json.dumps(manifest).encode())
    _upload_folder(s3, bucket, root / "baseline", f"{name}/baseline")
    config = json.dumps(data.monitor_config()).encode()
    s3.put_object(Bucket=bucket, Key=f"{name}/config/monitor_config.json", Body=config)
    inputs = [
        _input("config", f"s3://{bucket}/{name}/config/"),
        _input("code", f"s3://{bucket}/{name}/code/"),
        _input("capture", f"s3://{bucket}/{name}/capture.manifest", "ManifestFile"),
        _input("baseline", f"s3://{bucket}/{name}/baseline/"),
    ]
    if (root / "labels").is_dir():
        _upload_folder(s3, bucket, root / "labels", f"{name}/labels")
        inputs.append(_input("labels", f"s3://{bucket}/{name}/labels/"))
    sm.create_processing_job(
        ProcessingJobName=name,
        RoleArn=ROLE,
        AppSpecification={"ImageUri": IMAGE},
        ProcessingInputs=inputs,
        ProcessingOutputConfig={
            "Outputs": [
                {
                    "OutputName": "monitoring",
                    "S3Output": {
                        "S3Uri": f"s3://{bucket}/{name}/out",
                        "LocalPath": "/opt/ml/processing/output",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5}},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
        NetworkConfig={"EnableNetworkIsolation": True},
    )


def outputs(s3: Any, bucket: str, name: str) -> dict[str, bytes]:
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=f"{name}/out/")
    return {
        obj["Key"].rsplit("/", 1)[1]: s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        for obj in listing.get("Contents", [])
    }


def test_the_monitoring_job_finds_drift_a_recall_collapse_a_biased_segment_and_no_labels(
    sm: Any, s3: Any, bucket: str, unique_name: Any, tmp_path: Path
) -> None:
    cases = {
        "drift": data.write_inputs(tmp_path / "drift", drifted=True),
        "recall": data.write_inputs(tmp_path / "recall", recall_collapsed=True),
        "unlabelled": data.write_inputs(tmp_path / "unlabelled", labels=False),
        "biased": data.write_inputs(tmp_path / "biased", flagged_segment="small_business"),
    }
    names = {case: unique_name(f"fraud-endpoint-mon-{case}") for case in cases}
    for case, root in cases.items():
        start_job(sm, s3, bucket, names[case], root)
    results = {
        case: wait_for(lambda n=name: sm.describe_processing_job(ProcessingJobName=n), "ProcessingJobStatus", 600)
        for case, name in names.items()
    }
    for case, desc in results.items():
        assert desc["ProcessingJobStatus"] == "Completed", (case, desc.get("FailureReason"))
    files = {case: outputs(s3, bucket, name) for case, name in names.items()}
    summaries = {case: json.loads(found["summary.json"]) for case, found in files.items()}

    drift = summaries["drift"]
    assert drift["drift"]["drifted"] is True
    assert drift["drift"]["features"]["amount"]["drifted"] is True
    assert {"test", "score", "threshold"} <= set(drift["drift"]["features"]["amount"])
    assert drift["decision"]["retrain"] is True
    assert drift["decision"]["reasons"][0]["check"] == "drift"

    recall = summaries["recall"]
    assert recall["drift"]["drifted"] is False
    assert recall["model_quality"]["status"] == "breach"
    assert recall["model_quality"]["labelled"] == 300
    assert recall["model_quality"]["metrics"]["recall"] == 0.0
    assert {"check": "model_quality", "metric": "recall", "value": 0.0, "threshold": 0.5} in recall["decision"][
        "reasons"
    ]
    assert "model_quality.html" in files["recall"]
    analysis = json.loads(files["recall"]["analysis.json"])
    segments = analysis["post_training_bias_metrics"]["facets"]["customer_segment"]
    assert sorted(entry["value_or_threshold"] for entry in segments) == sorted(data.SEGMENTS)

    unlabelled = summaries["unlabelled"]
    assert unlabelled["model_quality"]["status"] == "no_labels"
    assert unlabelled["bias"]["status"] == "no_labels"
    assert unlabelled["decision"] == {"retrain": False, "reasons": [], "bias_hold": False}

    biased = summaries["biased"]
    assert biased["bias"]["status"] == "breach"
    assert ("small_business", "DPPL") in {(b["facet_value"], b["metric"]) for b in biased["bias"]["breaches"]}
    assert biased["model_quality"]["status"] == "ok"
    assert biased["decision"] == {"retrain": False, "reasons": [], "bias_hold": True}
    bias_datums = [d for d in json.loads(files["biased"]["metrics.json"]) if d["MetricName"] == "Bias"]
    assert any({"Name": "FacetValue", "Value": "small_business"} in d["Dimensions"] for d in bias_datums)

    for case, found in files.items():
        assert OUTPUTS <= set(found), case
        assert found["report.html"].lstrip()[:15].lower().startswith(b"<!doctype html"), case
        assert found["drift.png"].startswith(b"\x89PNG\r\n\x1a\n"), case
        assert found["model_quality.png"].startswith(b"\x89PNG\r\n\x1a\n"), case
        summary = summaries[case]
        assert summary["version"] == 1 and summary["endpoint"] == "fraud-endpoint"
        assert summary["interval"] == {"start": "2026-03-02T09:00:00Z", "end": "2026-03-02T10:00:00Z"}
        assert summary["rows"]["interval"] == 300
        assert {c["name"] for c in summary["data_quality"]["checks"]} >= {"records_readable", "rows_in_interval"}
        datums = json.loads(found["metrics.json"])
        assert {d["MetricName"] for d in datums} >= {"DriftShare", "FeatureDriftScore", "LabelledRows"}


def test_bad_input_fails_the_job_naming_it(sm: Any, s3: Any, bucket: str, unique_name: Any, tmp_path: Path) -> None:
    root = data.write_inputs(tmp_path / "bad", labels=False)
    baseline = (root / "baseline" / "baseline.csv").read_text().splitlines()
    header = baseline[0].split(",")
    drop = header.index("channel")
    rows = [",".join(v for i, v in enumerate(line.split(",")) if i != drop) for line in baseline]
    (root / "baseline" / "baseline.csv").write_text("\n".join(rows) + "\n")
    name = unique_name("fraud-endpoint-mon-bad")
    start_job(sm, s3, bucket, name, root)
    desc = wait_for(lambda: sm.describe_processing_job(ProcessingJobName=name), "ProcessingJobStatus", 600)
    assert desc["ProcessingJobStatus"] == "Failed"
    assert "lacks the feature column(s) channel" in desc["FailureReason"]
