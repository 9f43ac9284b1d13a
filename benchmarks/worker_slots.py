"""Share of a SageMaker job's wait during which an Airflow worker slot is held: deferrable vs synchronous.

A real Airflow runs on a devstack of its own (``tools.ui.AirflowUI``: api-server, scheduler with the
LocalExecutor, dag-processor, triggerer). One DAG run holds two tasks side by side, both the Amazon
provider's ``SageMakerProcessingOperator`` (the class the package's processing operators extend, with the
same ``SageMakerTrigger`` wait), one with ``deferrable=True`` and one with ``deferrable=False``. The devstack
delays each job's start by ``--job-seconds`` (fault hook ``delay_jobs``), so each waits about that long.

The slot is held while a worker process runs the task. Each task process records, into a file, when it
imported the DAG file (the start of its work) and when ``execute`` / ``execute_complete`` returned or
deferred (the end of it); the slot time is the sum of those spans per process. It leaves out the
supervisor's fork before the DAG import and the final state report (well under a second each). The wait
is the task's first start to its last end.

Reproduce: ``make bench-slots`` (or ``.venv/bin/python benchmarks/worker_slots.py [--job-seconds 60]``).
Target: the deferrable task holds a slot for <= 5 % of the wait.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "plugins"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TARGET_SHARE = 0.05
DAG_ID = "slots_probe"
BUCKET = "bench-slots"

DAG_FILE = """
from __future__ import annotations

import datetime as dt
import json
import os
import os
import time

from airflow.providers.amazon.aws.operators.sagemaker import SageMakerProcessingOperator
from airflow.sdk import DAG

SPANS = {spans!r}
IMPORTED = time.time()


def _record(event, task_id):
    with open(SPANS, "a") as fh:
        fh.write(json.dumps({{"pid": os.getpid(), "task": task_id, "event": event, "at": time.time(),
                             "imported": IMPORTED}}) + "\\n")


class Timed(SageMakerProcessingOperator):
    def execute(self, context):
        try:
            return super().execute(context)
        finally:
            _record("execute_end", self.task_id)

    def execute_complete(self, context, event=None):
        try:
            return super().execute_complete(context, event)
        finally:
            _record("execute_complete_end", self.task_id)


def job(name):
    return {{
        "ProcessingJobName": name,
        "RoleArn": "arn:aws:iam::123456789012:role/bench",
        "AppSpecification": {{
            "ImageUri": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
            "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/noop.py"],
        }},
        "ProcessingInputs": [{{
            "InputName": "code",
            "S3Input": {{"S3Uri": "s3://{bucket}/code/noop.py", "LocalPath": "/opt/ml/processing/input/code",
                        "S3DataType": "S3Prefix", "S3InputMode": "File"}},
        }}],
        "ProcessingResources": {{"ClusterConfig": {{"InstanceCount": 1, "InstanceType": "ml.m5.large",
                                                   "VolumeSizeInGB": 5}}}},
        "StoppingCondition": {{"MaxRuntimeInSeconds": 900}},
    }}


with DAG("{dag_id}", schedule=None, start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), catchup=False):
    for mode, deferrable in (("deferrable", True), ("sync", False)):
        Timed(
            task_id=mode,
            config=job(f"slots-{{mode}}-{{{{{{{{ ts_nodash | lower }}}}}}}}"),
            aws_conn_id="aws_default",
            wait_for_completion=True,
            check_interval={interval},
            max_ingestion_time=1800,
            deferrable=deferrable,
            retries=0,
        )
