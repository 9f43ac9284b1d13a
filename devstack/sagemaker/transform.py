"""Batch transform: CreateTransformJob, DescribeTransformJob, ListTransformJobs, StopTransformJob.

A job starts the model's container (:class:`devstack.sagemaker.serving.ModelWorker`, the same inference
contract as endpoints) with ``SAGEMAKER_BATCH=true``, ``SAGEMAKER_BATCH_STRATEGY``,
``SAGEMAKER_MAX_PAYLOAD_IN_MB`` and ``SAGEMAKER_MAX_CONCURRENT_TRANSFORMS``, then for every object under
``TransformInput.DataSource.S3DataSource.S3Uri`` (a prefix or a manifest file):

- ``SplitType`` ``None`` sends the object whole; ``Line`` splits it into lines, sent one per request
  (``SingleRecord``) or packed up to ``MaxPayloadInMB`` (``MultiRecord``);
- ``CompressionType`` ``Gzip`` inputs are decompressed first;
- the answers are written to ``<S3OutputPath>/<object path>.out``: ``AssembleWith`` ``Line`` ends each answer
  with a newline, ``None`` concatenates them;
- ``DataProcessing.JoinSource`` ``Input`` joins each input line with its output line (CSV: ``input,output``;
  JSON Lines: the input object with ``SageMakerOutput``); input/output JSONPath filters other than ``$``
  are not emulated and fail the job.

An object whose request fails gets no ``.out``; the other objects are still processed and the job ends
Failed. Requests are retried ``ModelClientConfig.InvocationsMaxRetries`` times (default 3) on 5xx answers
and time-outs (``InvocationsTimeoutInSeconds``, default 600).
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
from typing import TYPE_CHECKING, Any

from devstack.sagemaker import awsio
from devstack.sagemaker.common import Listing, descriptions, echoed_members, now, pick, require, stop_wanted
from devstack.sagemaker.errors import resource_in_use, resource_not_found, validation_error
from devstack.sagemaker.jobs import RESTART_FAILURE, RunningJob, RunningJobs
from devstack.sagemaker.serving import ModelWorker, WorkerStartError, instance_id

if TYPE_CHECKING:
    from devstack.sagemaker.service_api import ServiceApi

log = logging.getLogger(__name__)

KIND = "transform-jobs"
LOG_GROUP = "/aws/sagemaker/TransformJobs"
GENERIC_FAILURE = "ClientError: See job logs for more information"
#: ListTransformJobs (its LastModifiedTime windows look at CreationTime)
LISTING = Listing(
    "TransformJobSummaries",
    "TransformJobName",
    (
        "TransformJobName",
        "TransformJobArn",
        "CreationTime",
        "TransformEndTime",
        "LastModifiedTime",
        "TransformJobStatus",
        "FailureReason",
    ),
    status_key="TransformJobStatus",
    modified_key="CreationTime",
)


class _StoppedError(Exception):
    pass


class TransformJobs:
    """The transform-job actions and their worker threads.

    :param service: the owning service.
    """

    def __init__(self, service: ServiceApi) -> None:
        self.service = service
        self.store = service.store
        self.running = RunningJobs()
        self._shutting_down = False
        self._echo = echoed_members(service, "CreateTransformJob", "DescribeTransformJob")

    def register(self) -> None:
        """Register the actions with the service."""
        self.service.register_action("CreateTransformJob", self.create_transform_job)
        self.service.register_action("DescribeTransformJob", self.describe_transform_job)
        self.service.register_action("ListTransformJobs", self.list_transform_jobs)
        self.service.register_action("StopTransformJob", self.stop_transform_job)
        self.service.on_shutdown(self.shutdown)

    # -- actions ---------------------------------------------------------------------------------

    def create_transform_job(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle CreateTransformJob."""
        name = params["TransformJobName"]
        arn = self.service.arn("transform-job", name)
        if not self.store.exists("models", params["ModelName"]):
            raise validation_error(f'Could not find model "{self.service.arn("model", params["ModelName"])}".')
        transform_input = params["TransformInput"]
        if params.get("BatchStrategy") == "SingleRecord" and transform_input.get("SplitType", "None") == "None":
            raise validation_error("BatchStrategy SingleRecord needs a SplitType other than None.")
        payload = params.get("MaxPayloadInMB", 6)
        concurrency = params.get("MaxConcurrentTransforms") or 1
        if payload * concurrency > 100:
            raise validation_error("MaxConcurrentTransforms * MaxPayloadInMB must not exceed 100.")
        if not params["TransformOutput"]["S3OutputPath"].startswith("s3://"):
            raise validation_error("TransformOutput.S3OutputPath must be an s3:// URI.")
        created = now()
        desc: dict[str, Any] = pick(params, self._echo)
        desc.update(
            {
                "TransformJobName": name,
                "TransformJobArn": arn,
                "TransformJobStatus": "InProgress",
                "CreationTime": created,
            }
        )
        if not self.store.insert_new(KIND, name, {"desc": desc, "request": params}):
            raise resource_in_use(
                "Transform job names must be unique within an AWS account and region, and a transform job with "
                f"this name already exists ({arn})"
            )
        self.service.set_tags(arn, params.get("Tags"))
        job = self.running.add(name)
        job.thread = threading.Thread(target=self._run, args=(name, job), name=f"transform-{name}", daemon=True)
        job.thread.start()
        return {"TransformJobArn": arn}

    def describe_transform_job(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle DescribeTransformJob (unknown names: ValidationException)."""
        name = params["TransformJobName"]
        missing = validation_error(f"Could not find requested job with name {name}")
        return require(self.store.get(KIND, name), missing)["desc"]

    def list_transform_jobs(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle ListTransformJobs."""
        return LISTING.answer(descriptions(self.store, KIND), params)

    def stop_transform_job(self, params: dict[str, Any]) -> None:
        """Handle StopTransformJob: Stopping, then Stopped after the current request."""
        name = params["TransformJobName"]
        with self.store.lock:
            record = require(
                self.store.get(KIND, name), resource_not_found(f"Could not find requested job with name {name}")
            )
            if not stop_wanted(record["desc"]["TransformJobStatus"], "transform"):
                return
            self._update(name, TransformJobStatus="Stopping")
        job = self.running.get(name)
        if job is not None:
            job.stop_requested.set()

    # -- state -----------------------------------------------------------------------------------

    def _update(self, name: str, **members: Any) -> None:
        def change(record: dict[str, Any]) -> None:
            record["desc"].update({k: v for k, v in members.items() if v is not None})

        self.store.update(KIND, name, change)

    def _finish(self, name: str, status: str, reason: str | None = None) -> None:
        self._update(
            name, TransformJobStatus=status, TransformEndTime=now(), FailureReason=reason[:1024] if reason else None
        )

    def recover(self) -> None:
        """Fail the jobs that were running when the service stopped."""
        for record in self.store.values(KIND):
            if record["desc"]["TransformJobStatus"] in ("InProgress", "Stopping"):
                self._finish(record["desc"]["TransformJobName"], "Failed", RESTART_FAILURE)

    def shutdown(self) -> None:
        """Stop the running jobs (they end Failed: the service stopped)."""
        self._shutting_down = True
        for job in self.running.all():
            job.stop_requested.set()
        for job in self.running.all():
            if job.thread is not None:
                job.thread.join(timeout=30)

    # -- worker ----------------------------------------------------------------------------------

    def _run(self, name: str, job: RunningJob) -> None:
        record = self.store.get(KIND, name)
        assert record is not None
        request = record["request"]
        worker: ModelWorker | None = None
        try:
            fault = self.service.faults.take_job_fault(name)
            if fault.delay_seconds and job.stop_requested.wait(fault.delay_seconds):
                raise _StoppedError
            if fault.fail_reason:
                self._finish(name, "Failed", fault.fail_reason)
                return
            self._check_supported(request)
            env = self._environment(request)
            worker = ModelWorker(
                self.service,
                request["ModelName"],
                self.service.sandbox(KIND, name),
                LOG_GROUP,
                f"{name}/{instance_id()}",
                extra_env=env,
            )
            worker.start()
            self._update(name, TransformStartTime=now())
            failures = self._transform(job, worker, request)
            if failures:
                total, first = failures
                self._finish(name, "Failed", f"{GENERIC_FAILURE}. {total} input object(s) failed; first: {first}")
            else:
                self._finish(name, "Completed")
        except _StoppedError:
            self._finish(
                name, "Failed" if self._shutting_down else "Stopped", RESTART_FAILURE if self._shutting_down else None
            )
        except WorkerStartError as exc:
            self._finish(name, "Failed", exc.reason)
        except _UnsupportedError as exc:
            self._finish(name, "Failed", f"ClientError: {exc}")
        except Exception as exc:
            log.exception("Transform job %s failed inside the devstack", name)
            self._finish(name, "Failed", f"InternalServerError: {type(exc).__name__}: {exc}")
        finally:
            if worker is not None:
                worker.stop()
            self.running.remove(name)

    @staticmethod
    def _check_supported(request: dict[str, Any]) -> None:
        split = request["TransformInput"].get("SplitType", "None")
        if split not in ("None", "Line"):
            raise _UnsupportedError(f"SplitType {split} is not emulated by the devstack (use None or Line).")
        processing = request.get("DataProcessing") or {}
        for key in ("InputFilter", "OutputFilter"):
            if processing.get(key, "$") != "$":
                raise _UnsupportedError(
                    f"DataProcessing.{key} {processing[key]!r} is not emulated by the devstack (only $)."
                )
        if processing.get("JoinSource", "None") == "Input" and split != "Line":
            raise _UnsupportedError("DataProcessing.JoinSource Input needs SplitType Line in the devstack.")

    @staticmethod
    def _environment(request: dict[str, Any]) -> dict[str, str]:
        strategy = request.get("BatchStrategy") or "MultiRecord"
        env = {
            "SAGEMAKER_BATCH": "true",
            "SAGEMAKER_MAX_PAYLOAD_IN_MB": str(request.get("MaxPayloadInMB", 6)),
            "SAGEMAKER_BATCH_STRATEGY": "SINGLE_RECORD" if strategy == "SingleRecord" else "MULTI_RECORD",
            "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": str(request.get("MaxConcurrentTransforms") or 1),
        }
        env.update(request.get("Environment") or {})
        return env

    def _objects(self, request: dict[str, Any]) -> list[tuple[str, str, str]]:
        """(bucket, key, relative output name) of every input object."""
        source = request["TransformInput"]["DataSource"]["S3DataSource"]
        s3 = self.service.client("s3")
        uri = source["S3Uri"]
        if source.get("S3DataType", "S3Prefix") == "ManifestFile":
            bucket, key = awsio.parse_s3_uri(uri)
            manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            prefix_bucket, prefix = awsio.parse_s3_uri(manifest[0]["prefix"])
            return [(prefix_bucket, prefix + rel, rel) for rel in manifest[1:]]
        bucket, prefix = awsio.parse_s3_uri(uri)
        return [(bucket, o["Key"], awsio.relative_key(prefix, o["Key"])) for o in awsio.list_objects(s3, uri)]

    def _transform(self, job: RunningJob, worker: ModelWorker, request: dict[str, Any]) -> tuple[int, str] | None:
        s3 = self.service.client("s3")
        transform_input = request["TransformInput"]
        output = request["TransformOutput"]
        try:
            objects = self._objects(request)
        except Exception as exc:
            raise _UnsupportedError(
                f"Cannot list the input {transform_input['DataSource']['S3DataSource']['S3Uri']}: {exc}"
            ) from exc
        if not objects:
            raise _UnsupportedError(
                f"No S3 objects found under {transform_input['DataSource']['S3DataSource']['S3Uri']}."
            )
        out_bucket, out_prefix = awsio.parse_s3_uri(output["S3OutputPath"])
        if out_prefix and not out_prefix.endswith("/"):
            out_prefix += "/"
        failed: list[str] = []
        for bucket, key, relative in objects:
            if job.stop_requested.is_set():
                raise _StoppedError
            try:
                data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                if transform_input.get("CompressionType") == "Gzip":
                    data = gzip.decompress(data)
                body = self._transform_object(job, worker, request, data)
            except _StoppedError:
                raise
            except _ObjectError as exc:
                log.warning("Transform of s3://%s/%s failed: %s", bucket, key, exc)
                failed.append(f"s3://{bucket}/{key}: {exc}")
                continue
            s3.put_object(Bucket=out_bucket, Key=f"{out_prefix}{relative}.out", Body=body)
        return (len(failed), failed[0][:700]) if failed else None

    def _transform_object(self, job: RunningJob, worker: ModelWorker, request: dict[str, Any], data: bytes) -> bytes:
        transform_input = request["TransformInput"]
        split = transform_input.get("SplitType", "None")
        max_payload = int(request.get("MaxPayloadInMB", 6) * 1024 * 1024) or None
        strategy = request.get("BatchStrategy") or "MultiRecord"
        records = [line for line in data.split(b"\n") if line.strip()] if split == "Line" else [data]
        batches: list[list[bytes]] = []
        for record in records:
            if max_payload and len(record) > max_payload:
                raise _ObjectError(f"a record of {len(record)} bytes exceeds MaxPayloadInMB")
            if strategy == "SingleRecord" or split == "None" or not batches:
                batches.append([record])
                continue
            current = batches[-1]
            size = sum(len(r) + 1 for r in current) + len(record)
            if max_payload and size > max_payload:
                batches.append([record])
            else:
                current.append(record)
        assemble = request["TransformOutput"].get("AssembleWith", "None")
        join = (request.get("DataProcessing") or {}).get("JoinSource", "None") == "Input"
        parts: list[bytes] = []
        for batch in batches:
            if job.stop_requested.is_set():
                raise _StoppedError
            answer = self._invoke(worker, request, b"\n".join(batch))
            if join:
                answer = self._join(batch, answer)
            if assemble == "Line" and not answer.endswith(b"\n"):
                answer += b"\n"
            parts.append(answer)
        return b"".join(parts)

    def _invoke(self, worker: ModelWorker, request: dict[str, Any], body: bytes) -> bytes:
        client_config = request.get("ModelClientConfig") or {}
        timeout = float(client_config.get("InvocationsTimeoutInSeconds", 600))
        retries = int(client_config.get("InvocationsMaxRetries", 3))
        content_type = request["TransformInput"].get("ContentType")
        accept = request["TransformOutput"].get("Accept")
        result = None
        for _ in range(retries + 1):
            result = worker.invoke(body, content_type, accept, timeout=timeout)
            if 200 <= result.status < 300:
                return result.body
            if 400 <= result.status < 500:
                break
        assert result is not None
        text = result.body.decode("utf-8", errors="replace").strip().splitlines()
        raise _ObjectError(f"the model answered {result.status}: {text[0] if text else ''}")

    @staticmethod
    def _join(batch: list[bytes], answer: bytes) -> bytes:
        outputs = [line for line in answer.split(b"\n") if line.strip()]
        if len(outputs) != len(batch):
            raise _ObjectError(
                f"JoinSource Input needs one output line per input record ({len(outputs)} for {len(batch)})"
            )
        joined = []
        for record, out in zip(batch, outputs, strict=True):
            stripped = record.strip()
            if stripped.startswith(b"{"):
                obj = json.loads(stripped)
                try:
                    obj["SageMakerOutput"] = json.loads(out)
                except ValueError:
                    obj["SageMakerOutput"] = out.decode("utf-8", errors="replace")
                joined.append(json.dumps(obj).encode())
            else:
                joined.append(stripped + b"," + out.strip())
        return b"\n".join(joined)


class _UnsupportedError(Exception):
    pass


class _ObjectError(Exception):
    pass
