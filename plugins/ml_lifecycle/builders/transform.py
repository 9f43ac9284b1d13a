"""``CreateTransformJob`` requests for batch scoring, and the S3 layout of one scoring interval.

Layout of the interval ``[start, end)`` (``<batch>`` = configured prefix)::

    s3://<bucket>/<batch>/<dag_id>/<YYYYMMDDTHHMM>-<YYYYMMDDTHHMM>/input/part-NNNNN.csv       model input
    s3://<bucket>/<batch>/<dag_id>/<YYYYMMDDTHHMM>-<YYYYMMDDTHHMM>/keys/part-NNNNN.csv        row keys
    s3://<bucket>/<batch>/<dag_id>/<YYYYMMDDTHHMM>-<YYYYMMDDTHHMM>/output/part-NNNNN.csv.out  predictions

The input files hold the model's feature columns in contract order, one transaction per line and no header
(``SplitType=Line``); the output has one ``<fraud_probability>,<is_fraud>`` line per input line, in order,
so line *i* of ``output/<part>.out`` belongs to line *i* of ``keys/<part>``. Re-running an interval
rewrites its own prefix. All functions are pure.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from ml_lifecycle.builders.common import BuilderError, config_tags, output_kms_key
from ml_lifecycle.naming import run_hash, sagemaker_name

if TYPE_CHECKING:
    from ml_lifecycle.config import Config


def interval_key(start: dt.datetime, end: dt.datetime) -> str:
    """``20260301T0000-20260302T0000``: the interval's S3 key segment."""
    if end <= start:
        raise BuilderError(f"the scoring interval is empty or reversed: [{start.isoformat()}, {end.isoformat()})")
    return f"{start:%Y%m%dT%H%M}-{end:%Y%m%dT%H%M}"


def batch_uri(cfg: Config, dag_id: str, start: dt.datetime, end: dt.datetime) -> str:
    """``s3://<bucket>/<batch>/<dag_id>/<interval>/`` (trailing slash)."""
    return cfg.storage.uri("batch", dag_id, interval_key(start, end)) + "/"


def transform_job_name(cfg: Config, *, dag_id: str, run_id: str, start: dt.datetime, try_number: int = 1) -> str:
    """``<prefix>-score-<YYYYMMDDHHMM>-<run hash>[-r<try>]``."""
    suffix = [f"r{try_number}"] if try_number > 1 else []
    return sagemaker_name(cfg.sagemaker.name_prefix, "score", f"{start:%Y%m%d%H%M}", run_hash(dag_id, run_id), *suffix)


def transform_request(
    cfg: Config,
    *,
    job_name: str,
    model_name: str,
    input_uri: str,
    output_uri: str,
    environment: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``CreateTransformJob``: CSV lines in, one ``text/csv`` line out per input line, assembled by line."""
    for label, uri in (("input", input_uri), ("output", output_uri)):
        if not uri.startswith("s3://"):
            raise BuilderError(f"transform {label} {uri!r} is not an s3:// URI")
    scoring = cfg.batch_scoring
    output: dict[str, Any] = {"S3OutputPath": output_uri.rstrip("/"), "Accept": "text/csv", "AssembleWith": "Line"}
    if kms := output_kms_key(cfg):
        output["KmsKeyId"] = kms
    resources: dict[str, Any] = {"InstanceType": scoring.instance_type, "InstanceCount": scoring.instance_count}
    if cfg.sagemaker.security.volume_kms_key_id:
        resources["VolumeKmsKeyId"] = cfg.sagemaker.security.volume_kms_key_id
    request: dict[str, Any] = {
        "TransformJobName": job_name,
        "ModelName": model_name,
        "MaxConcurrentTransforms": 1,
        "MaxPayloadInMB": scoring.max_payload_mb,
        "BatchStrategy": "MultiRecord",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
            "ContentType": "text/csv",
            "CompressionType": "None",
            "SplitType": "Line",
        },
        "TransformOutput": output,
        "TransformResources": resources,
        "Tags": config_tags(cfg),
    }
    if environment:
        request["Environment"] = dict(environment)
    return request
