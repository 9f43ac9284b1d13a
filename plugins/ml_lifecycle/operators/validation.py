"""Validate an extracted dataset against a Great Expectations 1.x suite; stop the run on bad data.

The validation core is ``include/code/validation/gx_validation.py``, the same file in both modes:

- ``worker``: the operator loads that file by path (at execute time, never at DAG parse time) and runs it
  here, streaming the dataset's Parquet parts from S3 one at a time (one part on local disk, one batch in
  memory);
- ``processing``: the operator uploads ``include/code/validation/`` (with ``common/``) and the suite next to
  the report, and runs ``validate.py`` in a SageMaker Processing job over the same dataset; it waits
  deferrably, then reads the job's ``validation_result.json``.

Either way the report lands under ``report_uri`` (``validation_result.json``: GX's validation-result document
plus a ``summary``; ``validation_report.html``: every expectation with its verdict and evidence), the summary
goes to XCom (key ``validation_summary``), and a failed validation raises ``AirflowFailException`` naming the
failed expectations and the report, after the report is written. great_expectations is imported only
inside ``execute``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import faulthandler
import html
import importlib.util
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from ml_lifecycle.links import S3ReportLink, persist_link
from ml_lifecycle.operators.base import JOB_ACTIVE, JOB_COMPLETED, failure_reason

if TYPE_CHECKING:
    from airflow.sdk import Context

MODES = ("worker", "processing")
CORE_MODULE = "ml_lifecycle_validation_core"
RESULT_NAME = "validation_result.json"
DOCS_NAME = "validation_report.html"
SUMMARY_XCOM_KEY = "validation_summary"


def load_validation_core() -> ModuleType:
    """``include/code/validation/gx_validation.py``, loaded by path (it is container code, not a package)."""
    if CORE_MODULE in sys.modules:
        return sys.modules[CORE_MODULE]
    from ml_lifecycle.config import include_dir

    path = include_dir() / "code" / "validation" / "gx_validation.py"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the validation core is missing from include/")
    spec = importlib.util.spec_from_file_location(CORE_MODULE, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[CORE_MODULE] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[CORE_MODULE]
        raise
    return module


def incomplete_report(
    manifest: dict[str, Any], suite_path: str, reason: str, progress: dict[str, Any], budget_seconds: int
) -> dict[str, Any]:
    """The report written when a validation stops before its verdict: what ran, how far, and why it stopped."""
    return {
        "success": False,
        "complete": False,
        "reason": reason,
        "results": [],
        "suite_path": suite_path,
        "meta": {
            "dataset_uri": manifest.get("dataset_uri"),
            "row_count": manifest.get("row_count"),
            "budget_seconds": budget_seconds,
            "progress": progress,
            "stopped_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
        "summary": {
            "success": False,
            "complete": False,
            "dataset_uri": manifest.get("dataset_uri"),
            "row_count": manifest.get("row_count"),
            "validated_rows": progress.get("rows"),
            "reason": reason,
        },
    }


def render_incomplete_html(document: dict[str, Any]) -> str:
    """A small HTML page for :func:`incomplete_report`."""
    meta = document["meta"]
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in [
            ("Dataset", meta.get("dataset_uri")),
            ("Suite", document.get("suite_path")),
            ("Rows in dataset", meta.get("row_count")),
            ("Progress", meta.get("progress")),
            ("Budget (s)", meta.get("budget_seconds")),
            ("Stopped at", meta.get("stopped_at")),
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Data validation INCOMPLETE</title>'
        "</head><body><h1>Data validation INCOMPLETE: no verdict</h1>"
        f"<p>{html.escape(document['reason'])}</p><table>{rows}</table></body></html>\n"
    )


def failure_message(summary: dict[str, Any], result_uri: str, docs_uri: str, limit: int = 20) -> str:
    """The ``AirflowFailException`` text: what failed (type, column, observed, samples) and where the report is."""
    failed = summary.get("failed") or []
    lines = [
        f"Data validation failed: {len(failed)} of {summary.get('evaluated_expectations')} expectations not met "
        f"on {summary.get('row_count')} rows of {summary.get('dataset_uri')} (suite {summary.get('suite_name')}):"
    ]
    for item in failed[:limit]:
        column = item.get("column")
        where = f"({column if isinstance(column, str) else ', '.join(column or [])})" if column else ""
        sample = f"; sample {item['sample']}" if item.get("sample") else ""
        lines.append(f"  - {item['type']}{where}: observed {item.get('observed')}{sample}")
    if len(failed) > limit:
        lines.append(f"  - ... and {len(failed) - limit} more")
    lines.append(f"Report: {result_uri} (HTML: {docs_uri})")
    return "\n".join(lines)


class DataValidationOperator(AwsBaseOperator[S3Hook]):
    """Validate the dataset at ``dataset_uri`` with the GX suite ``suite_path``; fail the run on bad data.

    Returns (XCom) ``{"success": True, "result_uri", "docs_uri", "evaluated_expectations", "row_count"}``
    (plus ``"job_name"`` in processing mode); pushes the summary under the XCom key ``validation_summary``.

    :param aws_conn_id: Airflow connection for AWS (S3, and SageMaker in processing mode)
    :param dataset_uri: prefix of an extracted dataset (``_manifest.json`` + Parquet parts) (templated)
    :param suite_path: GX 1.x ExpectationSuite JSON, relative to ``include/`` (templated)
    :param report_uri: prefix the report is written to, e.g. ``<dataset_uri>validation/`` (templated)
    :param mode: ``worker`` (validate in the Airflow worker) or ``processing`` (in a SageMaker job)
    :param batch_rows: rows per validation batch (bounds memory in either mode)
    :param timeout_seconds: worker mode: wall-clock budget of the validation (downloads included); past it no
        further batch starts, an incomplete report is written and the task fails (retryable) naming how far it got
    :param hang_grace_seconds: worker mode: if the validation is still running this long after the budget (stuck
        in native code, where no Python timeout can reach it), every thread's stack is written to the task log and
        the task process exits with status 1; ``None`` disables this backstop
    :param processing_job: for ``processing`` mode (templated): ``job_name`` (required, unique per run),
        ``role_arn``, ``image_uri``, ``instance_type`` (required); optional ``volume_size_gb`` (30),
        ``max_runtime_seconds`` (3600), ``volume_kms_key_id``, ``output_kms_key_id``,
        ``enable_network_isolation``, ``enable_inter_container_traffic_encryption``,
        ``vpc`` (``{"subnets": [...], "security_group_ids": [...]}``), ``tags`` (dict), ``install_requirements``
        (default true: pip-install great_expectations in the job when the image lacks it)
    :param check_interval: seconds between job status checks (processing mode)
    :param max_attempts: status checks before giving up waiting (processing mode)
    :param deferrable: wait for the job in the triggerer (processing mode)
    :param contract_path: the dataset contract, relative to ``include/``: a suite that lacks or contradicts an
        expectation the contract decides (column list, types, not-null, category sets) fails the task before
        any data is read
    """

    aws_hook_class = S3Hook
    template_fields: Sequence[str] = aws_template_fields("dataset_uri", "suite_path", "report_uri", "processing_job")
    template_fields_renderers = {"processing_job": "json"}
    operator_extra_links = (S3ReportLink(),)
    ui_color = "#f0e4ff"

    def __init__(
        self,
        *,
        dataset_uri: str,
        suite_path: str,
        report_uri: str,
        mode: str = "worker",
        batch_rows: int = 100_000,
        timeout_seconds: int = 1800,
        hang_grace_seconds: int | None = 300,
        processing_job: dict[str, Any] | None = None,
        check_interval: int = 30,
        max_attempts: int = 240,
        deferrable: bool = True,
        contract_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"{self.task_id}: mode must be one of {MODES}, got {mode!r}")
        if int(batch_rows) < 1:
            raise ValueError(f"{self.task_id}: batch_rows must be at least 1, got {batch_rows}")
        if int(timeout_seconds) < 1:
            raise ValueError(f"{self.task_id}: timeout_seconds must be at least 1, got {timeout_seconds}")
        if hang_grace_seconds is not None and int(hang_grace_seconds) < 1:
            raise ValueError(f"{self.task_id}: hang_grace_seconds must be at least 1 or None, got {hang_grace_seconds}")
        if mode == "processing":
            if not isinstance(processing_job, dict):
                raise ValueError(f"{self.task_id}: mode 'processing' needs processing_job settings (a dict)")
            missing = [k for k in ("job_name", "role_arn", "image_uri", "instance_type") if not processing_job.get(k)]
            if missing:
                raise ValueError(f"{self.task_id}: processing_job lacks {', '.join(missing)}")
        self.dataset_uri = dataset_uri
        self.suite_path = suite_path
        self.report_uri = report_uri
        self.mode = mode
        self.batch_rows = int(batch_rows)
        self.timeout_seconds = int(timeout_seconds)
        self.hang_grace_seconds = None if hang_grace_seconds is None else int(hang_grace_seconds)
        self.processing_job = processing_job
        self.check_interval = int(check_interval)
        self.max_attempts = int(max_attempts)
        self.deferrable = deferrable
        self.contract_path = contract_path

    # ------------------------------------------------------------------------------------------- shared

    @property
    def _report(self) -> tuple[str, str, str]:
        from ml_lifecycle.data.s3 import as_prefix, join_uri

        prefix = as_prefix(self.report_uri)
        return prefix, join_uri(prefix, RESULT_NAME), join_uri(prefix, DOCS_NAME)

    def _manifest(self) -> dict[str, Any]:
        from ml_lifecycle.data.manifest import manifest_uri, read_manifest

        client = self.hook.conn
        try:
            return read_manifest(client, self.dataset_uri)
        except client.exceptions.NoSuchKey:
            raise AirflowException(
                f"no dataset manifest at {manifest_uri(self.dataset_uri)}: the extraction of this interval has not "
                "completed (re-run the extract task)"
            ) from None

    def _finish(self, context: Context, document: dict[str, Any], **extra: Any) -> dict[str, Any]:
        from ml_lifecycle.data.s3 import split_s3_uri

        prefix, result_uri, docs_uri = self._report
        summary = {**document["summary"], "result_uri": result_uri, "docs_uri": docs_uri}
        ti = context.get("ti") if hasattr(context, "get") else None
        if ti is not None:
            ti.xcom_push(key=SUMMARY_XCOM_KEY, value=summary)
            bucket, key = split_s3_uri(prefix)
            persist_link(S3ReportLink, self, context, bucket=bucket, prefix=key)
        if not summary["success"]:
            raise AirflowFailException(failure_message(summary, result_uri, docs_uri))
        self.log.info(
            "Data validation passed: %d expectations met on %d rows; report %s",
            summary["evaluated_expectations"],
            summary["row_count"],
            docs_uri,
        )
        return {
            "success": True,
            "result_uri": result_uri,
            "docs_uri": docs_uri,
            "evaluated_expectations": summary["evaluated_expectations"],
            "row_count": summary["row_count"],
            **extra,
        }

    def _check_suite_against_contract(self) -> None:
        import json

        from ml_lifecycle.contract import ContractMismatchError, check_suite, load_contract
        from ml_lifecycle.operators.warehouse import resolve_include_path

        suite = json.loads(resolve_include_path(self.suite_path).read_text(encoding="utf-8"))
        try:
            check_suite(suite, load_contract(resolve_include_path(self.contract_path)), self.suite_path)
        except ContractMismatchError as exc:
            raise AirflowFailException(f"{exc}; python -m tools.contract --write updates the suite") from None

    def execute(self, context: Context) -> dict[str, Any]:
        from ml_lifecycle.cache import CacheError, force_requested

        if self.contract_path:
            self._check_suite_against_contract()
        try:
            force = force_requested(context.get("params"))
        except CacheError as exc:
            raise AirflowException(str(exc)) from None
        key = self._cache_key(context)
        if force:
            self.log.info("Step cache bypassed: the run's force param is true")
        elif key is not None and (reused := self._reuse(context, key)) is not None:
            return reused
        if self.mode == "worker":
            return self._remember(context, key, self._execute_worker(context))
        return self._execute_processing(context, key)

    # ------------------------------------------------------------------------------------------- step cache

    def _cache_key(self, context: Context) -> str | None:
        """The step's cache key (:func:`ml_lifecycle.cache.validation_cache_key`); ``None`` when uncacheable."""
        from ml_lifecycle.cache import dataset_digest, validation_cache_key
        from ml_lifecycle.code_package import package_component
        from ml_lifecycle.config import include_dir
        from ml_lifecycle.operators.warehouse import resolve_include_path

        try:
            manifest = self._manifest()
            digest = dataset_digest(manifest)
            query = manifest.get("query") or {}
            if digest is None or not query.get("interval_start") or not query.get("interval_end"):
                self.log.info("Step cache: the dataset has no content digest or interval; validate is not cached")
                return None
            return validation_cache_key(
                dag_id=context["dag"].dag_id,
                window_start=str(query["interval_start"]),
                window_end=str(query["interval_end"]),
                dataset=digest,
                suite=resolve_include_path(self.suite_path).read_bytes(),
                contract=resolve_include_path(self.contract_path).read_bytes() if self.contract_path else None,
                code=package_component(include_dir() / "code", "validation").files,
                mode=self.mode,
                batch_rows=self.batch_rows,
                processing_job=self.processing_job,
            )
        except AirflowException:
            raise
        except Exception as exc:  # the cache is an optimisation: the step runs without it
            self.log.warning("Step cache unavailable for validate (%s); running the step", exc)
            return None

    def _reuse(self, context: Context, key: str) -> dict[str, Any] | None:
        """A passed validation with ``key`` whose report still exists: its result, marked reused; else ``None``."""
        from ml_lifecycle.config import load_config
        from ml_lifecycle.data.s3 import get_json
        from ml_lifecycle.operators.jobs import cache_reuse

        try:
            found = cache_reuse(
                self, self.hook.conn, load_config(), dag_id=context["dag"].dag_id, step="validate", key=key
            )
            if found is None:
                return None
            record, uri = found
            summary = {
                **get_json(self.hook.conn, record.result["result_uri"])["summary"],
                "result_uri": record.result["result_uri"],
                "docs_uri": record.result["docs_uri"],
            }
        except Exception as exc:
            self.log.warning("Step cache unavailable for validate (%s); running the step", exc)
            return None
        ti = context.get("ti") if hasattr(context, "get") else None
        if ti is not None:
            from ml_lifecycle.data.s3 import as_prefix, split_s3_uri

            ti.xcom_push(key=SUMMARY_XCOM_KEY, value=summary)
            bucket, prefix = split_s3_uri(as_prefix(record.result["result_uri"].rsplit("/", 1)[0]))
            persist_link(S3ReportLink, self, context, bucket=bucket, prefix=prefix)
        return {
            **record.result,
            "cache": {
                "reused": True,
                "key": key,
                "step": "validate",
                "source_run_id": record.run_id,
                "source_job_name": record.job_name,
                "record_uri": uri,
            },
        }

    def _remember(self, context: Context, key: str | None, result: dict[str, Any]) -> dict[str, Any]:
        """Record a passed validation under ``key`` (a failed one raised before): a later equal step reuses it."""
        from ml_lifecycle.config import load_config
        from ml_lifecycle.operators.jobs import cache_remember

        record = None
        if key is not None:
            record = cache_remember(
                self,
                self.hook.conn,
                load_config(),
                dag_id=context["dag"].dag_id,
                run_id=context["run_id"],
                step="validate",
                key=key,
                # worker mode runs no job: the record names the task of the run that validated
                job_name=str(result.get("job_name") or f"{context['dag'].dag_id}.{self.task_id}"),
                result=result,
                outputs=[result["result_uri"], result["docs_uri"]],
            )
        return {**result, "cache": {"reused": False, "key": key, "step": "validate", "record_uri": record}}

    # ------------------------------------------------------------------------------------------- worker

    def _download_parts(self, manifest: dict[str, Any], folder: str) -> Iterator[str]:
        """Each part's local path in turn; the previous part is deleted before the next is downloaded."""
        from ml_lifecycle.data.s3 import split_s3_uri

        client = self.hook.conn
        for index, part in enumerate(manifest["parts"]):
            bucket, key = split_s3_uri(part["uri"])
            local = Path(folder) / f"part-{index:05d}.parquet"
            client.download_file(bucket, key, str(local))
            try:
                yield str(local)
            finally:
                local.unlink(missing_ok=True)

    def _execute_worker(self, context: Context) -> dict[str, Any]:
        from ml_lifecycle.data.s3 import put_json, put_text
        from ml_lifecycle.native import arrow_pool_warning
        from ml_lifecycle.operators.warehouse import resolve_include_path

        clock_start = time.monotonic()
        deadline = clock_start + self.timeout_seconds
        core = load_validation_core()
        if warning := arrow_pool_warning():
            self.log.warning(warning)
        suite = core.load_suite(resolve_include_path(self.suite_path))
        manifest = self._manifest()
        self.log.info(
            "Validating %d rows in %d part(s) of %s with suite %s (%d expectations), %d rows per batch",
            manifest["row_count"],
            len(manifest["parts"]),
            self.dataset_uri,
            self.suite_path,
            len(suite["expectations"]),
            self.batch_rows,
        )
        empty = None
        if not manifest["parts"]:
            import pandas as pd

            empty = pd.DataFrame({name: [] for name in manifest.get("columns", [])})
        _, result_uri, docs_uri = self._report
        client = self.hook.conn
        try:
            with tempfile.TemporaryDirectory(prefix="ml-lifecycle-validation-") as folder, self._hang_backstop():
                document = core.validate_files(
                    self._download_parts(manifest, folder),
                    suite,
                    batch_rows=self.batch_rows,
                    total_rows=manifest["row_count"],
                    dataset_uri=manifest["dataset_uri"],
                    empty_frame=empty,
                    workdir=folder,
                    deadline=deadline,
                    clock_start=clock_start,
                )
        except core.DatasetTypeError as exc:
            raise AirflowFailException(
                f"Data validation of {self.dataset_uri} cannot read the dataset in the contract's types: {exc}"
            ) from None
        except core.ValidationTimeoutError as exc:
            partial = incomplete_report(manifest, self.suite_path, str(exc), exc.progress, self.timeout_seconds)
            put_json(client, result_uri, partial)
            put_text(client, docs_uri, render_incomplete_html(partial), "text/html; charset=utf-8")
            raise AirflowException(
                f"Data validation of {self.dataset_uri} did not finish within its budget of {self.timeout_seconds} s "
                f"(timeout_seconds): {exc}. No verdict; incomplete report: {result_uri}"
            ) from None
        put_json(client, result_uri, document)
        put_text(client, docs_uri, core.render_html(document), "text/html; charset=utf-8")
        self.log.info("Wrote the validation report to %s and %s", result_uri, docs_uri)
        return self._finish(context, document)

    @contextlib.contextmanager
    def _hang_backstop(self) -> Iterator[None]:
        """Past budget + grace, dump every thread's stack to stderr (the task log) and exit the process.

        The budget itself is enforced between batches; this catches a thread stuck in native code, where
        neither that check nor Airflow's ``execution_timeout`` (a SIGALRM handled by Python) can run.
        faulthandler's watchdog is a C thread that needs no GIL.
        """
        if self.hang_grace_seconds is None:
            yield
            return
        limit = self.timeout_seconds + self.hang_grace_seconds
        self.log.info(
            "Validation budget %d s; if it is still running after %d s, the task process writes every thread's "
            "stack to its log and exits with status 1 (see docs/data-path.md, 'Known native issues')",
            self.timeout_seconds,
            limit,
        )
        sys.stderr.flush()
        faulthandler.dump_traceback_later(limit, exit=True, file=sys.stderr)
        try:
            yield
        finally:
            faulthandler.cancel_dump_traceback_later()

    # ------------------------------------------------------------------------------------------- processing

    def _sagemaker(self) -> Any:
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

        return SageMakerHook(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=self.botocore_config,
        )

    def _upload_job_inputs(self) -> tuple[str, str, str]:
        """Upload the container code and the suite under ``<report_uri>_job/``; returns (code, suite, name)."""
        from ml_lifecycle.code_package import package_component
        from ml_lifecycle.config import include_dir
        from ml_lifecycle.data.s3 import join_uri, split_s3_uri
        from ml_lifecycle.operators.warehouse import resolve_include_path

        client = self.hook.conn
        prefix, _, _ = self._report
        code_uri = join_uri(prefix, "_job/code/")
        suite_uri = join_uri(prefix, "_job/suite/")
        # the validation component as code_package ships it: its own files and common/ (the contract helpers)
        files = package_component(include_dir() / "code", "validation").files
        for name, body in files.items():
            bucket, key = split_s3_uri(join_uri(code_uri, name))
            client.put_object(Bucket=bucket, Key=key, Body=body)
        suite_file = resolve_include_path(self.suite_path)
        bucket, key = split_s3_uri(join_uri(suite_uri, suite_file.name))
        client.upload_file(str(suite_file), bucket, key)
        return code_uri, suite_uri, suite_file.name

    def build_processing_request(self, job_name: str, code_uri: str, suite_uri: str, suite_name: str) -> dict[str, Any]:
        """The ``CreateProcessingJob`` request that runs ``validate.py`` over the dataset."""
        from ml_lifecycle.builders.processing import validation_request

        report_prefix, _, _ = self._report
        return validation_request(
            dict(self.processing_job or {}),
            job_name=job_name,
            dataset_uri=self.dataset_uri,
            report_uri=report_prefix,
            code_uri=code_uri,
            suite_uri=suite_uri,
            suite_name=suite_name,
            batch_rows=self.batch_rows,
        )

    def _execute_processing(self, context: Context, key: str | None = None) -> dict[str, Any]:
        from ml_lifecycle.operators.jobs import VALIDATION, current_attempt

        manifest = self._manifest()  # fail fast, before starting a job, when the dataset is incomplete
        client = self._sagemaker().conn
        base = str(self.processing_job["job_name"])  # type: ignore[index]
        attempt = current_attempt(client, VALIDATION, context, lambda n: base if n == 1 else f"{base}-r{n}")
        name, description = attempt.name, attempt.description
        if description is not None:
            self.log.info("Re-attaching to validation job %s (%s)", name, description["ProcessingJobStatus"])
        else:
            code_uri, suite_uri, suite_name = self._upload_job_inputs()
            request = self.build_processing_request(name, code_uri, suite_uri, suite_name)
            self.log.info(
                "Starting validation job %s over %d rows of %s", name, manifest["row_count"], self.dataset_uri
            )
            if key is not None:
                self._note_key(context, name, key)
            client.create_processing_job(**request)
            description = VALIDATION.describe(client, name)
        return self._after_job(context, client, name, description)

    def _after_job(self, context: Context, client: Any, name: str, description: dict[str, Any]) -> dict[str, Any]:
        from ml_lifecycle.operators.jobs import VALIDATION, defer_until_done

        status = description["ProcessingJobStatus"]
        if status in JOB_ACTIVE and self.deferrable:
            defer_until_done(
                self, VALIDATION, name, interval=self.check_interval, attempts=self.max_attempts, kwargs={}
            )
        for _ in range(self.max_attempts):
            if status not in JOB_ACTIVE:
                break
            time.sleep(self.check_interval)
            description = VALIDATION.describe(client, name)
            status = description["ProcessingJobStatus"]
        return self._read_job_result(context, name, description)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        from airflow.providers.amazon.aws.utils import validate_execute_complete_event

        event = validate_execute_complete_event(event)
        name = event.get("job_name") or str((self.processing_job or {}).get("job_name"))
        description = self._sagemaker().describe_processing_job(name)
        return self._read_job_result(context, name, description)

    def _read_job_result(self, context: Context, name: str, description: dict[str, Any]) -> dict[str, Any]:
        from ml_lifecycle.data.s3 import get_json

        status = description["ProcessingJobStatus"]
        if status in JOB_ACTIVE:
            raise AirflowException(
                f"stopped waiting for validation job {name} after {self.check_interval * self.max_attempts} s; it is "
                f"still {status}. A retry of this task re-attaches to it."
            )
        if status != JOB_COMPLETED:
            raise AirflowException(f"validation job {name} {status}: {failure_reason(description)}")
        _, result_uri, _ = self._report
        try:
            document = get_json(self.hook.conn, result_uri)
        except self.hook.conn.exceptions.NoSuchKey:
            raise AirflowException(f"validation job {name} completed but wrote no {result_uri}") from None
        result = self._finish(context, document, job_name=name)
        return self._remember(context, self._job_key(context, name), result)

    def _note_key(self, context: Context, name: str, key: str) -> None:
        """Note the key of the job's inputs before creating it: the task that sees it complete records it."""
        from ml_lifecycle.config import load_config
        from ml_lifecycle.operators.jobs import cache_note_job

        try:
            cache_note_job(
                self.hook.conn, load_config(), dag_id=context["dag"].dag_id, step="validate", job_name=name, key=key
            )
        except Exception as exc:  # the job runs anyway; only its record is lost
            self.log.warning("Step cache: could not note the key of %s (%s); it will not be recorded", name, exc)

    def _job_key(self, context: Context, name: str) -> str | None:
        from ml_lifecycle.config import load_config
        from ml_lifecycle.operators.jobs import cache_job_key

        try:
            key = cache_job_key(
                self.hook.conn, load_config(), dag_id=context["dag"].dag_id, step="validate", job_name=name
            )
        except Exception as exc:
            self.log.warning("Step cache: could not read the key of %s (%s); not recording it", name, exc)
            return None
        if key is None:
            self.log.info("Step cache: no key noted for validation job %s; not recording it", name)
        return key
