"""batch_score's tasks end to end on the devstack: Snowflake stand-in -> S3 -> SageMaker batch transform -> Snowflake.

Three days are scored as three backfill runs would score them (each run owns its day); re-running one day
replaces that day's rows and leaves the others alone. The model is a small rule model that speaks the
fraud model's CSV contract (12 feature columns in, ``<probability>,<label>`` out), so the test exercises
the real data path without training.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import json
import tarfile
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from ml_lifecycle.builders.transform import batch_uri
from ml_lifecycle.config import load_config
from ml_lifecycle.operators.batch import BatchTransformJobOperator, LoadPredictionsOperator, PrepareBatchInputOperator
from ml_lifecycle.operators.extract import SnowflakeToS3ParquetOperator

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CFG = load_config()
BUCKET = CFG.storage.bucket
DAYS = [dt.datetime(2026, 2, d, tzinfo=dt.UTC) for d in (10, 11, 12)]
RULE_MODEL = """
import csv, io

def model_fn(model_dir):
    return None

def input_fn(data, content_type):
    text = data if isinstance(data, str) else data.decode()
    return [row for row in csv.reader(io.StringIO(text)) if row]

def predict_fn(rows, model):
    return [min(1.0, float(row[0]) / 1000.0) for row in rows]

def output_fn(prediction, accept):
    return "".join(f"{p:.6f},{int(p > 0.5)}\\n" for p in prediction), "text/csv"
"""


class TI:
    def __init__(self, run_id: str) -> None:
        self.dag_id, self.task_id, self.run_id, self.try_number, self.map_index = "batch_score", "t", run_id, 1, -1
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def run(op: Any, run_id: str) -> Any:
    ti = TI(run_id)
    ctx = {"ti": ti, "task_instance": ti, "run_id": run_id, "dag": SimpleNamespace(dag_id="batch_score")}

    async def first_event(trigger: Any) -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    try:
        return op.execute(ctx)
    except TaskDeferred as deferred:
        pending = deferred
    while True:
        try:
            event = asyncio.run(first_event(pending.trigger))
            return getattr(op, pending.method_name)(ctx, event=event, **(pending.kwargs or {}))
        except TaskDeferred as deferred:
            pending = deferred


@pytest.fixture(scope="module")
def package_arn(devstack: Any) -> str:
    s3, sm = devstack.client("s3"), devstack.client("sagemaker")
    with contextlib.suppress(s3.exceptions.ClientError):
        s3.create_bucket(Bucket=BUCKET)
    with contextlib.suppress(sm.exceptions.ClientError):
        sm.create_model_package_group(ModelPackageGroupName=CFG.sagemaker.model_package_group)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("code/inference.py")
        info.size = len(RULE_MODEL.encode())
        tar.addfile(info, io.BytesIO(RULE_MODEL.encode()))
    s3.put_object(Bucket=BUCKET, Key="e2e/models/rule/model.tar.gz", Body=buffer.getvalue())
    return sm.create_model_package(
        ModelPackageGroupName=CFG.sagemaker.model_package_group,
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": [
                {
                    "Image": CFG.sagemaker.images.inference,
                    "ModelDataUrl": f"s3://{BUCKET}/e2e/models/rule/model.tar.gz",
                    "Environment": {
                        "SAGEMAKER_PROGRAM": "inference.py",
                        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                    },
                }
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )["ModelPackageArn"]


def score_day(start: dt.datetime, package_arn: str, run_id: str) -> dict[str, Any]:
    end = start + dt.timedelta(days=1)
    key = f"{start:%Y%m%dT%H%M}-{end:%Y%m%dT%H%M}"
    base = batch_uri(CFG, "batch_score", start, end)
    extracted = run(
        SnowflakeToS3ParquetOperator(
            task_id="extract", snowflake_conn_id=CFG.snowflake.conn_id, aws_conn_id="aws_default",
            sql_path="sql/features.sql", interval_start=start.isoformat(), interval_end=end.isoformat(),
            s3_uri=CFG.storage.uri("datasets", "batch_score", key) + "/", min_rows=1,
        ),
        run_id,
    )  # fmt: skip
    prepared = run(
        PrepareBatchInputOperator(
            task_id="prepare", aws_conn_id="aws_default", dataset_uri=extracted["dataset_uri"], batch_uri=base
        ),
        run_id,
    )
    transformed = run(
        BatchTransformJobOperator(
            task_id="transform", aws_conn_id="aws_default", model_package_arn=package_arn,
            input_uri=prepared["input_uri"], output_uri=base + "output/", interval_start=start.isoformat(),
            poll_interval=1,
        ),
        run_id,
    )  # fmt: skip
    loaded = run(
        LoadPredictionsOperator(
            task_id="load", aws_conn_id="aws_default", snowflake_conn_id=CFG.snowflake.conn_id,
            keys_uri=prepared["keys_uri"], output_uri=transformed["output_uri"], parts=json.dumps(prepared["parts"]),
            interval_start=start.isoformat(), interval_end=end.isoformat(), model_package_arn=package_arn,
            model_package_version=1, table=CFG.snowflake.predictions_fqn,
        ),
        run_id,
    )  # fmt: skip
    return {"extracted": extracted, "prepared": prepared, "transformed": transformed, "loaded": loaded}


def per_day(devstack: Any, table: str) -> dict[str, int]:
    cur = devstack.snowflake_connect().cursor()
    cur.execute(f"SELECT CAST(EVENT_TS AS DATE), COUNT(*) FROM {table} GROUP BY 1 ORDER BY 1")
    return {str(day): count for day, count in cur.fetchall()}


def source_per_day(devstack: Any) -> dict[str, int]:
    cur = devstack.snowflake_connect().cursor()
    cur.execute(
        f"SELECT CAST(EVENT_TS AS DATE), COUNT(*) FROM {CFG.snowflake.source_fqn} "
        "WHERE EVENT_TS >= '2026-02-10' AND EVENT_TS < '2026-02-13' GROUP BY 1 ORDER BY 1"
    )
    return {str(day): count for day, count in cur.fetchall()}


def test_three_days_write_three_partitions_and_a_rerun_replaces_only_its_day(devstack: Any, package_arn: str) -> None:
    table = CFG.snowflake.predictions_fqn
    results = [score_day(day, package_arn, f"backfill__{day:%Y-%m-%d}") for day in DAYS]

    expected = source_per_day(devstack)
    assert len(expected) == 3 and all(expected.values())
    assert per_day(devstack, table) == expected
    for result in results:
        assert result["loaded"]["rows_inserted"] == result["prepared"]["row_count"] == result["extracted"]["row_count"]
        assert result["loaded"]["rows_deleted"] == 0

    again = score_day(DAYS[1], package_arn, "manual__rerun")
    assert again["loaded"]["rows_deleted"] == again["loaded"]["rows_inserted"] == expected["2026-02-11"]
    assert per_day(devstack, table) == expected, "a re-run neither duplicates its day nor touches the others"

    cur = devstack.snowflake_connect().cursor()
    cur.execute(
        f"SELECT COUNT(*) FROM {table} p JOIN {CFG.snowflake.source_fqn} s ON s.TRANSACTION_ID = p.TRANSACTION_ID "
        "WHERE ABS(p.FRAUD_PROBABILITY - LEAST(1.0, s.AMOUNT / 1000.0)) > 0.001"
    )
    assert cur.fetchone()[0] == 0, "every prediction belongs to its own transaction (keys joined in order)"
