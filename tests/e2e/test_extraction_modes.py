"""prod's extraction mode on the devstack: ``unload`` against ``stream`` over the same seeded data.

The Snowflake stand-in unloads the feature query with ``COPY INTO @FRAUD_DB.RAW.ML_LIFECYCLE_STAGE/...`` into
Parquet parts on the devstack's S3 (the stage and storage integration the devstack provisions, named by the
local config). The two modes extract the same interval and must give the same dataset row for row; then
``batch_score``'s tasks score the unloaded interval (the readers' decimal handling on real unloaded files)
and ``train_model`` runs once with ``ML_LIFECYCLE_EXTRACTION_MODE=unload``, the documented switch.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ml_lifecycle.config import EXTRACTION_MODE_VAR, load_config
from ml_lifecycle.data.parquet import conform_decimals
from ml_lifecycle.operators.extract import SnowflakeToS3ParquetOperator

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(2400)]

CFG = load_config()
BUCKET = CFG.storage.bucket
START = dt.datetime(2026, 2, 2, tzinfo=dt.UTC)
END = dt.datetime(2026, 2, 9, tzinfo=dt.UTC)
GROUP = "fraud-detector-unload-e2e"
ENDPOINT = "fraud-unload-e2e"


def extract(mode: str, prefix: str, **kwargs: Any) -> dict[str, Any]:
    extraction = CFG.snowflake.extraction
    op = SnowflakeToS3ParquetOperator(
        task_id=f"extract_{mode}", snowflake_conn_id=CFG.snowflake.conn_id, aws_conn_id="aws_default",
        sql_path="sql/features.sql", interval_start=START.isoformat(), interval_end=END.isoformat(),
        s3_uri=f"s3://{BUCKET}/{prefix}", mode=mode, stage=extraction.stage,
        storage_integration=extraction.storage_integration, **kwargs,
    )  # fmt: skip
    return op.execute({})


def read_json(s3: Any, key: str) -> Any:
    return json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def read_parts(s3: Any, manifest: dict[str, Any]) -> pa.Table:
    tables = []
    for part in manifest["parts"]:
        key = part["uri"].removeprefix(f"s3://{BUCKET}/")
        tables.append(pq.read_table(io.BytesIO(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())))
    return pa.concat_tables(tables)


@pytest.fixture(scope="module")
def s3(devstack: Any) -> Any:
    client = devstack.client("s3")
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture(scope="module")
def extracted(s3: Any) -> dict[str, Any]:
    """The same interval extracted in both modes; the unload split into several parts by MAX_FILE_SIZE."""
    stream = extract("stream", "datasets/modes/stream/", batch_rows=500, row_groups_per_part=1)
    unload = extract("unload", "datasets/modes/unload/", max_file_size=32 * 1024)
    return {"stream": stream, "unload": unload}


def test_unload_and_stream_extract_the_same_dataset_row_for_row(s3: Any, extracted: dict[str, Any]) -> None:
    stream = read_json(s3, "datasets/modes/stream/_manifest.json")
    unload = read_json(s3, "datasets/modes/unload/_manifest.json")
    assert stream["extraction"]["mode"] == "stream" and unload["extraction"]["mode"] == "unload"
    assert unload["row_count"] == stream["row_count"] == extracted["stream"]["row_count"] > 1000
    assert unload["extraction"]["rows_unloaded"] == unload["row_count"], "COPY's reported rows match the footers"
    assert unload["columns"] == stream["columns"]
    assert unload["schema"] == stream["schema"], "the manifest records the types readers see, in both modes"
    assert len(unload["parts"]) > 1
    assert [p["name"] for p in unload["parts"]] == [f"data_0_0_{i}.snappy.parquet" for i in range(len(unload["parts"]))]

    streamed = conform_decimals(read_parts(s3, stream)).sort_by("transaction_id")
    unloaded = conform_decimals(read_parts(s3, unload)).sort_by("transaction_id")
    assert unloaded.schema.names == streamed.schema.names
    assert unloaded.to_pylist() == streamed.to_pylist()


def test_unloaded_parts_carry_the_contracts_snowflake_types(s3: Any, extracted: dict[str, Any]) -> None:
    from ml_lifecycle.config import include_dir

    contract = json.loads((include_dir() / "code" / "common" / "features_schema.json").read_text())
    as_parquet = {
        "VARCHAR": pa.string(),
        "TIMESTAMP_NTZ": pa.timestamp("us"),
        "FLOAT": pa.float64(),
        "BOOLEAN": pa.bool_(),
        "NUMBER(38,0)": pa.decimal128(38, 0),
    }
    expected = pa.schema([(c["name"], as_parquet[c["snowflake_type"]]) for c in contract["columns"]])
    manifest = read_json(s3, "datasets/modes/unload/_manifest.json")
    for part in manifest["parts"]:
        key = part["uri"].removeprefix(f"s3://{BUCKET}/")
        parquet = pq.ParquetFile(io.BytesIO(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()))
        assert parquet.schema_arrow == expected, part["name"]
        assert '"isAdjustedToUTC": false' in parquet.schema.column(1).logical_type.to_json()


def test_batch_score_scores_and_loads_the_unloaded_interval(devstack: Any, s3: Any, extracted: dict[str, Any]) -> None:
    from ml_lifecycle.builders.transform import batch_uri
    from ml_lifecycle.operators.batch import (
        BatchTransformJobOperator,
        LoadPredictionsOperator,
        PrepareBatchInputOperator,
    )
    from tests.e2e.test_batch_devstack import run

    arn = _rule_model(devstack)
    start, end = START, START + dt.timedelta(days=1)
    day = extract("unload", "datasets/modes/unload-day/", max_file_size=16 * 1024)
    base = batch_uri(CFG, "batch_score", start, end)
    prepared = run(
        PrepareBatchInputOperator(
            task_id="prepare", aws_conn_id="aws_default", dataset_uri=day["dataset_uri"], batch_uri=base
        ),
        "unload__day",
    )
    transformed = run(
        BatchTransformJobOperator(
            task_id="transform", aws_conn_id="aws_default", model_package_arn=arn, input_uri=prepared["input_uri"],
            output_uri=base + "output/", interval_start=start.isoformat(), poll_interval=1,
        ),
        "unload__day",
    )  # fmt: skip
    loaded = run(
        LoadPredictionsOperator(
            task_id="load", aws_conn_id="aws_default", snowflake_conn_id=CFG.snowflake.conn_id,
            keys_uri=prepared["keys_uri"], output_uri=transformed["output_uri"], parts=json.dumps(prepared["parts"]),
            interval_start=start.isoformat(), interval_end=end.isoformat(), model_package_arn=arn,
            model_package_version=1, table="FRAUD_DB.RAW.FRAUD_PREDICTIONS_UNLOAD",
        ),
        "unload__day",
    )  # fmt: skip
    assert loaded["rows_inserted"] == prepared["row_count"] == day["row_count"] > 100
    cur = devstack.snowflake_connect().cursor()
    cur.execute(
        "SELECT COUNT(*) FROM FRAUD_DB.RAW.FRAUD_PREDICTIONS_UNLOAD p JOIN FRAUD_DB.RAW.CARD_TRANSACTIONS s "
        "ON s.TRANSACTION_ID = p.TRANSACTION_ID WHERE ABS(p.FRAUD_PROBABILITY - LEAST(1.0, s.AMOUNT / 1000.0)) "
        "< 0.001 AND p.EVENT_TS = s.EVENT_TS"
    )
    assert cur.fetchone()[0] == loaded["rows_inserted"], "each prediction joined to its own unloaded transaction"


def _rule_model(devstack: Any) -> str:
    """An Approved package of the rule model of ``test_batch_devstack`` in this module's own group."""
    import tarfile

    from tests.e2e.test_batch_devstack import RULE_MODEL

    s3, sm = devstack.client("s3"), devstack.client("sagemaker")
    with contextlib.suppress(sm.exceptions.ClientError):
        sm.create_model_package_group(ModelPackageGroupName=GROUP)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("code/inference.py")
        info.size = len(RULE_MODEL.encode())
        tar.addfile(info, io.BytesIO(RULE_MODEL.encode()))
    s3.put_object(Bucket=BUCKET, Key="e2e/models/unload-rule/model.tar.gz", Body=buffer.getvalue())
    return sm.create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": [
                {
                    "Image": CFG.sagemaker.images.inference,
                    "ModelDataUrl": f"s3://{BUCKET}/e2e/models/unload-rule/model.tar.gz",
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


def test_train_model_runs_end_to_end_in_unload_mode(
    devstack: Any, airflow_db: Any, s3: Any, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from tests.e2e.own_config import ROOT, own_config

    monkeypatch.setenv(EXTRACTION_MODE_VAR, "unload")
    devstack.client("sns").create_topic(Name=CFG.notifications.sns_topic_arn.rsplit(":", 1)[1])
    with own_config(tmp_path_factory.mktemp("config"), endpoint=ENDPOINT, group=GROUP) as cfg:
        assert cfg.snowflake.extraction.mode == "unload"
        bag = DagBag(dag_folder=str(ROOT / "dags" / "train_model.py"))
        assert not bag.import_errors, bag.import_errors
        dag = bag.get_dag("train_model")
        when = dt.datetime(2026, 2, 12, tzinfo=dt.UTC)
        dr = dag.test(
            logical_date=when, run_after=when, run_conf={"window_days": 21, "hyperparameters": {"num_round": 10}}
        )
        with create_session() as session:
            tis = session.scalars(
                select(TaskInstance).where(TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == dr.run_id)
            ).all()
            states = {ti.task_id: getattr(ti.state, "value", ti.state) for ti in tis}
        assert states["extract"] == "success", states
        failed = {task: state for task, state in states.items() if state in ("failed", "upstream_failed")}
        assert not failed, states
        manifests = [
            o["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="datasets/train_model/")
            for o in page.get("Contents", [])
            if o["Key"].endswith("_manifest.json")
        ]
        modes = {read_json(s3, key)["extraction"]["mode"] for key in manifests}
        assert modes == {"unload"}, manifests
