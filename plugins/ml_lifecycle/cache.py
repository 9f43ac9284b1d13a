"""Step caching: a SageMaker job step whose inputs equal those of a completed step reuses its outputs.

A step's *cache key* is the SHA-256 of everything that decides what the job produces:

- the step (``preprocess``, ``train``, ...) and the DAG;
- the data interval (the run's window);
- the digest of every input dataset (:func:`dataset_digest`, from the extraction manifest's part checksums);
- the job's ``Create*`` request with what only names the run removed (:func:`cacheable_request`): the image,
  instance type and count, volume, hyperparameters and tuning ranges, environment, KMS keys, VPC and network
  settings, and the input S3 URIs, among them the content-addressed code archive (``<code>/<sha256>/``) and
  the outputs of upstream jobs (unique per job, so a step after a re-run upstream step misses).

Removed from the request: the job's name (also as the ``sagemaker_job_name`` hyperparameter), its output
locations (``S3OutputPath``, processing outputs' ``S3Uri``) and ``Tags``; these carry the run id and change
nothing the job computes.

When a job is created its key is noted under its name (``<cache>/<dag_id>/<step>/jobs/<job>.json``); when it
completes and its outputs exist, a small JSON record is written to
``s3://<bucket>/<cache>/<dag_id>/<step>/<key>.json`` naming the job, the run that started it and the step's
result (its XCom). A later step with the same key reads the record, checks that every output it names
still exists, and returns that result instead of starting a job. A record whose outputs are gone is
ignored (the step runs). The DAG param ``force: true`` bypasses the lookup; the step's record is then
replaced by the new job's.

Steps that are not one ``Create*`` request build the request part of their key here:

- data validation (:func:`validation_cache_key`, both modes): the suite, the dataset contract and the
  validation code (their content), the mode, the batch size and, in processing mode, the job settings
  (image, instance, security) without its name and tags;
- batch transform (:func:`transform_cache_key`): the transform request and the Model request of the package
  (its image, artefact and environment), so another model misses. Its output prefix is the interval's and a
  later job of another model writes there too: the record keeps each output's ETag
  (:func:`output_fingerprint`) and a reuse requires them unchanged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: bump when the key's inputs or the record's shape change: older records are then never matched
CACHE_VERSION = 1

#: request members that name the run, not the work: dropped wherever they appear
RUN_NAMING_KEYS = frozenset(
    {"ProcessingJobName", "TrainingJobName", "HyperParameterTuningJobName", "TransformJobName", "Tags"}
)
#: output locations: dropped wherever they appear (training / tuning ``OutputDataConfig``, transform output)
OUTPUT_LOCATION_KEYS = frozenset({"S3OutputPath"})
#: hyperparameters that name the job (script mode's ``sagemaker_job_name``, the SageMaker SDK's convention)
RUN_NAMING_HYPERPARAMETERS = frozenset({"sagemaker_job_name"})
_HYPERPARAMETER_KEYS = frozenset({"HyperParameters", "StaticHyperParameters"})


class CacheError(ValueError):
    """A cache input or param is unusable; the message names it."""


def force_requested(params: Mapping[str, Any] | None) -> bool:
    """The run's ``force`` param: ``True`` bypasses the step cache (absent means ``False``).

    :param params: the run's params
    :raises CacheError: ``force`` is present but not a boolean
    """
    value = (params or {}).get("force", False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise CacheError(f"param force must be a boolean (true or false), got {value!r}")
    return value


def cacheable_request(request: Any) -> Any:
    """``request`` without what only names the run (job name, tags, output locations), for the key.

    Processing outputs keep their name and local path; their ``S3Output.S3Uri`` is dropped. The
    ``sagemaker_job_name`` hyperparameter is dropped.

    :param request: a SageMaker ``Create*`` request
    """
    if isinstance(request, Mapping):
        kept: dict[str, Any] = {}
        for key, value in request.items():
            if key in RUN_NAMING_KEYS or key in OUTPUT_LOCATION_KEYS:
                continue
            if key == "S3Output" and isinstance(value, Mapping):
                value = {k: v for k, v in value.items() if k != "S3Uri"}
            elif key in _HYPERPARAMETER_KEYS and isinstance(value, Mapping):
                value = {k: v for k, v in value.items() if k not in RUN_NAMING_HYPERPARAMETERS}
            kept[key] = cacheable_request(value)
        return kept
    if isinstance(request, (list, tuple)):
        return [cacheable_request(item) for item in request]
    return request


def dataset_digest(manifest: Mapping[str, Any]) -> str | None:
    """A digest of an extracted dataset's content: its schema and each part's name, rows and checksum.

    Parts written by the stream extraction carry their SHA-256; parts Snowflake unloaded carry S3's ETag
    (an MD5 of the content for single-part uploads without SSE-KMS; with SSE-KMS it changes on every
    upload, so a re-extracted interval misses the cache). ``None`` when a part has neither (a manifest
    written before the checksums were recorded): such a dataset is never matched.

    :param manifest: the dataset's ``_manifest.json``
    """
    parts = manifest.get("parts")
    if not isinstance(parts, list):
        return None
    listed = []
    for part in parts:
        checksum = part.get("sha256") or part.get("etag")
        if not checksum:
            return None
        listed.append([part.get("name"), int(part.get("rows", 0)), checksum])
    document = {"schema": manifest.get("schema"), "row_count": manifest.get("row_count"), "parts": listed}
    return hashlib.sha256(_canonical(document).encode()).hexdigest()


def cache_key(
    *,
    dag_id: str,
    step: str,
    window_start: str,
    window_end: str,
    request: Mapping[str, Any],
    datasets: Mapping[str, str] | None = None,
) -> str:
    """The step's cache key: SHA-256 (hex) of its DAG, step, window, input dataset digests and request.

    :param dag_id: the DAG
    :param step: the step's job kind (``preprocess``, ``train``, ``tune``, ``evaluate``, ...)
    :param window_start: the data interval's start (ISO 8601)
    :param window_end: the data interval's end (ISO 8601)
    :param request: the job's ``Create*`` request (run naming is removed here)
    :param datasets: input name -> :func:`dataset_digest`
    :raises CacheError: a dataset digest is empty
    """
    for name, digest in (datasets or {}).items():
        if not digest:
            raise CacheError(f"input dataset {name!r} has no content digest")
    document = {
        "cache_version": CACHE_VERSION,
        "dag_id": dag_id,
        "step": step,
        "window": [window_start, window_end],
        "datasets": dict(sorted((datasets or {}).items())),
        "request": cacheable_request(request),
    }
    return hashlib.sha256(_canonical(document).encode()).hexdigest()


def content_digest(files: Mapping[str, bytes]) -> str:
    """SHA-256 (hex) of named file contents (name -> bytes), independent of their order."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()


