"""DataValidationOperator, worker mode, and the validation core it shares with the SageMaker job.

Datasets are written to moto S3 in the extraction's layout (Parquet parts + ``_manifest.json``); the suite is
a GX 1.x ExpectationSuite document in a temporary ``include/`` folder.
"""

from __future__ import annotations

import decimal
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException
from moto import mock_aws

from ml_lifecycle.data.manifest import build_manifest, write_manifest
from ml_lifecycle.data.parquet import PartWriter, schema_fields
from ml_lifecycle.operators.validation import DataValidationOperator, load_validation_core

REPO = Path(__file__).resolve().parents[3]
BUCKET = "datasets-test"
DATASET = f"s3://{BUCKET}/datasets/train_model/20260101-20260301/"
REPORT = DATASET + "validation/"
COLUMNS = [
    "transaction_id",
    "event_ts",
    "customer_segment",
    "amount",
    "log_amount",
    "hour_of_day",
    "day_of_week",
    "is_weekend",
    "card_present",
    "is_foreign",
    "channel",
    "merchant_category",
    "card_txn_count_24h",
    "card_avg_amount_7d",
    "amount_to_card_avg_ratio",
    "is_fraud",
]
SUITE = {
    "name": "card_transactions_features_test",
    "expectations": [
        {"type": "expect_table_columns_to_match_ordered_list", "kwargs": {"column_list": COLUMNS}},
        *[{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": c}} for c in COLUMNS],
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "transaction_id"}},
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "amount", "min_value": 0, "strict_min": True},
        },
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "hour_of_day", "min_value": 0, "max_value": 23},
        },
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "channel", "value_set": ["POS", "ECOM", "ATM"]},
        },
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "is_fraud", "value_set": [0, 1]}},
        {
            "type": "expect_column_mean_to_be_between",
            "kwargs": {"column": "is_fraud", "min_value": 0.005, "max_value": 0.1},
        },
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 500}},
    ],
}


