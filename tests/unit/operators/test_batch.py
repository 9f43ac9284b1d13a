# ruff: noqa: N803  (keyword names mirror the boto3 API)
from __future__ import annotations

import datetime as dt
import decimal
import io
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, TaskDeferred

from ml_lifecycle.builders.transform import batch_uri, transform_request
from ml_lifecycle.config import load_config
from ml_lifecycle.data.manifest import MANIFEST_NAME
from ml_lifecycle.operators.batch import (
    BatchTransformJobOperator,
    LoadPredictionsOperator,
    PrepareBatchInputOperator,
    feature_columns,
)
from tests.integration.devstack.snowflake_support import StandIn
from tests.unit.operators._hosting_fakes import AWS_CONNECTION, BUCKET, FakeSageMaker, FakeTI, aws, context, package

__all__ = ["aws"]
DATASET = f"s3://{BUCKET}/datasets/batch_score/20260301T0000-20260302T0000/"


NUMBER_COLUMNS = ["hour_of_day", "day_of_week", "card_txn_count_24h", "is_fraud"]  # NUMBER(38,0) in the contract


def write_dataset(day: int, rows: int, convert: Callable[[pa.Table], pa.Table] | None = None) -> str:
    """An extracted interval: one Parquet part and its manifest, as the extraction operator writes them.

    :param convert: changes the table before it is written (e.g. into the types of a Snowflake unload)
    """
    features, _keys, kinds = feature_columns()
    start = dt.datetime(2026, 3, day)
    data = {
        "transaction_id": [f"tx-{day}-{i}" for i in range(rows)],
        "event_ts": [start + dt.timedelta(minutes=i) for i in range(rows)],
        "is_fraud": [0] * rows,
    }
    for name in features:
        kind = kinds[name]
        data[name] = (
            [i % 2 == 0 for i in range(rows)]
            if kind == "boolean"
            else (
                ["POS"] * rows
                if kind == "categorical"
                else ([i % 7 for i in range(rows)] if name in NUMBER_COLUMNS else [float(i) + 0.5 for i in range(rows)])
            )
        )
    table = pa.table(data)
    if convert is not None:
        table = convert(table)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    prefix = f"datasets/batch_score/2026030{day}/"
    s3 = boto3.client("s3")
    s3.put_object(Bucket=BUCKET, Key=prefix + "part-00000.parquet", Body=buffer.getvalue())
    manifest = {
        "manifest_version": 1,
        "format": "parquet",
        "columns": table.column_names,
        "parts": [{"name": "part-00000.parquet", "uri": f"s3://{BUCKET}/{prefix}part-00000.parquet", "rows": rows}],
        "row_count": rows,
    }
    s3.put_object(Bucket=BUCKET, Key=prefix + MANIFEST_NAME, Body=__import__("json").dumps(manifest))
    return f"s3://{BUCKET}/{prefix}"


