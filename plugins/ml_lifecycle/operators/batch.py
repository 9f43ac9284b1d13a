"""Batch scoring of one data interval: model input from the extracted features, transform job, load back.

- ``PrepareBatchInputOperator``: reads the interval's Parquet parts (from the extraction manifest) and
  writes, per part, the model input (feature columns in contract order, no header, booleans as 0/1) and
  the row keys (``transaction_id``, ``event_ts``) to the interval's batch prefix.
- ``BatchTransformJobOperator``: creates the SageMaker Model of the approved package (if absent) and a
  transform job over the input prefix; deferrable, re-attaches to its run's job on retry, fails with the
  job's ``FailureReason``.
- ``LoadPredictionsOperator``: joins each output line to its key line and replaces the interval's rows in
  the Snowflake predictions table in ONE transaction (``DELETE`` the interval, then a bulk ``COPY INTO`` of
  one Parquet file ``PUT`` to a temporary internal stage), so re-running an interval never duplicates rows
  and never touches other intervals.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from ml_lifecycle.links import SageMakerTransformJobLink
from ml_lifecycle.operators.base import JOB_ACTIVE, HostingOperatorBase
from ml_lifecycle.operators.jobs import TRANSFORM, completed_or_defer, current_attempt, resumed_description
from ml_lifecycle.operators.warehouse import SnowflakeS3OperatorBase

if TYPE_CHECKING:
    import pyarrow as pa
    from airflow.sdk import Context

SCHEMA_PATH = "code/common/features_schema.json"
DDL_PATH = "sql/predictions_table.sql"
DELETE_PATH = "sql/predictions_delete.sql"
COPY_PATH = "sql/predictions_copy.sql"
#: The predictions file's columns, as the table names them (``include/sql/predictions_table.sql``).
PREDICTION_COLUMNS = (
    "TRANSACTION_ID",
    "EVENT_TS",
    "FRAUD_PROBABILITY",
    "IS_FRAUD_PREDICTED",
    "MODEL_PACKAGE_ARN",
    "MODEL_VERSION",
    "INTERVAL_START",
    "INTERVAL_END",
    "DAG_RUN_ID",
    "SCORED_AT",
)


def _naive_utc(name: str, value: Any) -> dt.datetime:
    from ml_lifecycle.operators.warehouse import parse_instant

    return parse_instant(name, value)


def _render_table(sql: str, table: str) -> str:
    """Put the (config-validated) fully qualified table name into a statement; values are always bound."""
    parts = table.split(".")
    if not 1 <= len(parts) <= 3 or not all(p.replace("_", "").replace("$", "").isalnum() for p in parts):
        raise AirflowFailException(f"predictions table {table!r} is not a valid Snowflake identifier")
    body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return body.replace("{table}", table).strip()


def _read_include(relative: str) -> str:
    from ml_lifecycle.operators.warehouse import resolve_include_path

    return resolve_include_path(relative).read_text(encoding="utf-8")


def feature_columns(schema_path: str = SCHEMA_PATH) -> tuple[list[str], list[str], dict[str, str]]:
    """``(features, keys, kinds)`` from the dataset contract (``include/code/common/features_schema.json``)."""
    contract = json.loads(_read_include(schema_path))
    kinds = {c["name"]: c.get("kind", "") for c in contract.get("columns", [])}
    return list(contract["features"]), list(contract["keys"]), kinds


def _cell(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == "boolean" or isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _key_cell(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return "" if value is None else str(value)


class PrepareBatchInputOperator(AwsBaseOperator[S3Hook]):
    """Turn the interval's extracted Parquet parts into transform input CSVs and key CSVs.

    XCom: ``{"input_uri", "keys_uri", "parts": [name], "row_count", "features"}``.

    :param dataset_uri: the extracted dataset prefix (templated; its ``_manifest.json`` lists the parts)
    :param batch_uri: the interval's batch prefix (templated)
    :param schema_path: the dataset contract under ``include/``
    """

    aws_hook_class = S3Hook
    template_fields: Sequence[str] = aws_template_fields("dataset_uri", "batch_uri")

    def __init__(self, *, dataset_uri: str, batch_uri: str, schema_path: str = SCHEMA_PATH, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dataset_uri = dataset_uri
        self.batch_uri = batch_uri
        self.schema_path = schema_path

    def execute(self, context: Context) -> dict[str, Any]:
        import pyarrow.parquet as pq

        from ml_lifecycle.data.manifest import read_manifest
        from ml_lifecycle.data.parquet import SchemaError, conform_decimals
        from ml_lifecycle.data.s3 import as_prefix, delete_keys, iter_objects, join_uri, put_text, split_s3_uri

        s3 = self.hook.get_conn()
        features, keys, kinds = feature_columns(self.schema_path)
        manifest = read_manifest(s3, self.dataset_uri)
        missing = [c for c in (*features, *keys) if c not in manifest.get("columns", [])]
        if missing:
            raise AirflowFailException(f"dataset {self.dataset_uri} lacks column(s) {', '.join(missing)}")
        base = as_prefix(self.batch_uri)
        input_uri, keys_uri = join_uri(base, "input/"), join_uri(base, "keys/")
        for prefix in (input_uri, keys_uri):
            bucket, _ = split_s3_uri(prefix)
            stale = [o["Key"] for o in iter_objects(s3, prefix)]
            if stale:
                self.log.info("Removing %d file(s) of an earlier run under %s", len(stale), prefix)
                delete_keys(s3, bucket, stale)
        parts, rows = [], 0
        for part in manifest.get("parts", []):
            bucket, key = split_s3_uri(part["uri"])
            table = pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
            try:
                table = conform_decimals(table)  # an unloaded part stores NUMBER columns as DECIMAL
            except SchemaError as exc:
                raise AirflowFailException(f"dataset part {part['uri']}: {exc}") from None
            if table.num_rows == 0:
                continue
            name = Path(part["name"]).stem + ".csv"
            columns = {c: table.column(c).to_pylist() for c in (*features, *keys)}
            model_input, key_lines = io.StringIO(), io.StringIO()
            model_writer, key_writer = (
                csv.writer(model_input, lineterminator="\n"),
                csv.writer(key_lines, lineterminator="\n"),
            )
            for i in range(table.num_rows):
                model_writer.writerow([_cell(columns[c][i], kinds.get(c, "")) for c in features])
                key_writer.writerow([_key_cell(columns[c][i]) for c in keys])
            put_text(s3, join_uri(input_uri, name), model_input.getvalue(), "text/csv")
            put_text(s3, join_uri(keys_uri, name), key_lines.getvalue(), "text/csv")
            parts.append(name)
            rows += table.num_rows
        if not parts:
            raise AirflowFailException(f"dataset {self.dataset_uri} has no rows to score")
        self.log.info("Prepared %d rows in %d part(s) under %s", rows, len(parts), input_uri)
        return {"input_uri": input_uri, "keys_uri": keys_uri, "parts": parts, "row_count": rows, "features": features}


class BatchTransformJobOperator(HostingOperatorBase):
    """Score the interval's input with an approved model package in a SageMaker batch transform job.

    The job is named after the run (``<prefix>-score-<interval start>-<run hash>``); a retry re-attaches to
    it while it runs or has completed, and starts ``-r<try>`` after a failure (its output prefix cleared).

    Step cache (:mod:`ml_lifecycle.cache`): when the run has no job of its own (or its job scored with another
    model), a completed transform job with the same key (interval, dataset digest, model package and its Model
    request, transform settings, model input columns) whose output files are still the ones it wrote is reused:
    no job is started. The run's ``force`` param bypasses the lookup.

    XCom: ``{"job_name", "job_arn", "status", "model_name", "model_package_arn", "model_package_version",
    "input_uri", "output_uri", "cache"}``.

    :param model_package_arn: the Approved model package (templated)
    :param input_uri: prefix of the input CSVs (templated)
    :param output_uri: prefix for the ``.out`` files (templated)
    :param interval_start: start of the scored interval (templated; names the job)
    :param interval_end: end of the scored interval (templated; part of the cache key, default the run's
        ``data_interval_end``)
    :param dataset_uri: the interval's extracted dataset the input was made from (templated; its manifest's
        content digest is part of the cache key); ``None`` turns the step cache off
    """

    template_fields: Sequence[str] = aws_template_fields(
        "model_package_arn", "input_uri", "output_uri", "interval_start", "interval_end", "dataset_uri"
    )
    operator_extra_links = (SageMakerTransformJobLink(),)

    def __init__(
        self,
        *,
        model_package_arn: str,
        input_uri: str,
        output_uri: str,
        interval_start: Any,
        interval_end: Any = None,
        dataset_uri: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_package_arn = model_package_arn
        self.input_uri = input_uri
        self.output_uri = output_uri
        self.interval_start = interval_start
        self.interval_end = interval_end
        self.dataset_uri = dataset_uri

    def _result(self, description: dict[str, Any], version: Any) -> dict[str, Any]:
        return {
            "job_name": description["TransformJobName"],
            "job_arn": description["TransformJobArn"],
            "status": description["TransformJobStatus"],
            "model_name": description.get("ModelName"),
            "model_package_arn": self.model_package_arn,
            "model_package_version": version,
            "input_uri": self.input_uri,
            "output_uri": self.output_uri.rstrip("/") + "/",
        }

    def execute(self, context: Context) -> dict[str, Any]:
        from ml_lifecycle.builders.endpoint import model_request, package_version
        from ml_lifecycle.builders.transform import transform_job_name, transform_request
        from ml_lifecycle.cache import CacheError, force_requested
        from ml_lifecycle.data.s3 import delete_keys, iter_objects, split_s3_uri

        try:
            force = force_requested(context.get("params"))
        except CacheError as exc:
            raise AirflowException(str(exc)) from None
        cfg = self._config()
        package = self.describe_package(self.model_package_arn)
        if package.get("ModelApprovalStatus") != "Approved":
            raise AirflowFailException(f"model package {self.model_package_arn} is not Approved")
        version = package_version(package)
        start = _naive_utc("interval_start", self.interval_start)
        dag_id, run_id = context["dag"].dag_id, context["run_id"]

        def job_name(number: int) -> str:
            return transform_job_name(cfg, dag_id=dag_id, run_id=run_id, start=start, try_number=number)

        attempt = current_attempt(self.sagemaker, TRANSFORM, context, job_name)
        name, description = attempt.name, attempt.description
        model_name = model_request(cfg, package)["ModelName"]
        if description is not None and description.get("ModelName") != model_name:
            # the run was re-processed after the model to score with changed: its earlier job's output is
            # another model's, so a new attempt scores the day again
            if description["TransformJobStatus"] in JOB_ACTIVE:
                raise AirflowException(
                    f"transform job {name} of this run is still running with model {description.get('ModelName')}; "
                    f"the run now scores with {model_name}: a retry starts its job once that one has ended"
                )
            number = attempt.number + 1
            while TRANSFORM.describe_or_none(self.sagemaker, job_name(number)) is not None:
                number += 1
            self.log.info(
                "Transform job %s of this run scored with model %s; this run scores with %s: starting %s",
                name,
                description.get("ModelName"),
                model_name,
                job_name(number),
            )
            name, description = job_name(number), None
        if description is not None:
            self.log.info("Re-attaching to transform job %s (%s)", name, description["TransformJobStatus"])
        else:
            key = self._cache_key(context, cfg, package, start)
            if force:
                self.log.info("Step cache bypassed: the run's force param is true")
            elif key is not None and (reused := self._reuse(context, cfg, key)) is not None:
                return reused
            s3 = self.hook.s3_hook.get_conn()
            bucket, _ = split_s3_uri(self.output_uri)
            stale = [o["Key"] for o in iter_objects(s3, self.output_uri.rstrip("/") + "/")]
            if stale:
                self.log.info("Removing %d output file(s) of an earlier job under %s", len(stale), self.output_uri)
                delete_keys(s3, bucket, stale)
            model = self.ensure_model(cfg, package)
            request = transform_request(
                cfg, job_name=name, model_name=model, input_uri=self.input_uri, output_uri=self.output_uri
            )
            if key is not None:
                self._note_key(context, cfg, name, key)
            self.log.info("Starting transform job %s with %s over %s", name, model, self.input_uri)
            self.sagemaker.create_transform_job(**request)
            description = TRANSFORM.describe(self.sagemaker, name)
        self.persist_link(SageMakerTransformJobLink, context, job_name=name)
        description = completed_or_defer(self, TRANSFORM, name, description, cfg, kwargs={"version": version})
        return self._completed(context, cfg, description, version)

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, version: Any = None
    ) -> dict[str, Any]:
        _, description = resumed_description(self.sagemaker, TRANSFORM, event)
        return self._completed(context, self._config(), description, version)

    # ------------------------------------------------------------------------------------------ step cache

    def _cache_key(self, context: Context, cfg: Any, package: dict[str, Any], start: dt.datetime) -> str | None:
        """The step's cache key (:func:`ml_lifecycle.cache.transform_cache_key`); ``None`` when uncacheable."""
        from ml_lifecycle.builders.endpoint import model_request
        from ml_lifecycle.builders.transform import transform_request
        from ml_lifecycle.cache import dataset_digest, transform_cache_key
        from ml_lifecycle.data.manifest import read_manifest

        if not self.dataset_uri:
            self.log.info("Step cache: no dataset_uri given; transform is not cached")
            return None
        try:
            digest = dataset_digest(read_manifest(self.hook.s3_hook.get_conn(), self.dataset_uri))
            if digest is None:
                self.log.info("Step cache: %s has no content digest; transform is not cached", self.dataset_uri)
                return None
            end = self.interval_end if self.interval_end is not None else context["data_interval_end"]
            model = model_request(cfg, package)
            return transform_cache_key(
                dag_id=context["dag"].dag_id,
                window_start=start.isoformat(),
                window_end=_naive_utc("interval_end", end).isoformat(),
                dataset=digest,
                model_package_arn=self.model_package_arn,
                model=model,
                transform=transform_request(
                    cfg,
                    job_name="-",
                    model_name=model["ModelName"],
                    input_uri=self.input_uri,
                    output_uri=self.output_uri,
                ),
                features=feature_columns()[0],
            )
        except Exception as exc:  # the cache is an optimisation: the step runs without it
            self.log.warning("Step cache unavailable for transform (%s); running the step", exc)
            return None

    def _reuse(self, context: Context, cfg: Any, key: str) -> dict[str, Any] | None:
        """A completed transform with ``key`` whose output files are those it wrote: its result; else ``None``."""
        from ml_lifecycle.cache import output_fingerprint
        from ml_lifecycle.operators.jobs import cache_reuse

        s3 = self.hook.s3_hook.get_conn()
        try:
            found = cache_reuse(self, s3, cfg, dag_id=context["dag"].dag_id, step="transform", key=key)
            if found is None:
                return None
            record, uri = found
            written = record.result.get("output_files")
            now = output_fingerprint(s3, record.result["output_uri"])
        except Exception as exc:
            self.log.warning("Step cache unavailable for transform (%s); running the step", exc)
            return None
        if not written or now != written:
            self.log.warning(
                "Step cache: the output of transform job %s under %s was replaced since it completed (another "
                "model scored the interval); running the step",
                record.job_name,
                record.result["output_uri"],
            )
            return None
        self.persist_link(SageMakerTransformJobLink, context, job_name=record.job_name)
        result = {k: v for k, v in record.result.items() if k != "output_files"}
        return {
            **result,
            "cache": {
                "reused": True,
                "key": key,
                "step": "transform",
                "source_run_id": record.run_id,
                "source_job_name": record.job_name,
                "record_uri": uri,
            },
        }

    def _note_key(self, context: Context, cfg: Any, name: str, key: str) -> None:
        from ml_lifecycle.operators.jobs import cache_note_job

        try:
            cache_note_job(
                self.hook.s3_hook.get_conn(),
                cfg,
                dag_id=context["dag"].dag_id,
                step="transform",
                job_name=name,
                key=key,
            )
        except Exception as exc:  # the job runs anyway; only its record is lost
            self.log.warning("Step cache: could not note the key of %s (%s); it will not be recorded", name, exc)

    def _completed(self, context: Context, cfg: Any, description: dict[str, Any], version: Any) -> dict[str, Any]:
        """The completed job's result, recorded in the step cache under the key noted when it was created."""
        from ml_lifecycle.cache import output_fingerprint
        from ml_lifecycle.operators.jobs import cache_job_key, cache_remember

        result = self._result(description, version)
        name, key, record = result["job_name"], None, None
        try:
            s3 = self.hook.s3_hook.get_conn()
            dag_id = context["dag"].dag_id
            key = cache_job_key(s3, cfg, dag_id=dag_id, step="transform", job_name=name)
            if key is None:
                self.log.info("Step cache: no key noted for transform job %s; not recording it", name)
            else:
                files = output_fingerprint(s3, result["output_uri"])
                record = cache_remember(
                    self,
                    s3,
                    cfg,
                    dag_id=dag_id,
                    run_id=context["run_id"],
                    step="transform",
                    key=key,
                    job_name=name,
                    result={**result, "output_files": files},
                    outputs=[result["output_uri"]],
                )
        except Exception as exc:  # the job completed; a record that cannot be written costs only a later re-run
            self.log.warning("Step cache: could not record transform job %s (%s)", name, exc)
        return {**result, "cache": {"reused": False, "key": key, "step": "transform", "record_uri": record}}