def _dataset_step_key(
    dag_id: str, step: str, window_start: str, window_end: str, dataset: str, request: Mapping[str, Any]
) -> str:
    """The key of a step over the interval's extracted dataset (``dataset``: its :func:`dataset_digest`) whose
    request part is built here rather than taken from a ``Create*`` request."""
    return cache_key(
        dag_id=dag_id,
        step=step,
        window_start=window_start,
        window_end=window_end,
        request=request,
        datasets={"dataset": dataset},
    )


#: processing-mode validation settings that name the run, not the work (the job name, the tags)
_VALIDATION_RUN_NAMING = frozenset({"job_name", "tags"})


def validation_cache_key(
    *,
    dag_id: str,
    window_start: str,
    window_end: str,
    dataset: str,
    suite: bytes,
    contract: bytes | None,
    code: Mapping[str, bytes],
    mode: str,
    batch_rows: int,
    processing_job: Mapping[str, Any] | None = None,
) -> str:
    """The cache key of a data validation step (``validate``): its window, dataset and what decides its verdict.

    :param dag_id: the DAG
    :param window_start: the dataset's interval start (ISO 8601)
    :param window_end: the dataset's interval end (ISO 8601)
    :param dataset: :func:`dataset_digest` of the validated dataset
    :param suite: the GX suite file's content
    :param contract: the dataset contract's content (``None``: no contract check)
    :param code: the validation component's files (name -> content), as shipped to a processing job
    :param mode: ``worker`` or ``processing``
    :param batch_rows: rows per validation batch
    :param processing_job: processing mode's job settings (image, instance, security); its job name and tags
        are left out
    :raises CacheError: the dataset digest is empty
    """
    job = {k: v for k, v in (processing_job or {}).items() if k not in _VALIDATION_RUN_NAMING}
    request = {
        "suite": hashlib.sha256(suite).hexdigest(),
        "contract": None if contract is None else hashlib.sha256(contract).hexdigest(),
        "code": content_digest(code),
        "mode": mode,
        "batch_rows": int(batch_rows),
        "processing_job": job if mode == "processing" else None,
    }
    return _dataset_step_key(dag_id, "validate", window_start, window_end, dataset, request)


