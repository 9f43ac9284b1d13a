"""Drive the ML lifecycle through a running Airflow's REST API, as a person does from the UI.

Shared by ``make demo`` (``scripts/demo.py``) and the MWAA lifecycle suite (``tests/e2e/test_mwaa_lifecycle.py``):
both start Airflow's real components (scheduler with the LocalExecutor, dag-processor, triggerer, API server),
trigger runs through ``/api/v2`` and let the scheduler do the rest (asset events start ``deploy_model`` and the
drift-triggered ``train_model``).

- :class:`Driver`: the REST calls (unpause, trigger, wait with a callback per task state change, XComs, the
  runs an asset event started);
- :func:`feature_rows`, :func:`predict`, :func:`send`, :func:`drifted`: live traffic to the endpoint, as a client
  sends it, and the drift a demo injects into it.

Works with :class:`tools.ui.AirflowUI` (the repository tree) and :class:`tools.mwaa_local.MwaaLocal` (the
built bundle) alike: both have ``info``, ``home``, ``token()``, ``api()`` and ``dead_components()``.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tools.ui import API_TIMEOUT

ROOT = Path(__file__).resolve().parents[1]
TERMINAL = ("success", "failed")
#: the features a demo shifts to inject drift: what a change of spending habits looks like to the model (larger
#: purchases, against a card average that rises less, on cards used twice as often); with the two derived
#: features that follow, five of the nine monitored features move, more than the drift share of 0.5
DRIFT_FACTORS = {"amount": 2.5, "card_avg_amount_7d": 1.5, "card_txn_count_24h": 2.0}


class LifecycleError(RuntimeError):
    """A run failed, a component stopped or something did not happen in time; the message says which."""


class RunFailedError(LifecycleError):
    """A DAG run ended ``failed``.

    :param dag_id: the DAG.
    :param run_id: the run.
    :param states: its task states.
    :param logs: the end of the failed tasks' logs.
    """

    def __init__(self, dag_id: str, run_id: str, states: dict[str, str | None], logs: str) -> None:
        super().__init__(f"{dag_id} {run_id} failed: {states}\n{logs}")
        self.dag_id, self.run_id, self.states, self.logs = dag_id, run_id, states, logs


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 1.0) -> Any:
    """Poll ``check`` until it returns something truthy.

    :param check: the probe.
    :param timeout: seconds to wait.
    :param what: what is awaited, for the error.
    :param interval: seconds between probes.
    :raises LifecycleError: after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise LifecycleError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


#: ``on_task(dag_id, run_id, task_id, state, try_number)``: one call per task state change
TaskCallback = Callable[[str, str, str, str | None, int], None]