def _predictions_schema() -> pa.Schema:
    """The predictions file's schema: the table's column names, Parquet types Snowflake loads into them."""
    import pyarrow as pa

    ts = pa.timestamp("us")
    types = (pa.string(), ts, pa.float64(), pa.int8(), pa.string(), pa.int64(), ts, ts, pa.string(), ts)
    return pa.schema(list(zip(PREDICTION_COLUMNS, types, strict=True)))


def _read_csv(data: bytes) -> pa.Table:
    """Lines of comma-separated text values as an Arrow table of strings (``f0``, ``f1``...); blank lines skipped.

    :raises AirflowFailException: lines that are not CSV or have different numbers of values
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if not data.strip():
        return pa.table({})
    try:
        return pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(autogenerate_column_names=True),
            convert_options=pacsv.ConvertOptions(column_types={f"f{i}": pa.string() for i in range(64)}),
        )
    except pa.ArrowInvalid as exc:
        raise AirflowFailException(f"unreadable CSV lines: {exc}") from None


def _event_times(values: pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
    """ISO 8601 key timestamps as naive UTC ``timestamp[us]`` (an offset, if any, is converted to UTC)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        return pc.cast(values, pa.timestamp("us"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array([_naive_utc("event_ts", v) for v in values.to_pylist()], type=pa.timestamp("us"))


def _predictions_parquet(table: pa.Table, path: Path) -> None:
    """Write the predictions as one Parquet file."""
    import pyarrow.parquet as pq

    pq.write_table(table, path, compression="snappy")


def _load_stage(table: str) -> str:
    """A temporary stage name, unique to this load, in the predictions table's database and schema."""
    import uuid

    name = f"ML_PREDICTIONS_LOAD_{uuid.uuid4().hex[:16].upper()}"
    return ".".join([*table.split(".")[:-1], name])


class LoadPredictionsOperator(SnowflakeS3OperatorBase):
    """Replace the interval's predictions in Snowflake (delete the interval, bulk load; one transaction).

    The rows are written to one Parquet file, ``PUT`` to a temporary internal stage (outside the
    transaction: a file transfer, not DML), then ``DELETE`` of the interval and ``COPY INTO`` from the stage
    run in one transaction. ``COPY`` reports the rows it loaded; a count that differs from the rows written
    rolls the transaction back. The stage is dropped afterwards (a temporary stage also ends with the session).

    Rows: ``TRANSACTION_ID, EVENT_TS, FRAUD_PROBABILITY, IS_FRAUD_PREDICTED, MODEL_PACKAGE_ARN,
    MODEL_VERSION, INTERVAL_START, INTERVAL_END, DAG_RUN_ID, SCORED_AT``. The table is created when absent
    (``include/sql/predictions_table.sql``).

    XCom: ``{"table", "interval_start", "interval_end", "rows_deleted", "rows_inserted", "model_package_arn",
    "reused_steps"}``; ``reused_steps`` maps each step of ``step_results`` the step cache reused to
    ``{"job_name", "run_id", "key"}`` (the run's summary of what it did not run again).

    :param snowflake_conn_id: Airflow connection for Snowflake (``ml_lifecycle.hooks.snowflake_hook.SnowflakeHook``)
    :param table: fully qualified predictions table (default ``snowflake.predictions_fqn``)
    :param keys_uri: prefix of the key CSVs (templated)
    :param output_uri: prefix of the transform output (templated)
    :param parts: the part file names (templated; from the prepare task)
    :param interval_start: interval start, inclusive (templated)
    :param interval_end: interval end, exclusive (templated)
    :param model_package_arn: the model that scored (templated)
    :param model_package_version: its version (templated)
    :param step_results: the results (XComs) of the run's cached steps, a JSON list (templated)
    """

    template_fields: Sequence[str] = aws_template_fields(
        "keys_uri",
        "output_uri",
        "parts",
        "interval_start",
        "interval_end",
        "model_package_arn",
        "model_package_version",
        "step_results",
    )

    def __init__(
        self,
        *,
        keys_uri: str,
        output_uri: str,
        parts: Sequence[str] | str,
        interval_start: Any,
        interval_end: Any,
        model_package_arn: str,
        model_package_version: Any = None,
        table: str | None = None,
        step_results: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.step_results = step_results
        self.keys_uri = keys_uri
        self.output_uri = output_uri
        self.parts = parts
        self.interval_start = interval_start
        self.interval_end = interval_end
        self.model_package_arn = model_package_arn
        self.model_package_version = model_package_version
        self.table = table

    def _parts(self) -> list[str]:
        parts = self.parts
        if isinstance(parts, str):
            text = parts.strip()
            parts = json.loads(text) if text.startswith("[") else [p.strip() for p in text.split(",") if p.strip()]
        return list(parts)

    def _rows(self, s3: Any, start: dt.datetime, end: dt.datetime, run_id: str) -> pa.Table:
        """The interval's prediction rows as an Arrow table with the predictions table's columns.

        Each part's key lines and output lines are read as CSV in Arrow (no Python object per row) and joined
        line by line; a part whose line counts differ is refused.
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        from ml_lifecycle.data.s3 import join_uri, split_s3_uri

        def body(uri: str) -> bytes:
            bucket, key = split_s3_uri(uri)
            return s3.get_object(Bucket=bucket, Key=key)["Body"].read()

        scored_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        version = None if self.model_package_version in (None, "", "None") else int(self.model_package_version)
        tables = []
        for part in self._parts():
            keys = _read_csv(body(join_uri(self.keys_uri, part)))
            try:
                output = body(join_uri(self.output_uri, part + ".out"))
            except Exception as exc:
                raise AirflowException(
                    f"transform output for {part} is missing under {self.output_uri}: {exc}"
                ) from exc
            predictions = _read_csv(output)
            if keys.num_rows != predictions.num_rows:
                raise AirflowFailException(
                    f"{part}: {keys.num_rows} input rows but {predictions.num_rows} predictions; "
                    "refusing to load a misaligned join"
                )
            if keys.num_rows == 0:
                continue
            if keys.num_columns < 2 or predictions.num_columns < 2:
                raise AirflowFailException(
                    f"{part}: expected 'transaction_id,event_ts' key lines and '<probability>,<label>' prediction "
                    f"lines, got {keys.num_columns} and {predictions.num_columns} column(s)"
                )
            try:
                probability = pc.cast(predictions.column(0), pa.float64())
                label = pc.cast(pc.floor(pc.cast(predictions.column(1), pa.float64())), pa.int8())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise AirflowFailException(f"{part}: unexpected prediction line: {exc}") from None
            n = keys.num_rows
            tables.append(
                pa.table(
                    [
                        keys.column(0),
                        _event_times(keys.column(1)),
                        probability,
                        label,
                        pa.repeat(pa.scalar(self.model_package_arn, pa.string()), n),
                        pa.repeat(pa.scalar(version, pa.int64()), n),
                        pa.repeat(pa.scalar(start, pa.timestamp("us")), n),
                        pa.repeat(pa.scalar(end, pa.timestamp("us")), n),
                        pa.repeat(pa.scalar(run_id, pa.string()), n),
                        pa.repeat(pa.scalar(scored_at, pa.timestamp("us")), n),
                    ],
                    schema=_predictions_schema(),
                )
            )
        return pa.concat_tables(tables) if tables else _predictions_schema().empty_table()

    def _drop_stage(self, conn: Any, cursor: Any, stage: str) -> None:
        """Drop the load's temporary stage; a failure is only logged (the stage ends with the session anyway)."""
        try:
            conn.autocommit(True)
            cursor.execute(f"DROP STAGE IF EXISTS {stage}")
        except Exception as exc:
            self.log.warning("Could not drop the load stage %s (it ends with the session): %s", stage, exc)

    def execute(self, context: Context) -> dict[str, Any]:
        from ml_lifecycle.cache import CacheError, logged_reused_steps
        from ml_lifecycle.config import load_config

        try:
            reused = logged_reused_steps(self.step_results, self.log)
        except CacheError as exc:
            raise AirflowFailException(f"step_results: {exc}") from None
        cfg = load_config()
        table = self.table or cfg.snowflake.predictions_fqn
        start = _naive_utc("interval_start", self.interval_start)
        end = _naive_utc("interval_end", self.interval_end)
        if end <= start:
            raise AirflowFailException(f"empty interval [{start}, {end})")
        rows = self._rows(self.hook.get_conn(), start, end, context["run_id"])
        ddl = _render_table(_read_include(DDL_PATH), table)
        delete = _render_table(_read_include(DELETE_PATH), table)
        stage = _load_stage(table)
        copy = _render_table(_read_include(COPY_PATH), table).replace("{stage}", stage)
        conn = self.get_snowflake_hook().get_conn()
        try:
            cursor = conn.cursor()
            cursor.execute(ddl)  # DDL commits on its own in Snowflake: keep it outside the transaction
            with tempfile.TemporaryDirectory(prefix="predictions-") as tmp:
                if rows.num_rows:
                    path = Path(tmp) / "predictions.parquet"
                    _predictions_parquet(rows, path)
                    cursor.execute(f"CREATE TEMPORARY STAGE {stage}")
                    cursor.execute(f"PUT 'file://{path.as_posix()}' @{stage} AUTO_COMPRESS = FALSE OVERWRITE = TRUE")
                conn.autocommit(False)
                try:
                    cursor.execute(delete, {"interval_start": start, "interval_end": end})
                    deleted = cursor.rowcount or 0
                    if rows.num_rows:
                        cursor.execute(copy)
                        # one result row per file: file, status, rows_parsed, rows_loaded, ...
                        loaded = sum(int(r[3]) for r in cursor.fetchall() if len(r) > 3 and r[3] is not None)
                        if loaded != rows.num_rows:
                            raise AirflowException(
                                f"COPY INTO {table} loaded {loaded} row(s) from @{stage}, expected {rows.num_rows}; "
                                "rolled back"
                            )
                    conn.commit()
                except Exception:
                    conn.rollback()
                    raise
                finally:
                    if rows.num_rows:
                        self._drop_stage(conn, cursor, stage)
        finally:
            conn.close()
        self.log.info(
            "Replaced the predictions of [%s, %s) in %s: %d row(s) deleted, %d inserted",
            start.isoformat(),
            end.isoformat(),
            table,
            deleted,
            rows.num_rows,
        )
        return {
            "table": table,
            "interval_start": start.isoformat(),
            "interval_end": end.isoformat(),
            "rows_deleted": deleted,
            "rows_inserted": rows.num_rows,
            "model_package_arn": self.model_package_arn,
            "reused_steps": reused,
        }