def transform_cache_key(
    *,
    dag_id: str,
    window_start: str,
    window_end: str,
    dataset: str,
    model_package_arn: str,
    model: Mapping[str, Any],
    transform: Mapping[str, Any],
    features: Iterable[str],
) -> str:
    """The cache key of a batch transform step (``transform``): interval, dataset, model and transform settings.

    :param dag_id: the DAG
    :param window_start: the scored interval's start (ISO 8601)
    :param window_end: the scored interval's end (ISO 8601)
    :param dataset: :func:`dataset_digest` of the interval's extracted dataset (the model input is made from it)
    :param model_package_arn: the package that scores
    :param model: its ``CreateModel`` request (image, artefact, environment, role)
    :param transform: the ``CreateTransformJob`` request (run naming is removed here)
    :param features: the model input's columns, in order (the contract's features)
    :raises CacheError: the dataset digest is empty
    """
    request = {
        "model_package_arn": model_package_arn,
        "model": dict(model),
        "transform": dict(transform),
        "features": list(features),
    }
    return _dataset_step_key(dag_id, "transform", window_start, window_end, dataset, request)


def output_fingerprint(client: Any, prefix: str) -> dict[str, str]:
    """``{key: ETag}`` of every object under the S3 prefix ``prefix`` (what a job wrote there)."""
    from ml_lifecycle.data.s3 import iter_objects

    return {o["Key"]: str(o.get("ETag", "")) for o in iter_objects(client, prefix.rstrip("/") + "/")}


def record_uri(bucket: str, prefix: str, *, dag_id: str, step: str, key: str) -> str:
    """``s3://<bucket>/<prefix>/<dag_id>/<step>/<key>.json``."""
    return f"s3://{bucket}/{prefix.strip('/')}/{dag_id}/{step}/{key}.json"


@dataclass(frozen=True)
class CacheRecord:
    """What a completed step left for later steps with the same key."""

    key: str
    dag_id: str
    step: str
    run_id: str
    job_name: str
    result: dict[str, Any]
    outputs: tuple[str, ...]
    created_at: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "cache_version": CACHE_VERSION,
            "key": self.key,
            "dag_id": self.dag_id,
            "step": self.step,
            "run_id": self.run_id,
            "job_name": self.job_name,
            "outputs": list(self.outputs),
            "created_at": self.created_at,
            "result": self.result,
        }

    @classmethod
    def from_dict(cls, document: Any, *, key: str) -> CacheRecord | None:
        """The record, or ``None`` when ``document`` is not a record of this version for ``key``."""
        if not isinstance(document, Mapping) or document.get("cache_version") != CACHE_VERSION:
            return None
        if document.get("key") != key or not isinstance(document.get("result"), Mapping):
            return None
        try:
            return cls(
                key=key,
                dag_id=str(document["dag_id"]),
                step=str(document["step"]),
                run_id=str(document["run_id"]),
                job_name=str(document["job_name"]),
                result=dict(document["result"]),
                outputs=tuple(str(o) for o in document.get("outputs") or ()),
                created_at=str(document.get("created_at", "")),
            )
        except KeyError:
            return None