"""


def _post_json(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def spans_by_task(path: Path) -> dict[str, list[tuple[float, float]]]:
    """{task: [(process start of work, end of that process's operator call)]} from the spans file."""
    out: dict[str, list[tuple[float, float]]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        out.setdefault(record["task"], []).append((record["imported"], record["at"]))
    return out


def trigger_and_wait(ui: Any, timeout: float) -> tuple[str, dict[str, dict[str, Any]]]:
    import datetime as dt

    token = ui.token()
    deadline = time.monotonic() + 240
    while DAG_ID not in {d["dag_id"] for d in ui.api("GET", "/api/v2/dags?limit=100", token=token)["dags"]}:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{DAG_ID} was not parsed: {ui.api('GET', '/api/v2/importErrors', token=token)}")
        time.sleep(1)
    ui.api("PATCH", f"/api/v2/dags/{DAG_ID}", token=token, body={"is_paused": False})
    run = ui.api(
        "POST",
        f"/api/v2/dags/{DAG_ID}/dagRuns",
        token=token,
        body={"logical_date": dt.datetime.now(dt.UTC).isoformat(), "conf": {}},
    )
    run_id = run["dag_run_id"]
    deadline = time.monotonic() + timeout
    while True:
        state = ui.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}", token=token)["state"]
        if state in ("success", "failed"):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"run {run_id} still {state} after {timeout:.0f}s")
        time.sleep(2)
    tis = ui.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", token=token)["task_instances"]
    return state, {ti["task_id"]: ti for ti in tis}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job-seconds", type=float, default=60.0, help="start delay of each job (default 60)")
    parser.add_argument("--check-interval", type=int, default=5, help="operators' status poll interval (s)")
    args = parser.parse_args()
    # Airflow's worker processes may write bytecode caches as Python does by default (a caller that sets
    # PYTHONDONTWRITEBYTECODE would make every task process recompile the project's modules)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

    from devstack.snowflake.seed import SeedParams
    from devstack.stack import Stack, free_port
    from tools.ui import AirflowUI

    work = Path(tempfile.mkdtemp(prefix="bench-slots-"))
    spans = work / "spans.jsonl"
    dags = work / "dags"
    dags.mkdir()
    (dags / f"{DAG_ID}.py").write_text(
        DAG_FILE.format(spans=str(spans), bucket=BUCKET, dag_id=DAG_ID, interval=args.check_interval)
    )
    stack = Stack(work / "devstack", seed=SeedParams(days=2, rows_per_day=20), startup_timeout=300)
    ui = None
    result: dict[str, Any] = {
        "benchmark": "worker_slots",
        "target_share": TARGET_SHARE,
        "machine": describe_machine(),
        "load_average_at_start": os.getloadavg(),
    }
    try:
        info = stack.up()
        s3 = info.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="code/noop.py", Body=b"print('done')\n")
        _post_json(
            f"{info.sagemaker_url}/_devstack/faults",
            {"delay_jobs": {"name_prefix": "slots-", "count": 2, "seconds": args.job_seconds}},
        )
        ui = AirflowUI(
            work / "airflow",
            devstack_env=info.env(),
            port=free_port(),
            extra_env={"AIRFLOW__CORE__DAGS_FOLDER": str(dags)},
        )
        ui.start(timeout=600)
        state, tis = trigger_and_wait(ui, timeout=args.job_seconds * 10 + 300)
        sm = info.client("sagemaker")
        jobs = {
            j["ProcessingJobName"]: sm.describe_processing_job(ProcessingJobName=j["ProcessingJobName"])
            for j in sm.list_processing_jobs(MaxResults=10)["ProcessingJobSummaries"]
        }
        per_task = {}
        for task, segments in spans_by_task(spans).items():
            first = min(start for start, _ in segments)
            last = max(end for _, end in segments)
            held = sum(end - start for start, end in segments)
            wait = last - first
            per_task[task] = {
                "state": tis[task]["state"],
                "wait_s": round(wait, 2),
                "slot_held_s": round(held, 2),
                "slot_share": round(held / wait, 4) if wait > 0 else None,
                "worker_processes": len(segments),
                "segments_s": [round(end - start, 2) for start, end in segments],
            }
        result |= {
            "run_state": state,
            "job_delay_s": args.job_seconds,
            "check_interval_s": args.check_interval,
            "tasks": per_task,
            "jobs": {
                name: {
                    "status": d["ProcessingJobStatus"],
                    "created_to_end_s": round((d["ProcessingEndTime"] - d["CreationTime"]).total_seconds(), 2)
                    if d.get("ProcessingEndTime")
                    else None,
                }
                for name, d in jobs.items()
            },
        }
        share = per_task.get("deferrable", {}).get("slot_share")
        result["met_target"] = share is not None and share <= TARGET_SHARE
        result["reproduce"] = "make bench-slots  (or .venv/bin/python benchmarks/worker_slots.py)"
    finally:
        if ui is not None:
            ui.stop()
        stack.down()
        shutil.rmtree(work, ignore_errors=True)
    write(result)
    print(json.dumps(result["tasks"], indent=2))
    return 0 if result.get("run_state") == "success" else 1


def write(result: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "worker_slots.json").write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    tasks = result["tasks"]
    lines = [
        "# Worker slot held while a SageMaker job runs: deferrable vs synchronous",
        "",
        f"Machine: {result['machine']['summary']} (commit {result['machine']['git_commit']}); load average at "
        f"start: {', '.join(f'{x:.1f}' for x in result['load_average_at_start'])}.",
        "",
        "Airflow 3.3.1 (LocalExecutor, triggerer) on the devstack; two `SageMakerProcessingOperator` tasks in",
        f"one run, each waiting for a processing job whose start the devstack delays by {result['job_delay_s']:.0f} s;",
        f"status polled every {result['check_interval_s']} s. Reproduce: `make bench-slots`.",
        "",
        "| task | wait (s) | slot held (s) | share of the wait | worker processes | per process (s) |",
        "|---|---|---|---|---|---|",
        *(
            f"| {name} | {t['wait_s']} | {t['slot_held_s']} | {100 * t['slot_share']:.1f} % | "
            f"{t['worker_processes']} | {', '.join(str(s) for s in t['segments_s'])} |"
            for name, t in sorted(tasks.items())
        ),
        "",
        f"Target: deferrable <= {100 * result['target_share']:.0f} %: "
        f"{'met' if result['met_target'] else 'missed'}. Run state: {result['run_state']}.",
        "",
        "Slot time per worker process = from the process importing the DAG file to its operator call",
        "returning or deferring; the supervisor's fork before that and the state report after it are not",
        "counted (well under a second each). The deferrable task is two processes: one that starts the job",
        "and defers, one that resumes on the trigger's event and reads the result.",
        "",
    ]
    (RESULTS / "worker_slots.md").write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