def interval(day: int) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime(2026, 3, day, tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def prepare(day: int, rows: int, convert: Callable[[pa.Table], pa.Table] | None = None) -> dict:
    start, end = interval(day)
    op = PrepareBatchInputOperator(
        task_id="prepare", aws_conn_id="aws_default", dataset_uri=write_dataset(day, rows, convert),
        batch_uri=batch_uri(load_config(), "batch_score", start, end),
    )  # fmt: skip
    return op.execute(context())


def test_prepare_writes_features_in_contract_order_and_keys_per_line(aws):
    result = prepare(1, 5)
    features, _, _ = feature_columns()
    assert result["row_count"] == 5 and result["parts"] == ["part-00000.csv"]
    key = result["input_uri"].removeprefix(f"s3://{BUCKET}/") + "part-00000.csv"
    lines = aws.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().splitlines()
    assert len(lines) == 5
    first = lines[0].split(",")
    assert len(first) == len(features)
    assert first[features.index("is_weekend")] == "1" and first[features.index("channel")] == "POS"
    keys = aws.s3.get_object(Bucket=BUCKET, Key=key.replace("/input/", "/keys/"))["Body"].read().decode()
    assert keys.splitlines()[0] == "tx-1-0,2026-03-01T00:00:00"


def as_unloaded(table: pa.Table) -> pa.Table:
    """``table`` as a Snowflake Parquet unload stores it: NUMBER(38,0) as decimal(38,0); and amount as if it
    were NUMBER(12,2)."""
    for name in NUMBER_COLUMNS:
        table = table.set_column(table.column_names.index(name), name, table.column(name).cast(pa.decimal128(38, 0)))
    return table.set_column(table.column_names.index("amount"), "amount", table["amount"].cast(pa.decimal128(12, 2)))


def batch_files(aws, result: dict) -> tuple[str, str]:
    key = result["input_uri"].removeprefix(f"s3://{BUCKET}/") + "part-00000.csv"
    read = lambda k: aws.s3.get_object(Bucket=BUCKET, Key=k)["Body"].read().decode()  # noqa: E731
    return read(key), read(key.replace("/input/", "/keys/"))


def test_prepare_writes_the_same_input_from_an_unloaded_interval(aws):
    streamed = batch_files(aws, prepare(1, 6))
    unloaded = batch_files(aws, prepare(1, 6, convert=as_unloaded))
    assert unloaded == streamed
    features, _, _ = feature_columns()
    row = streamed[0].splitlines()[5].split(",")
    assert row[features.index("card_txn_count_24h")] == "5" and row[features.index("amount")] == "5.5"


def test_prepare_refuses_an_unloaded_integer_beyond_int64(aws):
    def overflowing(table: pa.Table) -> pa.Table:
        table = as_unloaded(table)
        values = table["card_txn_count_24h"].to_pylist()
        values[2] = decimal.Decimal(2**63)
        index = table.column_names.index("card_txn_count_24h")
        return table.set_column(index, "card_txn_count_24h", pa.array(values, pa.decimal128(38, 0)))

    with pytest.raises(
        AirflowFailException,
        match=r"part-00000\.parquet: column 'card_txn_count_24h': .* to 9223372036854775808 do not fit in int64",
    ):
        prepare(1, 3, convert=overflowing)


def test_transform_request_is_valid():
    import botocore.session
    from botocore.validate import ParamValidator

    request = transform_request(
        load_config(), job_name="fraud-score-x", model_name="m", input_uri="s3://b/in/", output_uri="s3://b/out/"
    )
    shape = botocore.session.get_session().get_service_model("sagemaker").operation_model("CreateTransformJob")
    assert not ParamValidator().validate(request, shape.input_shape).has_errors()
    assert request["TransformInput"]["SplitType"] == "Line" and request["TransformOutput"]["AssembleWith"] == "Line"


class FakeTransform(FakeSageMaker):
    def __init__(self, status="Completed"):
        super().__init__()
        self.jobs = {}
        self.status = status

    def create_transform_job(self, **request):
        self.calls.append(("create_transform_job", request))
        name = request["TransformJobName"]
        self.jobs[name] = {
            **request,
            "TransformJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:transform-job/{name}",
            "TransformJobStatus": self.status,
            "FailureReason": "ClientError: See job logs" if self.status == "Failed" else None,
        }

    def describe_transform_job(self, TransformJobName):
        if TransformJobName not in self.jobs:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "ValidationException", "Message": "Could not find job"}}, "Describe")
        return dict(self.jobs[TransformJobName])


def transform(fake, ti=None, version=1):
    op = BatchTransformJobOperator(
        task_id="transform", aws_conn_id="aws_default", model_package_arn=package(version)["ModelPackageArn"],
        input_uri="s3://b/in/", output_uri=f"s3://{BUCKET}/batch/out/", interval_start="2026-03-01T00:00:00+00:00",
    )  # fmt: skip
    op.__dict__["hook"] = SimpleNamespace(
        conn=fake,
        conn_region_name="us-east-1",
        conn_partition="aws",
        conn_config=AWS_CONNECTION,
        s3_hook=S3Hook(aws_conn_id="aws_default"),
    )
    return op.execute(context(ti))


def test_transform_creates_the_model_and_a_run_named_job_and_reattaches(aws):
    fake = FakeTransform()
    fake.add_package(package(1))
    result = transform(fake)
    assert result["job_name"].startswith("fraud-score-202603010000-")
    assert result["model_name"] in fake.models
    again = transform(fake)
    assert again["job_name"] == result["job_name"]
    assert len(fake.calls_named("create_transform_job")) == 1


def test_a_rerun_scoring_with_another_model_starts_a_new_job_instead_of_reattaching(aws):
    fake = FakeTransform()
    fake.add_package(package(1))
    first = transform(fake)
    fake.add_package(package(2))
    ti = FakeTI()
    ti.try_number = 2  # the re-processed run's try
    again = transform(fake, ti, version=2)
    created = fake.calls_named("create_transform_job")
    assert [c["TransformJobName"] for c in created] == [first["job_name"], again["job_name"]]
    assert again["job_name"].endswith("-r2") and created[-1]["ModelName"] == again["model_name"]
    assert again["model_name"] != first["model_name"]
    assert again["model_package_arn"] == package(2)["ModelPackageArn"]
    # the same model again: the re-run's job is re-attached to
    ti.try_number = 3
    assert transform(fake, ti, version=2)["job_name"] == again["job_name"]
    assert len(fake.calls_named("create_transform_job")) == 2