def make_table(start: int, rows: int) -> pa.Table:
    """``rows`` good feature rows with ids ``tx-<start>...``; 2 % fraud."""
    ids = range(start, start + rows)
    amounts = [5.0 + (i % 300) * 1.25 for i in ids]
    return pa.table(
        {
            "transaction_id": [f"tx-{i:07d}" for i in ids],
            "event_ts": pa.array([1_767_225_600_000_000 + i * 60_000_000 for i in ids], pa.timestamp("us")),
            "customer_segment": ["student" if i % 7 == 0 else "consumer" for i in ids],
            "amount": amounts,
            "log_amount": [a / 100 for a in amounts],
            "hour_of_day": [(i // 60) % 24 for i in ids],
            "day_of_week": [(i // 1440) % 7 for i in ids],
            "is_weekend": [(i // 1440) % 7 >= 5 for i in ids],
            "card_present": [i % 3 != 0 for i in ids],
            "is_foreign": [i % 11 == 0 for i in ids],
            "channel": ["ECOM" if i % 3 == 0 else "POS" for i in ids],
            "merchant_category": ["grocery" if i % 2 else "travel" for i in ids],
            "card_txn_count_24h": [i % 5 for i in ids],
            "card_avg_amount_7d": [100.0] * rows,
            "amount_to_card_avg_ratio": [a / 100.0 for a in amounts],
            "is_fraud": [1 if i % 50 == 0 else 0 for i in ids],
        }
    )


def set_value(table: pa.Table, column: str, row: int, value: Any) -> pa.Table:
    values = table.column(column).to_pylist()
    values[row] = value
    index = table.column_names.index(column)
    return table.set_column(index, table.field(index), pa.array(values, table.field(index).type))


def write_dataset(client: Any, tables: list[pa.Table], row_groups_per_part: int = 1) -> dict[str, Any]:
    """Write ``tables`` as the dataset's parts (one row group per table) and its manifest."""
    import datetime as dt

    schema = tables[0].schema if tables else make_table(0, 1).schema
    with PartWriter(client=client, prefix=DATASET, schema=schema, row_groups_per_part=row_groups_per_part) as writer:
        for table in tables:
            writer.write(table.cast(schema))
    manifest = build_manifest(
        dataset_uri=DATASET,
        schema=schema_fields(schema),
        parts=[p.as_dict() for p in writer.parts],
        sql_path="sql/features.sql",
        query_sha256="0" * 64,
        interval_start=dt.datetime(2026, 1, 1),
        interval_end=dt.datetime(2026, 3, 1),
        snowflake_query_id=None,
        mode="stream",
        started_at="2026-03-01T00:00:00+00:00",
        finished_at="2026-03-01T00:01:00+00:00",
    )
    write_manifest(client, manifest)
    return manifest


@pytest.fixture
def include(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An include/ folder with the real validation code and the test suite."""
    folder = tmp_path / "include"
    (folder / "gx").mkdir(parents=True)
    (folder / "code").mkdir()
    (folder / "code" / "validation").symlink_to(REPO / "include" / "code" / "validation")
    (folder / "gx" / "suite.json").write_text(json.dumps(SUITE))
    monkeypatch.setenv("ML_LIFECYCLE_INCLUDE_DIR", str(folder))
    return folder


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


class FakeTI:
    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}
        self.try_number = 1

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def run(batch_rows: int = 400, **overrides: Any) -> tuple[dict[str, Any], FakeTI]:
    op = DataValidationOperator(
        task_id="validate",
        aws_conn_id=None,
        dataset_uri=DATASET,
        suite_path="gx/suite.json",
        report_uri=REPORT,
        mode="worker",
        batch_rows=batch_rows,
        **overrides,
    )
    ti = FakeTI()
    return op.execute({"ti": ti}), ti


def report(client: Any) -> dict[str, Any]:
    key = REPORT.split(BUCKET + "/", 1)[1] + "validation_result.json"
    return json.loads(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def report_html(client: Any) -> str:
    key = REPORT.split(BUCKET + "/", 1)[1] + "validation_report.html"
    return client.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()


GOOD = [make_table(0, 1000), make_table(1000, 1000), make_table(2000, 500)]


def test_good_data_passes_and_keeps_the_report(s3: Any, include: Path) -> None:
    write_dataset(s3, GOOD)

    result, ti = run()

    evaluated = len(SUITE["expectations"])
    assert result == {
        "success": True,
        "result_uri": REPORT + "validation_result.json",
        "docs_uri": REPORT + "validation_report.html",
        "evaluated_expectations": evaluated,
        "row_count": 2500,
        # a context without its DAG has no cache key: the step ran and nothing was recorded
        "cache": {"reused": False, "key": None, "step": "validate", "record_uri": None},
    }
    document = report(s3)
    assert document["success"] is True
    assert document["statistics"]["successful_expectations"] == evaluated
    assert document["meta"]["batches"] == 8  # parts of 1000, 1000, 500 rows in batches of at most 400: 3 + 3 + 2
    by_type = {r["expectation_config"]["type"]: r for r in document["results"]}
    assert by_type["expect_table_row_count_to_be_between"]["result"]["observed_value"] == 2500
    assert by_type["expect_column_mean_to_be_between"]["result"]["observed_value"] == pytest.approx(50 / 2500)
    assert by_type["expect_column_values_to_be_unique"]["result"]["distinct_count"] == 2500
    summary = ti.xcom["validation_summary"]
    assert summary["success"] is True and summary["failed"] == []
    assert summary["result_uri"] == result["result_uri"]
    html = report_html(s3)
    assert "Data validation PASSED" in html
    assert html.count('<tr class="pass">') == evaluated


def _dup_across_parts(tables: list[pa.Table]) -> list[pa.Table]:
    """The last id of the second part repeats an id of the first part."""
    second = set_value(tables[1], "transaction_id", tables[1].num_rows - 1, "tx-0000007")
    return [tables[0], second, *tables[2:]]


BAD_CASES = [
    pytest.param(
        lambda t: [t[0], set_value(t[1], "card_txn_count_24h", 5, None), t[2]],
        "expect_column_values_to_not_be_null(card_txn_count_24h): observed 1 of 2500 values unexpected",
        id="null-feature",
    ),
    pytest.param(
        lambda t: [set_value(t[0], "amount", 3, -12.5), t[1], t[2]],
        "expect_column_values_to_be_between(amount): observed 1 of 2500 values unexpected (0.04%); sample [-12.5]",
        id="negative-amount",
    ),
    pytest.param(
        lambda t: [t[0], t[1], set_value(t[2], "channel", 0, "PHONE")],
        "expect_column_values_to_be_in_set(channel): observed 1 of 2500 values unexpected (0.04%); sample ['PHONE']",
        id="unknown-category",
    ),
    pytest.param(
        _dup_across_parts,
        "expect_column_values_to_be_unique(transaction_id): observed 2 of 2500 values unexpected",
        id="duplicate-id-across-parts",
    ),
    pytest.param(
        lambda t: [
            x.set_column(x.column_names.index("is_fraud"), "is_fraud", pa.array([1] * x.num_rows, pa.int64()))
            for x in t
        ],
        "expect_column_mean_to_be_between(is_fraud): observed 1.0",
        id="fraud-rate-out-of-band",
    ),
    pytest.param(
        lambda t: [x.drop_columns(["log_amount"]) for x in t],
        "expect_table_columns_to_match_ordered_list",
        id="missing-column",
    ),
    pytest.param(
        lambda t: [t[2].slice(0, 100)],
        "expect_table_row_count_to_be_between: observed 100",
        id="too-few-rows",
    ),
]


@pytest.mark.parametrize(("corrupt", "expected_line"), BAD_CASES)
def test_each_bad_row_class_fails_naming_the_expectation_after_writing_the_report(
    s3: Any, include: Path, corrupt: Callable[[list[pa.Table]], list[pa.Table]], expected_line: str
) -> None:
    write_dataset(s3, corrupt(GOOD))

    with pytest.raises(AirflowFailException) as caught:
        run()

    message = str(caught.value)
    assert message.startswith("Data validation failed: ")
    assert expected_line in message
    assert f"Report: {REPORT}validation_result.json (HTML: {REPORT}validation_report.html)" in message
    document = report(s3)
    assert document["success"] is False
    failed_types = {f["type"] for f in document["summary"]["failed"]}
    assert expected_line.split("(")[0].split(":")[0] in failed_types
    assert "Data validation FAILED" in report_html(s3)


def test_batches_stay_bounded_and_one_part_at_a_time_is_on_disk(
    s3: Any, include: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tables = [make_table(i * 300, 300) for i in range(6)]
    write_dataset(s3, _dup_across_parts(tables))
    core = load_validation_core()
    monkeypatch.setattr(core, "ROWS_PER_PARTITION", 250)  # 8 spill partitions for the uniqueness check
    seen_sizes: list[int] = []
    parts_on_disk: list[int] = []
    original_iter = core.iter_frames

    def spying_iter(paths: Any, batch_rows: int) -> Iterator[Any]:
        for frame in original_iter(paths, batch_rows):
            seen_sizes.append(len(frame))
            yield frame

    original_download = DataValidationOperator._download_parts

    def spying_download(self: Any, manifest: Any, folder: str) -> Iterator[str]:
        for path in original_download(self, manifest, folder):
            parts_on_disk.append(len(list(Path(folder).glob("part-*"))))
            yield path

    monkeypatch.setattr(core, "iter_frames", spying_iter)
    monkeypatch.setattr(DataValidationOperator, "_download_parts", spying_download)

    with pytest.raises(AirflowFailException, match=r"expect_column_values_to_be_unique\(transaction_id\)"):
        run(batch_rows=128)

    assert max(seen_sizes) == 128
    assert sum(seen_sizes) == 1800
    assert len(seen_sizes) == 6 * 3  # 300 rows -> 128 + 128 + 44 per part
    assert parts_on_disk == [1] * 6  # each part is deleted before the next is downloaded
    unique = next(r for r in report(s3)["results"] if r["expectation_config"]["type"].endswith("_unique"))
    assert unique["result"]["unexpected_count"] == 2
    assert unique["result"]["partial_unexpected_counts"] == [{"value": "tx-0000007", "count": 2}]


def test_mostly_is_applied_to_totals_not_per_batch(s3: Any, include: Path) -> None:
    # 3 bad values out of 2500 (0.12 %): a batch of 400 holding all three is 0.75 % bad, the dataset is not
    tables = [set_value(set_value(set_value(GOOD[0], "amount", 1, -1.0), "amount", 2, -1.0), "amount", 3, -1.0)]
    write_dataset(s3, [*tables, GOOD[1], GOOD[2]])
    suite = {
        "name": "mostly",
        "expectations": [
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "amount", "min_value": 0, "mostly": 0.995},
            }
        ],
    }
    (include / "gx" / "suite.json").write_text(json.dumps(suite))

    result, _ = run()

    assert result["success"] is True
    (entry,) = report(s3)["results"]
    assert entry["result"]["unexpected_count"] == 3


@pytest.mark.parametrize(
    ("expectation", "message"),
    [
        pytest.param(
            {"type": "expect_column_median_to_be_between", "kwargs": {"column": "amount", "min_value": 1}},
            "expect_column_median_to_be_between (columns ['amount']) needs the whole dataset",
            id="median",
        ),
        pytest.param(
            {"type": "expect_column_to_be_happy", "kwargs": {"column": "amount"}},
            "expect_column_to_be_happy: not an expectation known",
            id="unknown",
        ),
        pytest.param(
            {
                "type": "expect_column_mean_to_be_between",
                "kwargs": {"column": "amount", "min_value": 1, "row_condition": 'channel=="POS"'},
            },
            "row_condition is not supported",
            id="row-condition-on-aggregate",
        ),
    ],
)
def test_suites_that_cannot_be_evaluated_exactly_are_refused(
    s3: Any, include: Path, expectation: dict, message: str
) -> None:
    write_dataset(s3, GOOD)
    (include / "gx" / "suite.json").write_text(json.dumps({"name": "bad", "expectations": [expectation]}))
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        run()


def test_missing_manifest_fails_with_the_reason(s3: Any, include: Path) -> None:
    with pytest.raises(AirflowException, match=r"no dataset manifest at s3://datasets-test/.*/_manifest\.json"):
        run()


def test_empty_dataset_runs_schema_checks_and_fails_on_row_count(s3: Any, include: Path) -> None:
    write_dataset(s3, [])
    with pytest.raises(AirflowFailException, match="expect_table_row_count_to_be_between: observed 0"):
        run()


NUMBER_COLUMNS = ["hour_of_day", "day_of_week", "card_txn_count_24h", "is_fraud"]  # NUMBER(38,0) in the contract


def as_unloaded(table: pa.Table) -> pa.Table:
    """``table`` as a Snowflake Parquet unload stores it: NUMBER(38,0) columns as decimal(38,0)."""
    for name in NUMBER_COLUMNS:
        table = table.set_column(table.column_names.index(name), name, table.column(name).cast(pa.decimal128(38, 0)))
    return table


def test_an_unloaded_dataset_passes_the_projects_type_checks(s3: Any, include: Path) -> None:
    (include / "gx" / "suite.json").write_text(
        (REPO / "include" / "gx" / "card_transactions_features.json").read_text()
    )
    write_dataset(s3, [as_unloaded(t) for t in GOOD])

    result, ti = run()

    assert result["success"] is True and result["row_count"] == 2500
    assert ti.xcom["validation_summary"]["failed"] == []
    checked = {
        r["expectation_config"]["kwargs"]["column"]
        for r in report(s3)["results"]
        if r["expectation_config"]["type"] == "expect_column_values_to_be_in_type_list" and r["success"]
    }
    assert set(NUMBER_COLUMNS) <= checked


def test_an_unloaded_integer_beyond_int64_fails_naming_the_column(s3: Any, include: Path) -> None:
    too_big = set_value(as_unloaded(GOOD[1]), "card_txn_count_24h", 10, decimal.Decimal(2**63))
    write_dataset(s3, [as_unloaded(GOOD[0]), too_big])

    with pytest.raises(AirflowFailException) as caught:
        run()

    message = str(caught.value)
    assert f"Data validation of {DATASET} cannot read the dataset in the contract's types" in message
    assert (
        "part-00001.parquet: column 'card_txn_count_24h': decimal128(38, 0) values from 0 to 9223372036854775808"
        in (message)
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param({"mode": "local"}, "mode must be one of", id="unknown-mode"),
        pytest.param({"mode": "processing"}, "needs processing_job", id="processing-without-settings"),
        pytest.param(
            {"mode": "processing", "processing_job": {"job_name": "x"}},
            "processing_job lacks role_arn, image_uri, instance_type",
            id="processing-incomplete",
        ),
    ],
)
def test_bad_arguments_fail_at_parse_time(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DataValidationOperator(
            task_id="validate",
            dataset_uri=DATASET,
            suite_path="gx/suite.json",
            report_uri=REPORT,
            **overrides,
        )


def test_importing_the_operator_does_not_import_great_expectations() -> None:
    code = (
        "import sys, ml_lifecycle.operators.validation, ml_lifecycle.operators.extract;"
        "print(sorted(m for m in ('great_expectations', 'pandas', 'pyarrow') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(REPO / "plugins"), "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert out.stdout.strip() == "[]"


def test_container_script_gives_the_same_verdict_as_worker_mode(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    import pyarrow.parquet as pq

    tables = _dup_across_parts(GOOD)
    parts = []
    for index, table in enumerate(tables):
        name = f"part-{index:05d}.parquet"
        pq.write_table(table, data / name)
        parts.append({"name": name, "rows": table.num_rows})
    manifest = {"manifest_version": 1, "row_count": 2500, "parts": parts, "schema": []}
    (data / "_manifest.json").write_text(json.dumps(manifest))
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps(SUITE))
    out = tmp_path / "out"

    completed = subprocess.run(
        [
            sys.executable,
            str(REPO / "include" / "code" / "validation" / "validate.py"),
            "--data-dir",
            str(data),
            "--suite",
            str(suite),
            "--output-dir",
            str(out),
            "--batch-rows",
            "400",
            "--dataset-uri",
            DATASET,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={"PATH": "/usr/bin:/bin", "SM_FAILURE_FILE": str(tmp_path / "failure")},
    )

    assert completed.returncode == 0, completed.stderr
    assert "Validation FAILED: 23/24 expectations met on 2500 rows" in completed.stdout
    document = json.loads((out / "validation_result.json").read_text())
    assert [f["type"] for f in document["summary"]["failed"]] == ["expect_column_values_to_be_unique"]
    assert (out / "validation_report.html").read_text().startswith("<!DOCTYPE html>")


def test_container_script_exits_non_zero_with_a_failure_reason_when_it_cannot_validate(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps(SUITE))
    completed = subprocess.run(
        [
            sys.executable,
            str(REPO / "include" / "code" / "validation" / "validate.py"),
            "--data-dir",
            str(tmp_path / "data"),
            "--suite",
            str(suite),
            "--output-dir",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={"PATH": "/usr/bin:/bin", "SM_FAILURE_FILE": str(tmp_path / "failure")},
    )
    assert completed.returncode == 1
    assert "holds neither _manifest.json nor *.parquet files" in (tmp_path / "failure").read_text()


def test_processing_request_carries_the_security_settings_and_runs_the_shared_script() -> None:
    op = DataValidationOperator(
        task_id="validate",
        dataset_uri=DATASET,
        suite_path="gx/suite.json",
        report_uri=REPORT,
        mode="processing",
        batch_rows=5000,
        processing_job={
            "job_name": "fraud-validate-20260301-abc123",
            "role_arn": "arn:aws:iam::123456789012:role/sm",
            "image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/gx-validation:1",
            "instance_type": "ml.m5.xlarge",
            "volume_kms_key_id": "alias/volumes",
            "output_kms_key_id": "alias/outputs",
            "enable_network_isolation": True,
            "vpc": {"subnets": ["subnet-1"], "security_group_ids": ["sg-1"]},
            "tags": {"project": "fraud"},
        },
    )

    request = op.build_processing_request(
        "fraud-validate-20260301-abc123", REPORT + "_job/code/", REPORT + "_job/suite/", "suite.json"
    )

    assert request["AppSpecification"] == {
        "ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/gx-validation:1",
        "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/validate.py"],
        "ContainerArguments": [
            "--data-dir", "/opt/ml/processing/input/data",
            "--suite", "/opt/ml/processing/input/suite/suite.json",
            "--output-dir", "/opt/ml/processing/output/report",
            "--batch-rows", "5000",
            "--dataset-uri", DATASET,
        ],
    }  # fmt: skip
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in request["ProcessingInputs"]}
    assert inputs == {"code": REPORT + "_job/code/", "data": DATASET, "suite": REPORT + "_job/suite/"}
    assert request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] == REPORT
    assert request["ProcessingOutputConfig"]["KmsKeyId"] == "alias/outputs"
    assert request["ProcessingResources"]["ClusterConfig"] == {
        "InstanceCount": 1,
        "InstanceType": "ml.m5.xlarge",
        "VolumeSizeInGB": 30,
        "VolumeKmsKeyId": "alias/volumes",
    }
    assert request["NetworkConfig"] == {
        "EnableInterContainerTrafficEncryption": False,
        "EnableNetworkIsolation": True,
        "VpcConfig": {"Subnets": ["subnet-1"], "SecurityGroupIds": ["sg-1"]},
    }
    # an isolated job cannot reach PyPI: it must not try to install great_expectations
    assert request["Environment"] == {"VALIDATION_INSTALL_REQUIREMENTS": "0"}
    assert request["Tags"] == [{"Key": "project", "Value": "fraud"}]


# ------------------------------------------------------------------------------- budget and hang backstop


@pytest.mark.parametrize(
    "setup_seconds",
    [
        pytest.param(0.0, id="slow-batches"),
        # most of the budget spent before the core starts (a slow suite read, a loaded worker): the report's
        # elapsed time still counts from the start of the budget
        pytest.param(0.9, id="slow-setup-then-slow-batches"),
    ],
)
def test_validation_past_its_budget_stops_retryably_and_keeps_an_incomplete_report(
    s3: Any, include: Path, monkeypatch: pytest.MonkeyPatch, setup_seconds: float
) -> None:
    import time

    import great_expectations  # noqa: F401  (imported by the core; loaded here so its import time is not timed)

    write_dataset(s3, GOOD)
    core = load_validation_core()
    original_iter, original_load_suite = core.iter_frames, core.load_suite

    def slow_iter(paths: Any, batch_rows: int) -> Iterator[Any]:
        for frame in original_iter(paths, batch_rows):
            time.sleep(0.4)  # a validation that makes progress, too slowly for its budget
            yield frame

    def slow_load_suite(path: Any) -> dict[str, Any]:
        time.sleep(setup_seconds)
        return original_load_suite(path)

    monkeypatch.setattr(core, "iter_frames", slow_iter)
    monkeypatch.setattr(core, "load_suite", slow_load_suite)

    with pytest.raises(AirflowException) as caught:
        run(timeout_seconds=1)

    assert not isinstance(caught.value, AirflowFailException), "no verdict on the data: the task may be retried"
    message = str(caught.value)
    assert f"Data validation of {DATASET} did not finish within its budget of 1 s (timeout_seconds)" in message
    assert f"incomplete report: {REPORT}validation_result.json" in message
    document = report(s3)
    assert document["success"] is False and document["complete"] is False
    progress = document["meta"]["progress"]
    # the figure a reader compares with the budget is measured on the budget's clock: over budget means over 1 s
    assert document["meta"]["budget_seconds"] == 1
    assert progress["elapsed_seconds"] > 1
    assert f"ran past its deadline after {progress['elapsed_seconds']} s" in message
    assert progress["rows"] < 2500 and progress["batches"] < 8
    assert "ran past its deadline" in document["reason"]
    assert "Data validation INCOMPLETE" in report_html(s3)


HUNG_IN_NATIVE_CODE = """
import ctypes, signal, sys
from ml_lifecycle.operators.validation import DataValidationOperator

class PythonTimeoutFired(Exception):
    pass

def alarm(signum, frame):
    raise PythonTimeoutFired()

def stuck_in_native_code():
    # C code that holds the GIL and never returns to the interpreter: a thread relocking its own mutex
    libc = ctypes.PyDLL(None)  # PyDLL keeps the GIL during the call, as a native extension may
    mutex = ctypes.create_string_buffer(64)  # zeroed: a default (non-recursive) pthread mutex
    libc.pthread_mutex_lock(mutex)
    libc.pthread_mutex_lock(mutex)

op = DataValidationOperator(
    task_id="validate", aws_conn_id=None, dataset_uri="s3://b/d/", suite_path="gx/suite.json",
    report_uri="s3://b/d/validation/", timeout_seconds=1, hang_grace_seconds=1,
)
signal.signal(signal.SIGALRM, alarm)
signal.setitimer(signal.ITIMER_REAL, 0.5)  # what Airflow's execution_timeout does
with op._hang_backstop():
    stuck_in_native_code()
print("returned", flush=True)
"""


def test_a_validation_stuck_in_native_code_ends_the_task_process_with_every_stack(tmp_path: Path) -> None:
    script = tmp_path / "hung.py"
    script.write_text(HUNG_IN_NATIVE_CODE)

    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=REPO, check=False
    )

    assert done.returncode == 1, done.stderr[-2000:]
    assert "Timeout (0:00:02)!" in done.stderr
    assert "in stuck_in_native_code" in done.stderr  # the stuck frame is named in the dump
    assert "PythonTimeoutFired" not in done.stderr  # the SIGALRM-based timeout never got to run
    assert "returned" not in done.stdout


def test_budget_arguments_are_checked() -> None:
    for overrides, field in (({"timeout_seconds": 0}, "timeout_seconds"), ({"hang_grace_seconds": 0}, "hang_grace")):
        with pytest.raises(ValueError, match=field):
            DataValidationOperator(
                task_id="v", dataset_uri=DATASET, suite_path="gx/suite.json", report_uri=REPORT, **overrides
            )


def test_a_suite_that_contradicts_the_contract_fails_before_reading_data(s3: Any, include: Path) -> None:
    contract = "code/common/features_schema.json"
    (include / "code" / "common").mkdir()
    (include / contract).write_bytes((REPO / "include" / contract).read_bytes())
    suite = json.loads((REPO / "include" / "gx" / "card_transactions_features.json").read_text())
    (include / "gx" / "suite.json").write_text(json.dumps(suite))
    write_dataset(s3, [])
    with pytest.raises(AirflowFailException, match="expect_table_row_count_to_be_between: observed 0"):
        run(contract_path=contract)  # the project's suite agrees: the data is read (and is empty)

    for expectation in suite["expectations"]:
        if expectation["type"] == "expect_column_values_to_be_in_set" and expectation["kwargs"]["column"] == "channel":
            expectation["kwargs"]["value_set"] = ["POS"]
    (include / "gx" / "suite.json").write_text(json.dumps(suite))
    objects = s3.list_objects_v2(Bucket=BUCKET)["Contents"]
    with pytest.raises(
        AirflowFailException, match=r"^gx/suite\.json disagrees with the dataset contract: .*\(channel\)"
    ):
        run(contract_path=contract)
    assert s3.list_objects_v2(Bucket=BUCKET)["Contents"] == objects  # no report was written over the last one
