"""Extract one data interval of features from Snowflake into Parquet parts on S3, with a manifest.

Two modes, one output contract (``part files`` + ``_manifest.json`` under one prefix):

- ``stream``: the worker runs the feature query through the Snowflake connector, pulls the result in
  Arrow batches and writes bounded row groups into ``part-NNNNN.parquet`` files, uploading each part as
  soon as it is full. Memory stays flat in the number of rows. Runs everywhere, including the devstack.
- ``unload``: Snowflake itself writes the Parquet files with ``COPY INTO`` an external S3 stage (or an S3
  URL through a storage integration); the worker then lists the files and reads their footers for the
  manifest. For large intervals. Runs on Snowflake and on the devstack, whose Snowflake stand-in unloads
  to its S3 through the stage it provisions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import closing
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException

from ml_lifecycle.operators.warehouse import SnowflakeQueryToS3Base, parse_instant, resolve_include_path

if TYPE_CHECKING:
    import pyarrow as pa
    from airflow.sdk import Context

MODES = ("stream", "unload")


class SnowflakeToS3ParquetOperator(SnowflakeQueryToS3Base):
    """Run the feature SQL for ``[interval_start, interval_end)`` and write Parquet parts + a manifest to S3.

    Re-running the same interval replaces the dataset: the previous manifest and every file directly under
    the prefix are deleted before new files are written, and the manifest is written last.

    Returns (XCom) ``{"dataset_uri", "manifest_uri", "row_count", "columns", "query_hash", "dataset_digest"}``
    (``dataset_digest``: :func:`ml_lifecycle.cache.dataset_digest` of the manifest). An interval with
    fewer than ``min_rows`` rows writes its manifest (``row_count`` as found) and raises
    ``AirflowSkipException`` so the downstream jobs are skipped.

    :param snowflake_conn_id: Airflow connection for Snowflake
    :param aws_conn_id: Airflow connection for AWS (S3)
    :param sql_path: the feature query, relative to ``include/`` (e.g. ``sql/features.sql``), with
        ``%(interval_start)s`` / ``%(interval_end)s`` pyformat binds (templated)
    :param interval_start: first instant of the interval, inclusive (templated; datetime or ISO string;
        an aware value is converted to naive UTC)
    :param interval_end: end of the interval, exclusive (templated)
    :param s3_uri: destination prefix, ``s3://bucket/datasets/<dag>/<start>-<end>/`` (templated)
    :param batch_rows: rows per Parquet row group (stream mode: also the fetch batch)
    :param mode: ``stream`` or ``unload``
    :param stage: external stage for ``unload`` whose URL contains ``s3_uri`` (e.g. ``FRAUD_DB.RAW.ML_STAGE``)
    :param storage_integration: for ``unload`` without a stage: unload straight to ``s3_uri`` through this
        storage integration
    :param min_rows: fewer rows than this skips the run
    :param row_groups_per_part: row groups per part file (stream mode)
    :param max_file_size: ``MAX_FILE_SIZE`` in bytes for ``unload``
    :param kms_key_id: KMS key for server-side encryption of the uploaded parts and manifest (stream mode)
    :param source_name: what the query reads, for messages (e.g. ``FRAUD_DB.RAW.CARD_TRANSACTIONS``)
    :param contract_path: the dataset contract, relative to ``include/`` (e.g.
        ``code/common/features_schema.json``): a query whose output columns (``AS "name"`` aliases) are not
        the contract's, in order, fails the task before anything runs
    """

    template_fields: Sequence[str] = aws_template_fields("sql_path", "interval_start", "interval_end", "s3_uri")

    def __init__(
        self,
        *,
        interval_start: str | dt.datetime,
        interval_end: str | dt.datetime,
        s3_uri: str,
        batch_rows: int = 50_000,
        mode: str = "stream",
        stage: str | None = None,
        storage_integration: str | None = None,
        min_rows: int = 1,
        row_groups_per_part: int = 8,
        max_file_size: int = 256 * 1024 * 1024,
        contract_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"{self.task_id}: mode must be one of {MODES}, got {mode!r}")
        if mode == "unload" and not (stage or storage_integration):
            raise ValueError(f"{self.task_id}: mode 'unload' needs a stage or a storage_integration")
        if int(batch_rows) < 1:
            raise ValueError(f"{self.task_id}: batch_rows must be at least 1, got {batch_rows}")
        if int(min_rows) < 0:
            raise ValueError(f"{self.task_id}: min_rows must not be negative, got {min_rows}")
        if int(row_groups_per_part) < 1:
            raise ValueError(f"{self.task_id}: row_groups_per_part must be at least 1")
        self.contract_path = contract_path
        self.interval_start = interval_start
        self.interval_end = interval_end
        self.s3_uri = s3_uri
        self.batch_rows = int(batch_rows)
        self.mode = mode
        self.stage = stage
        self.storage_integration = storage_integration
        self.min_rows = int(min_rows)
        self.row_groups_per_part = int(row_groups_per_part)
        self.max_file_size = int(max_file_size)

    # ------------------------------------------------------------------------------------------ helpers

    def _clear_prefix(self, client: Any, prefix: str) -> int:
        """Delete the manifest first, then every file directly under ``prefix`` (sub-folders are kept)."""
        from ml_lifecycle.data.manifest import MANIFEST_NAME
        from ml_lifecycle.data.s3 import delete_keys, iter_objects, split_s3_uri

        bucket, key_prefix = split_s3_uri(prefix)
        direct = [obj["Key"] for obj in iter_objects(client, prefix) if "/" not in obj["Key"][len(key_prefix) :]]
        manifest_key = key_prefix + MANIFEST_NAME
        ordered = [k for k in direct if k == manifest_key] + [k for k in direct if k != manifest_key]
        deleted = delete_keys(client, bucket, ordered)
        if deleted:
            self.log.info("Removed %d file(s) of a previous extraction under %s", deleted, prefix)
        return deleted

    def _iter_tables(self, cursor: Any, schema: pa.Schema) -> Iterator[pa.Table]:
        """Result batches conformed to ``schema``: Arrow batches when the cursor offers them, else fetchmany."""
        from ml_lifecycle.data.parquet import conform, rows_to_table

        fetch_arrow = getattr(cursor, "fetch_arrow_batches", None)
        if callable(fetch_arrow):
            try:
                batches = iter(fetch_arrow())
                first = next(batches, None)
            except Exception as exc:
                if type(exc).__name__ != "NotSupportedError":
                    raise
                self.log.info("Arrow batches unavailable for this result (%s); fetching rows", exc)
            else:
                self.log.info("Fetching the result as Arrow batches")
                if first is not None:
                    yield conform(first, schema)
                    for table in batches:
                        yield conform(table, schema)
                return
        self.log.info("Fetching the result with fetchmany(%d)", self.batch_rows)
        while rows := cursor.fetchmany(self.batch_rows):
            yield rows_to_table(rows, schema)

    def _what(self, start: dt.datetime, end: dt.datetime) -> str:
        return f"{self.source} for [{start.isoformat()}, {end.isoformat()})"

    # ------------------------------------------------------------------------------------------ execute

    def execute(self, context: Context) -> dict[str, Any]:
        from ml_lifecycle.cache import dataset_digest
        from ml_lifecycle.data.manifest import (
            build_manifest,
            manifest_uri,
            sha256_text,
            utc_now_iso,
            write_manifest,
        )
        from ml_lifecycle.data.s3 import as_prefix

        start = parse_instant("interval_start", self.interval_start)
        end = parse_instant("interval_end", self.interval_end)
        if not start < end:
            raise ValueError(
                f"empty or inverted interval [{start.isoformat()}, {end.isoformat()}): interval_start must be "
                "before interval_end (a scheduled run needs a window, see the DAG's window param)"
            )
        sql_text = self.read_sql()
        if self.contract_path:
            from ml_lifecycle.contract import ContractMismatchError, check_sql, load_contract

            try:
                check_sql(sql_text, load_contract(resolve_include_path(self.contract_path)), self.sql_path)
            except ContractMismatchError as exc:
                raise AirflowFailException(f"{exc} ({self.contract_path}); python -m tools.contract shows it") from None
        query_hash = sha256_text(sql_text)
        prefix = as_prefix(self.s3_uri)
        client = self.hook.conn
        started_at = utc_now_iso()
        self.log.info(
            "Extracting %s (%s mode, query %s sha256 %s) to %s",
            self._what(start, end),
            self.mode,
            self.sql_path,
            query_hash[:12],
            prefix,
        )

        if self.mode == "stream":
            schema, parts, query_id, extra = self._stream(client, prefix, sql_text, start, end)
        else:
            schema, parts, query_id, extra = self._unload(client, prefix, sql_text, start, end)

        manifest = build_manifest(
            dataset_uri=prefix,
            schema=schema,
            parts=parts,
            sql_path=self.sql_path,
            query_sha256=query_hash,
            interval_start=start,
            interval_end=end,
            snowflake_query_id=query_id,
            mode=self.mode,
            started_at=started_at,
            finished_at=utc_now_iso(),
            extra={"batch_rows": self.batch_rows, **extra},
        )
        uri = write_manifest(client, manifest, **self._put_args)
        row_count = manifest["row_count"]
        self.log.info("Wrote %d rows in %d part(s); manifest %s", row_count, len(parts), uri)

        if row_count == 0:
            raise AirflowSkipException(f"no rows in {self._what(start, end)}; manifest {uri}")
        if row_count < self.min_rows:
            raise AirflowSkipException(
                f"only {row_count} rows in {self._what(start, end)}, fewer than min_rows={self.min_rows};"
                f" manifest {uri}"
            )
        return {
            "dataset_uri": prefix,
            "manifest_uri": manifest_uri(prefix),
            "row_count": row_count,
            "columns": manifest["columns"],
            "query_hash": query_hash,
            "dataset_digest": dataset_digest(manifest),
        }

    # ------------------------------------------------------------------------------------------ stream

    def _stream(
        self, client: Any, prefix: str, sql_text: str, start: dt.datetime, end: dt.datetime
    ) -> tuple[list[dict[str, str]], list[dict[str, Any]], str | None, dict[str, Any]]:
        from ml_lifecycle.data.parquet import PartWriter, rebatch, schema_fields, schema_from_description
        from ml_lifecycle.native import arrow_pool_warning

        if warning := arrow_pool_warning():
            self.log.warning(warning)
        params = {
            "interval_start": start.strftime("%Y-%m-%d %H:%M:%S.%f"),
            "interval_end": end.strftime("%Y-%m-%d %H:%M:%S.%f"),
        }
        conn = self.get_snowflake_hook().get_conn()
        try:
            with closing(conn.cursor()) as cursor:
                cursor.execute(sql_text, params)
                query_id = getattr(cursor, "sfqid", None)
                self.log.info("Snowflake query id %s", query_id)
                schema = schema_from_description(cursor.description)
                self._clear_prefix(client, prefix)  # only once the query ran: a failing query keeps the old data
                writer = PartWriter(
                    client=client,
                    prefix=prefix,
                    schema=schema,
                    row_groups_per_part=self.row_groups_per_part,
                    extra_args=self._put_args,
                )
                with writer:
                    for table in rebatch(self._iter_tables(cursor, schema), self.batch_rows):
                        writer.write(table)
        finally:
            conn.close()
        extra = {"row_groups_per_part": self.row_groups_per_part}
        return schema_fields(schema), [p.as_dict() for p in writer.parts], query_id, extra

    # ------------------------------------------------------------------------------------------ unload

    def build_unload_sql(self, cursor: Any, prefix: str, sql_text: str, start: dt.datetime, end: dt.datetime) -> str:
        """The ``COPY INTO`` statement for this interval (looks up the stage's URL with ``DESC STAGE``)."""
        from ml_lifecycle.data.unload import (
            bind_literals,
            copy_into_statement,
            external_location,
            path_within_stage,
            stage_location,
            stage_url_from_describe,
        )

        query = bind_literals(sql_text, {"interval_start": start, "interval_end": end})
        if self.stage:
            stage_location(self.stage, "")  # validates the name before it is sent anywhere
            cursor.execute(f"DESC STAGE {self.stage}")
            columns = [getattr(d, "name", None) or d[0] for d in cursor.description]
            stage_url = stage_url_from_describe(cursor.fetchall(), columns, self.stage)
            location = stage_location(self.stage, path_within_stage(stage_url, prefix, self.stage))
        else:
            location = external_location(prefix, self.storage_integration or "")
        return copy_into_statement(query, location, max_file_size=self.max_file_size)

    def _unload(
        self, client: Any, prefix: str, sql_text: str, start: dt.datetime, end: dt.datetime
    ) -> tuple[list[dict[str, str]], list[dict[str, Any]], str | None, dict[str, Any]]:
        from ml_lifecycle.data.unload_files import describe_unloaded_files

        conn = self.get_snowflake_hook().get_conn()
        try:
            with closing(conn.cursor()) as cursor:
                statement = self.build_unload_sql(cursor, prefix, sql_text, start, end)
                self._clear_prefix(client, prefix)  # COPY's OVERWRITE only replaces files of the same name
                self.log.info("Unloading with:\n%s", statement)
                cursor.execute(statement)
                query_id = getattr(cursor, "sfqid", None)
                columns = [str(getattr(d, "name", None) or d[0]).lower() for d in cursor.description or []]
                rows = cursor.fetchall()
        finally:
            conn.close()
        reported = None
        if rows and "rows_unloaded" in columns:
            reported = int(rows[0][columns.index("rows_unloaded")])
        self.log.info("Snowflake query %s reports %s rows unloaded", query_id, reported)
        schema, parts = describe_unloaded_files(client, prefix, expected_rows=reported)
        return schema, parts, query_id, {"max_file_size": self.max_file_size, "rows_unloaded": reported}