def test_a_rerun_with_another_model_waits_for_the_runs_running_job(aws):
    fake = FakeTransform(status="InProgress")
    fake.add_package(package(1))
    with pytest.raises(TaskDeferred):
        transform(fake)
    fake.add_package(package(2))
    with pytest.raises(AirflowException, match="still running with model"):
        transform(fake, version=2)
    assert len(fake.calls_named("create_transform_job")) == 1


def test_transform_failure_names_the_reason_and_a_retry_starts_a_new_job(aws):
    fake = FakeTransform(status="Failed")
    fake.add_package(package(1))
    with pytest.raises(AirflowException, match="ClientError"):
        transform(fake)
    fake.status = "InProgress"
    ti = FakeTI()
    ti.try_number = 2
    with pytest.raises(TaskDeferred):
        transform(fake, ti)
    assert fake.calls_named("create_transform_job")[-1]["TransformJobName"].endswith("-r2")


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandIn]:
    """The devstack's Snowflake stand-in over HTTP: the load's PUT is a real file transfer by the connector."""
    server = StandIn(tmp_path_factory.mktemp("snowflake"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def snowflake_db(stand_in: StandIn) -> Callable[[], Any]:
    """A fresh FRAUD_DB.RAW for each test; yields a connect function."""
    with stand_in.connect() as conn:
        cur = conn.cursor()
        cur.execute("CREATE DATABASE IF NOT EXISTS FRAUD_DB")
        cur.execute("CREATE SCHEMA IF NOT EXISTS FRAUD_DB.RAW")
        cur.execute("DROP TABLE IF EXISTS FRAUD_DB.RAW.FRAUD_PREDICTIONS")
    return lambda: stand_in.connect(database="FRAUD_DB", schema="RAW")


def score_and_load(aws, connect, day: int, rows: int, version: str | None = "1") -> dict:
    """Prepare the day, fake the transform output (probability = row / 100), load it."""
    prepared = prepare(day, rows)
    output_uri = prepared["input_uri"].replace("/input/", "/output/")
    lines = "".join(f"{i / 100:.2f},{int(i % 4 == 0)}\n" for i in range(rows))
    aws.s3.put_object(Bucket=BUCKET, Key=output_uri.removeprefix(f"s3://{BUCKET}/") + "part-00000.csv.out", Body=lines)
    start, end = interval(day)
    op = LoadPredictionsOperator(
        task_id="load", aws_conn_id="aws_default", snowflake_conn_id="snowflake_default",
        keys_uri=prepared["keys_uri"], output_uri=output_uri, parts=prepared["parts"],
        interval_start=start.isoformat(), interval_end=end.isoformat(),
        model_package_arn=package(1)["ModelPackageArn"], model_package_version=version,
    )  # fmt: skip
    op.get_snowflake_hook = lambda: SimpleNamespace(get_conn=connect)
    return op.execute(context())


def counts(connect) -> dict[str, int]:
    cur = connect().cursor()
    cur.execute("SELECT TO_CHAR(INTERVAL_START, 'YYYY-MM-DD'), COUNT(*) FROM FRAUD_DB.RAW.FRAUD_PREDICTIONS "
                "GROUP BY 1 ORDER BY 1")  # fmt: skip
    return dict(cur.fetchall())


def test_loading_replaces_only_its_interval(aws, snowflake_db):
    for day, rows in ((1, 4), (2, 6), (3, 5)):
        score_and_load(aws, snowflake_db, day, rows)
    before = counts(snowflake_db)
    assert list(before.values()) == [4, 6, 5]

    again = score_and_load(aws, snowflake_db, 2, 6)

    assert again["rows_deleted"] == 6 and again["rows_inserted"] == 6
    assert counts(snowflake_db) == before
    cur = snowflake_db().cursor()
    cur.execute("SELECT FRAUD_PROBABILITY, IS_FRAUD_PREDICTED FROM FRAUD_DB.RAW.FRAUD_PREDICTIONS "
                "WHERE TRANSACTION_ID = 'tx-2-4'")  # fmt: skip
    assert cur.fetchall() == [(0.04, 1)]


def test_misaligned_output_is_refused_and_nothing_is_written(aws, snowflake_db):
    prepared = prepare(1, 3)
    output_uri = prepared["input_uri"].replace("/input/", "/output/")
    aws.s3.put_object(
        Bucket=BUCKET, Key=output_uri.removeprefix(f"s3://{BUCKET}/") + "part-00000.csv.out", Body="0.1,0\n"
    )
    start, end = interval(1)
    op = LoadPredictionsOperator(
        task_id="load", aws_conn_id="aws_default", snowflake_conn_id="x", keys_uri=prepared["keys_uri"],
        output_uri=output_uri, parts=prepared["parts"], interval_start=start, interval_end=end,
        model_package_arn="arn",
    )  # fmt: skip
    op.get_snowflake_hook = lambda: SimpleNamespace(get_conn=snowflake_db)
    with pytest.raises(AirflowFailException, match="misaligned"):
        op.execute(context())


class Recording:
    """Connections whose cursors record every statement sent (the connector's own cursors underneath)."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self.connect, self.statements = connect, []

    def __call__(self) -> Any:
        conn = self.connect()
        make_cursor = conn.cursor

        def cursor(*args: Any, **kwargs: Any) -> Any:
            cur = make_cursor(*args, **kwargs)
            execute, executemany = cur.execute, cur.executemany
            cur.execute = lambda sql, *a, **k: (self.statements.append(sql), execute(sql, *a, **k))[1]
            cur.executemany = lambda sql, *a, **k: (self.statements.append(sql), executemany(sql, *a, **k))[1]
            return cur

        conn.cursor = cursor
        return conn


def test_loading_is_one_bulk_copy_from_a_temporary_stage_with_every_column_typed(aws, snowflake_db):
    recording = Recording(snowflake_db)
    result = score_and_load(aws, recording, 4, 3000, version=None)

    assert result["rows_inserted"] == 3000
    verbs = [sql.split()[0].upper() for sql in recording.statements if not sql.upper().startswith("ALTER SESSION")]
    assert "INSERT" not in verbs, "no multi-row INSERT"
    assert verbs[:5] == ["CREATE", "CREATE", "PUT", "DELETE", "COPY"] and verbs[-1] == "DROP", verbs
    cur = snowflake_db().cursor()
    cur.execute(
        "SELECT TRANSACTION_ID, EVENT_TS, FRAUD_PROBABILITY, IS_FRAUD_PREDICTED, MODEL_VERSION, INTERVAL_START, "
        "INTERVAL_END, DAG_RUN_ID, SCORED_AT IS NOT NULL FROM FRAUD_DB.RAW.FRAUD_PREDICTIONS "
        "WHERE TRANSACTION_ID = 'tx-4-2999'"
    )
    assert cur.fetchall() == [
        (
            "tx-4-2999",
            dt.datetime(2026, 3, 4) + dt.timedelta(minutes=2999),
            29.99,
            0,
            None,
            dt.datetime(2026, 3, 4),
            dt.datetime(2026, 3, 5),
            "manual__2026-03-01T00:00:00+00:00",
            True,
        )
    ]
    cur.execute("SHOW STAGES IN SCHEMA FRAUD_DB.RAW")
    assert not [row for row in cur.fetchall() if "ML_PREDICTIONS_LOAD_" in str(row)], "the load stage is dropped"


def test_a_failing_copy_rolls_back_the_delete(aws, snowflake_db, monkeypatch):
    score_and_load(aws, snowflake_db, 1, 4)
    import ml_lifecycle.operators.batch as batch

    def without_run_ids(table, path):  # DAG_RUN_ID is NOT NULL: the COPY fails on the NULLs it would load
        index = table.schema.get_field_index("DAG_RUN_ID")
        original(table.set_column(index, "DAG_RUN_ID", pa.nulls(table.num_rows, pa.string())), path)

    original = batch._predictions_parquet
    monkeypatch.setattr(batch, "_predictions_parquet", without_run_ids)
    with pytest.raises(Exception, match=r"(?i)null|constraint"):
        score_and_load(aws, snowflake_db, 1, 4)
    assert list(counts(snowflake_db).values()) == [4], "the interval's earlier rows are kept"


def test_an_unreadable_prediction_line_is_refused_naming_the_part(aws, snowflake_db):
    prepared = prepare(1, 2)
    output_uri = prepared["input_uri"].replace("/input/", "/output/")
    aws.s3.put_object(
        Bucket=BUCKET, Key=output_uri.removeprefix(f"s3://{BUCKET}/") + "part-00000.csv.out", Body="0.1,0\nnan?,x\n"
    )
    start, end = interval(1)
    op = LoadPredictionsOperator(
        task_id="load", aws_conn_id="aws_default", snowflake_conn_id="x", keys_uri=prepared["keys_uri"],
        output_uri=output_uri, parts=prepared["parts"], interval_start=start, interval_end=end,
        model_package_arn="arn",
    )  # fmt: skip
    op.get_snowflake_hook = lambda: SimpleNamespace(get_conn=snowflake_db)
    with pytest.raises(AirflowFailException, match=r"part-00000\.csv: unexpected prediction line"):
        op.execute(context())