def new_record(
    *, key: str, dag_id: str, step: str, run_id: str, job_name: str, result: Mapping[str, Any], outputs: Iterable[str]
) -> CacheRecord:
    """A record of a step that completed now."""
    return CacheRecord(
        key=key,
        dag_id=dag_id,
        step=step,
        run_id=run_id,
        job_name=job_name,
        result=dict(result),
        outputs=tuple(outputs),
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )


def output_exists(client: Any, uri: str) -> bool:
    """Whether the S3 object ``uri`` exists, or (for a prefix) any object under it.

    :param client: boto3 S3 client
    :param uri: ``s3://bucket/key`` of an object, or of a prefix (with or without the trailing slash)
    """
    from ml_lifecycle.data.s3 import object_exists, split_s3_uri

    bucket, key = split_s3_uri(uri)
    if key and not key.endswith("/") and object_exists(client, uri):
        return True
    prefix = key.rstrip("/") + "/" if key else ""
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    return bool(listed.get("KeyCount") or listed.get("Contents"))


def missing_outputs(client: Any, outputs: Iterable[str]) -> list[str]:
    """The outputs of ``outputs`` that no longer exist."""
    return [uri for uri in outputs if not output_exists(client, uri)]


def _canonical(document: Any) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


#: the ``CustomerMetadataProperties`` key prefix of a registered model's reused steps
REUSED_KEY_PREFIX = "reused:"


def reused_steps(results: Any) -> dict[str, dict[str, str]]:
    """Step -> ``{"job_name", "run_id", "key"}`` for each step result that the step cache reused.

    :param results: the step results (XComs) of a run; a JSON string of a list, a list, or ``None``; results
        of steps that did not run (``None``) and results without cache information are ignored
    :raises CacheError: ``results`` is neither
    """
    if isinstance(results, str):
        text = results.strip()
        try:
            results = json.loads(text) if text and text != "None" else []
        except json.JSONDecodeError:
            raise CacheError(f"step results must be a JSON list, got {text[:200]!r}") from None
    if results is None:
        return {}
    if not isinstance(results, (list, tuple)):
        raise CacheError(f"step results must be a list, got {type(results).__name__}")
    reused: dict[str, dict[str, str]] = {}
    for result in results:
        cache = result.get("cache") if isinstance(result, Mapping) else None
        if isinstance(cache, Mapping) and cache.get("reused"):
            reused[str(cache.get("step"))] = {
                "job_name": str(cache.get("source_job_name")),
                "run_id": str(cache.get("source_run_id")),
                "key": str(cache.get("key")),
            }
    return reused


def logged_reused_steps(results: Any, log: Any) -> dict[str, dict[str, str]]:
    """:func:`reused_steps`, each reused step also written to ``log`` (the run's summary in the task log).

    :raises CacheError: as :func:`reused_steps`
    """
    reused = reused_steps(results)
    for step, source in reused.items():
        log.info(
            "Step %s reused job %s of run %s (cache key %s)", step, source["job_name"], source["run_id"], source["key"]
        )
    return reused


def reused_metadata(reused: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """``reused:<step>`` -> ``<job name> from run <run id>`` for a model package's lineage."""
    return {f"{REUSED_KEY_PREFIX}{step}": f"{r['job_name']} from run {r['run_id']}" for step, r in reused.items()}


def reused_from_metadata(props: Mapping[str, str]) -> dict[str, str]:
    """Step -> ``<job name> from run <run id>`` read back from a model package's lineage."""
    return {k[len(REUSED_KEY_PREFIX) :]: v for k, v in props.items() if k.startswith(REUSED_KEY_PREFIX)}