class Driver:
    """A running Airflow's REST API, signed in as ``admin``.

    :param runtime: a started :class:`tools.ui.AirflowUI` or :class:`tools.mwaa_local.MwaaLocal` (its ``info``
        set to what ``start()`` returned).
    :param on_task: called on every task state change :meth:`wait` sees.
    :param poll: seconds between two looks at a run.
    """

    def __init__(self, runtime: Any, on_task: TaskCallback | None = None, poll: float = 1.0) -> None:
        self.runtime = runtime
        self.url = runtime.info.url
        self.token = runtime.token(self.url)
        self.on_task = on_task
        self.poll = poll
        self._seen: dict[tuple[str, str], dict[str, tuple[str | None, int]]] = {}

    def __call__(self, method: str, path: str, body: Any = None) -> Any:
        # the API server shares two cores with the scheduler, the devstack and its jobs
        return self.runtime.api(method, path, token=self.token, body=body, url=self.url, timeout=API_TIMEOUT)

    def unpause(self, *dag_ids: str) -> dict[str, list[str]]:
        """Unpause the DAGs; fail the runs the scheduler starts on its own for them.

        Locally no DAG catches up, but unpausing still makes the scheduler start the latest due interval, and a
        DAG left unpaused by an earlier run of the caller may have a scheduled run still going; the caller starts
        the runs it wants, so those are marked failed before they take the machine. A DAG with an unfinished run
        (``max_active_runs``) gets its due run only once that one ended, so the unfinished ones are failed on
        every look until the due runs exist. The DAGs are unpaused together and awaited together (one scheduler
        loop creates all their runs).

        :param dag_ids: the DAGs.
        :return: ``{dag_id: [runs marked failed]}``.
        """
        for dag_id in dag_ids:
            self("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        failed: dict[str, list[str]] = {dag_id: [] for dag_id in dag_ids}

        def fail_scheduled() -> None:
            for dag_id in dag_ids:
                for run in self("GET", f"/api/v2/dags/{dag_id}/dagRuns?run_type=scheduled")["dag_runs"]:
                    if run["state"] not in TERMINAL:
                        self("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}", {"state": "failed"})
                        failed[dag_id].append(run["dag_run_id"])

        def settled() -> bool:
            fail_scheduled()
            for dag_id in dag_ids:
                after = self("GET", f"/api/v2/dags/{dag_id}").get("next_dagrun_run_after")
                if after is not None and dt.datetime.fromisoformat(after) <= dt.datetime.now(dt.UTC):
                    return False
            return True

        wait_for(settled, 120, f"the scheduler to create the due runs of {', '.join(dag_ids)}", interval=0.25)
        fail_scheduled()
        return failed

    def drop_queued_asset_events(self, dag_id: str) -> int:
        """Drop the asset events queued for ``dag_id`` while it was paused; how many there were.

        A paused DAG keeps the asset events that arrive meanwhile (an approval's second delivery, the registry
        marking of the last deployment) and starts a run for them when it is unpaused: events of a run that
        ended before this one started, which would only start a run that finds its work done.

        :param dag_id: the DAG.
        """
        queued = self("GET", f"/api/v2/dags/{dag_id}/assets/queuedEvents")["total_entries"]
        if queued:
            self("DELETE", f"/api/v2/dags/{dag_id}/assets/queuedEvents")
        return queued

    def pause(self, *dag_ids: str) -> None:
        """Pause the DAGs: the scheduler starts no run of them, not even the one due when Airflow starts next.

        :param dag_ids: the DAGs.
        """
        for dag_id in dag_ids:
            self("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": True})

    def trigger(self, dag_id: str, run_id: str, **body: Any) -> dict[str, Any]:
        """Start a manual run.

        :param dag_id: the DAG.
        :param run_id: its id.
        :param body: more fields of the request (``logical_date``, ``conf``).
        """
        return self("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"dag_run_id": run_id, **body})

    def runs(self, dag_id: str, run_type: str | None = None) -> list[dict[str, Any]]:
        """The DAG's runs, newest first.

        :param dag_id: the DAG.
        :param run_type: only runs of this type (``manual``, ``scheduled``, ``asset_triggered``, ``backfill``).
        """
        query = "order_by=-id&limit=100" + (f"&run_type={run_type}" if run_type else "")
        return self("GET", f"/api/v2/dags/{dag_id}/dagRuns?{query}")["dag_runs"]

    def new_run(self, dag_id: str, known: Iterable[str], timeout: float, run_type: str = "asset_triggered") -> str:
        """Wait for the scheduler to start a run of ``dag_id`` not in ``known``; its run id.

        :param dag_id: the DAG.
        :param known: run ids that existed before.
        :param timeout: seconds to wait.
        :param run_type: the kind of run awaited.
        """
        before = set(known)

        def started() -> str | None:
            fresh = [r["dag_run_id"] for r in self.runs(dag_id, run_type) if r["dag_run_id"] not in before]
            return fresh[0] if fresh else None

        return wait_for(started, timeout, f"the scheduler to start a {run_type} {dag_id} run")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The run's task instances as the API lists them."""
        return self("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]

    def tasks(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """``{task_id: state}`` of the run."""
        return {t["task_id"]: t["state"] for t in self.task_instances(dag_id, run_id)}

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """An XCom of the run, deserialized.

        :param dag_id: the DAG.
        :param run_id: the run.
        :param task_id: the task.
        :param key: the XCom's key.
        """
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        return self("GET", f"{path}?deserialize=true")["value"]

    def wait(self, dag_id: str, run_id: str, timeout: float, input_task: str | None = None) -> dict[str, str | None]:
        """Wait for the run to end, reporting each task state change to ``on_task``; its task states.

        :param dag_id: the DAG.
        :param run_id: the run.
        :param timeout: seconds to wait.
        :param input_task: also return when this task waits for a person's input (``awaiting_input``).
        :raises RunFailedError: the run failed (with its failed tasks' logs).
        :raises LifecycleError: an Airflow component stopped, or the run did not end in time.
        """
        # a second wait on the same run (after answering its input) reports only what changed since the first
        seen = self._seen.setdefault((dag_id, run_id), {})

        def look() -> dict[str, Any] | None:
            dead = self.runtime.dead_components(self.runtime.info)
            if dead:
                from devstack.stack import tail

                logs = {name: tail(Path(self.runtime.info.components[name].log)) for name in dead}
                raise LifecycleError(
                    f"Airflow {dead} stopped while {dag_id} {run_id} ran:\n{json.dumps(logs, indent=1)}"
                )
            run = self("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
            instances = self.task_instances(dag_id, run_id) if self.on_task or input_task else []
            if self.on_task is not None:
                for ti in sorted(instances, key=_started):
                    now = (ti["state"], ti.get("try_number") or 0)
                    if seen.get(ti["task_id"]) != now and (ti["state"] is not None or ti["task_id"] in seen):
                        seen[ti["task_id"]] = now
                        self.on_task(dag_id, run_id, ti["task_id"], ti["state"], now[1])
            if any(ti["task_id"] == input_task and ti["state"] == "awaiting_input" for ti in instances):
                return run
            return run if run["state"] in TERMINAL else None

        run = wait_for(look, timeout, f"{dag_id} run {run_id}", interval=self.poll)
        states = self.tasks(dag_id, run_id)
        if run["state"] not in TERMINAL:  # a task waits for input
            return states
        if run["state"] != "success":
            raise RunFailedError(dag_id, run_id, states, self.failure_logs(dag_id, run_id, states))
        return states

    def wait_parked(self, dag_id: str, run_id: str, task_id: str, timeout: float = 120) -> None:
        """Wait until the scheduler has seen the worker that asked for input exit.

        Airflow 3.3.1's scheduler fails a task whose resumed try already runs when it processes the exit of the
        try that asked (the executor reports both under one key), so an answer waits for the scheduler's record
        of that exit ("TaskInstance Finished ... state=awaiting_input"), as a person answering later would.
        """
        log = self.runtime.log_file("scheduler")
        marker = f"TaskInstance Finished: dag_id={dag_id}, task_id={task_id}, run_id={run_id}, "

        def parked() -> bool:
            return any(marker in line and "state=awaiting_input" in line for line in log.read_text().splitlines())

        wait_for(parked, timeout, f"the scheduler to see the worker of {run_id}'s request exit")

    def answer(
        self, dag_id: str, run_id: str, task_id: str, option: str, comment: str, timeout: float = 120
    ) -> dict[str, Any]:
        """Answer a task waiting for input (Airflow's Required Actions) as the logged-in user, once the scheduler
        saw the request (:meth:`wait_parked`); the answer.

        :param option: the chosen option (``Approve`` / ``Reject``).
        :param comment: the form's ``comment``.
        """
        self.wait_parked(dag_id, run_id, task_id, timeout)
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails"
        return self("PATCH", path, {"chosen_options": [option], "params_input": {"comment": comment}})

    def failure_logs(self, dag_id: str, run_id: str, states: dict[str, str | None]) -> str:
        """The errors at the end of the last attempt's log of each failed task."""
        out = []
        for task, state in states.items():
            if state not in ("failed", "up_for_retry"):
                continue
            folder = self.runtime.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task}"
            attempts = sorted(folder.glob("attempt=*.log"))
            if attempts:
                events = [json.loads(line) for line in attempts[-1].read_text().splitlines() if line.startswith("{")]
                errors = [e for e in events if e.get("level") == "error" or e.get("error_detail")]
                out.append(f"--- {task} ({attempts[-1]}): {json.dumps(errors[-2:])[-3000:]}")
        return "\n".join(out)


def _started(ti: dict[str, Any]) -> tuple[bool, str, str]:
    return (ti.get("start_date") is None, ti.get("start_date") or "", ti["task_id"])


# ------------------------------------------------------------------------------------------ live traffic


def labelled_traffic_days(today: dt.date, days: int) -> tuple[str, str]:
    """The ``days`` whole days of transactions a demo sends as live traffic: the latest whose labels are in.

    A genuine transaction's outcome becomes known within the seed's review delay (at most
    ``GENUINE_REVIEW_DAYS[1]``, 5 days), and most frauds' within days: traffic of the days that ended that long
    before today has its ground truth arrived by now, inside the monitoring's label lookback, so the monitoring
    job joins labels to it. More recent days would have too few labels for model quality and bias.

    :param today: today's date (UTC).
    :param days: how many days.
    :return: ``(start, end)`` as ``YYYY-MM-DD HH:MM:SS``, ``end`` exclusive.
    """
    from devstack.snowflake.seed import GENUINE_REVIEW_DAYS

    end = today - dt.timedelta(days=math.ceil(GENUINE_REVIEW_DAYS[1]))
    start = end - dt.timedelta(days=days)
    return f"{start:%Y-%m-%d} 00:00:00", f"{end:%Y-%m-%d} 00:00:00"


def transactions(connection: Any, interval: tuple[str, str]) -> tuple[list[str], list[list[str]]]:
    """The transactions of ``interval`` as a scoring client sees them: their ids and the model's input columns.

    :param connection: a Snowflake (devstack) connection; closed here.
    :param interval: ``(start, end)`` as ``YYYY-MM-DD HH:MM:SS``.
    :return: the transaction ids and, in the same order, the rows of the feature SQL's model inputs as a client
        writes them in CSV.
    """
    contract = json.loads((ROOT / "include" / "code" / "common" / "features_schema.json").read_text())
    features = contract["features"]
    sql = (ROOT / "include" / "sql" / "features.sql").read_text()
    with contextlib.closing(connection) as conn:
        cursor = conn.cursor()
        cursor.execute(sql, {"interval_start": interval[0], "interval_end": interval[1]})
        names = [d[0].lower() for d in cursor.description]
        rows = cursor.fetchall()
    positions = [names.index(f) for f in features]
    at_id = names.index("transaction_id")

    def cell(value: Any) -> str:
        if isinstance(value, bool):
            return "1" if value else "0"
        return repr(value) if isinstance(value, float) else str(value)

    return [str(row[at_id]) for row in rows], [[cell(row[p]) for p in positions] for row in rows]


def feature_rows(connection: Any, interval: tuple[str, str]) -> list[list[str]]:
    """The model's input columns of the feature SQL over ``interval``, as a client writes them in CSV.

    :param connection: a Snowflake (devstack) connection; closed here.
    :param interval: ``(start, end)`` as ``YYYY-MM-DD HH:MM:SS``.
    """
    return transactions(connection, interval)[1]


def feature_names() -> list[str]:
    """The model's input columns, in order."""
    return json.loads((ROOT / "include" / "code" / "common" / "features_schema.json").read_text())["features"]


def drifted(rows: Sequence[Sequence[str]], factors: dict[str, float] | None = None) -> list[list[str]]:
    """``rows`` with their spending shifted: each feature of ``factors`` multiplied, the derived ones recomputed.

    ``log_amount`` follows ``amount``, ``amount_to_card_avg_ratio`` follows both, so each row stays one a client
    could send; only the distribution moves.

    :param rows: rows of :func:`feature_rows`.
    :param factors: ``{feature: factor}`` (default :data:`DRIFT_FACTORS`).
    :raises ValueError: a factor names no feature of the model.
    """
    factors = DRIFT_FACTORS if factors is None else factors
    names = feature_names()
    unknown = sorted(set(factors) - set(names))
    if unknown:
        raise ValueError(f"drift factors name no feature of the model: {unknown}; features: {names}")
    at = {n: i for i, n in enumerate(names)}
    out = []
    for row in rows:
        row = list(row)
        for name, factor in factors.items():
            cell = row[at[name]]
            value = float(cell) * factor
            # a count stays a whole number; an amount keeps cents
            row[at[name]] = str(round(value)) if cell.lstrip("-").isdigit() else repr(round(value, 2))
        amount, average = float(row[at["amount"]]), float(row[at["card_avg_amount_7d"]])
        row[at["log_amount"]] = repr(math.log1p(amount))
        if average > 0:
            row[at["amount_to_card_avg_ratio"]] = repr(round(amount / average, 6))
        out.append(row)
    return out


#: SageMaker's InvokeEndpoint ``InferenceId``: 1-64 characters, the first not whitespace, all printable
_INFERENCE_ID = re.compile(r"\A\S[\x20-\x7e]{0,63}\Z")


def predict(client: Any, endpoint: str, rows: Sequence[Sequence[str]], inference_id: str | None = None) -> list[str]:
    """Invoke the endpoint with ``rows`` as CSV; one answer line per row.

    :param client: a ``sagemaker-runtime`` client.
    :param endpoint: the endpoint's name.
    :param rows: the rows.
    :param inference_id: the request's ``InferenceId`` (the transaction id for real-time scoring); data capture
        records it as ``eventMetadata.inferenceId``, and late labels join the inference by it.
    :raises ValueError: ``inference_id`` is not 1-64 printable characters starting with a non-space.
    """
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    extra = {}
    if inference_id is not None:
        extra["InferenceId"] = _check_inference_id(inference_id)
    response = client.invoke_endpoint(
        EndpointName=endpoint, Body=buffer.getvalue().encode(), ContentType="text/csv", Accept="text/csv", **extra
    )
    return response["Body"].read().decode().splitlines()


def _check_inference_id(inference_id: str) -> str:
    """``inference_id`` when SageMaker takes it as an ``InferenceId``.

    :raises ValueError: it is not 1-64 printable characters starting with a non-space.
    """
    if not _INFERENCE_ID.match(inference_id):
        raise ValueError(f"InferenceId {inference_id!r} must be 1-64 printable characters, the first not whitespace")
    return inference_id


def send(
    client: Any,
    endpoint: str,
    rows: Sequence[Sequence[str]],
    batch: int = 100,
    inference_ids: Sequence[str] | None = None,
    clients: int = 8,
) -> int:
    """Send ``rows`` to the endpoint; the number of requests.

    With ``inference_ids`` (one per row, the transaction ids) this is real-time fraud scoring: one request per
    transaction, each with its ``InferenceId``, so every captured record is one transaction that its late label
    joins by id; ``clients`` requests are in flight at once, as from that many point-of-sale clients. Without
    them, rows go in requests of ``batch`` rows, one after the other, and carry no ``InferenceId``: the capture
    then holds one record per request with ``batch`` CSV lines and no id, good for drift but never joined to
    labels.

    :param client: a ``sagemaker-runtime`` client (boto3 clients may be shared between threads).
    :param endpoint: the endpoint's name.
    :param rows: the rows.
    :param batch: rows per request when there are no ``inference_ids``.
    :param inference_ids: the rows' ids, in order.
    :param clients: requests in flight at once for real-time scoring.
    :raises ValueError: ``inference_ids`` and ``rows`` differ in length, an id is not a valid ``InferenceId``, or
        ``clients`` is below 1; nothing is sent then.
    """
    if inference_ids is not None:
        if len(inference_ids) != len(rows):
            raise ValueError(f"{len(inference_ids)} inference ids for {len(rows)} rows: give one id per row")
        if clients < 1:
            raise ValueError(f"clients must be at least 1, got {clients}")
        for inference_id in inference_ids:
            _check_inference_id(inference_id)
        with ThreadPoolExecutor(max_workers=clients, thread_name_prefix="scoring-client") as pool:
            futures = [
                pool.submit(predict, client, endpoint, [row], inference_id)
                for row, inference_id in zip(rows, inference_ids, strict=True)
            ]
            for future in futures:
                future.result()
        return len(rows)
    requests = 0
    for start in range(0, len(rows), batch):
        predict(client, endpoint, rows[start : start + batch])
        requests += 1
    return requests


def captured_records(s3: Any, uri: str, since: dt.datetime | None = None) -> int:
    """How many records data capture wrote under ``uri`` (``s3://bucket/prefix/``): one JSON line per request.

    :param s3: an S3 client.
    :param uri: the endpoint's capture prefix.
    :param since: count only the requests made at or after this time (their ``inferenceTime``).
    """
    bucket, prefix = uri.removeprefix("s3://").split("/", 1)
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            lines = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().splitlines()
            if since is None:
                count += len(lines)
                continue
            for line in lines:
                when = json.loads(line)["eventMetadata"]["inferenceTime"]
                count += dt.datetime.fromisoformat(when.replace("Z", "+00:00")) >= since
    return count


def interval_start() -> dt.datetime:
    """The start of a monitoring interval for traffic sent from now on: the next whole second, once it has come.

    Data capture records ``inferenceTime`` in whole seconds, so a request sent earlier in the current second
    would fall into an interval starting now; waiting for the next second keeps every earlier request out.
    """
    now = dt.datetime.now(dt.UTC)
    start = now.replace(microsecond=0) + dt.timedelta(seconds=1)
    time.sleep((start - now).total_seconds())
    return start
