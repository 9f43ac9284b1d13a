"""Strict input through the REST API: ``POST /api/v2/dags/{dag_id}/dagRuns`` of a real Airflow API server.

One ``airflow api-server`` (no scheduler: a triggered run stays queued) runs on a free loopback port with a
temporary ``AIRFLOW_HOME`` and SQLite database, the package's DAGs serialized into it by
``airflow dags reserialize``, as ``tools.ui.AirflowUI`` sets Airflow up. Hypothesis draws the requests:

- hyperparameter overrides outside the algorithm's schema, model package ARNs of another account, region or
  group, and S3 URIs in other buckets are refused with HTTP 400 naming the param (and the hyperparameter);
  values inside the rules create the run with the conf as sent;
- a conf key that is not a param is accepted by Airflow 3.3's trigger (it becomes a param without a schema);
  the first task of the run, run by ``airflow tasks test`` on the run the REST API created, fails naming it.
"""

from __future__ import annotations

import json
import string
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml_lifecycle.config import load_config
from ml_lifecycle.hyperparameters import SCHEMAS
from tools.ui import API_TIMEOUT, AirflowUI, UIError, _http

# an API server and four task processes: about 100 s of CPU
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
CFG = load_config("local")
RULES = SCHEMAS[CFG.sagemaker.algorithm]
ACCOUNT, REGION, GROUP = CFG.aws.account_id, CFG.aws.region, CFG.sagemaker.model_package_group
#: the first task of each DAG (what runs before anything else of a run)
FIRST_TASK = {
    "train_model": "plan",
    "deploy_model": "resolve",
    "batch_score": "resolve",
    "monitor_model": "export_labels" if CFG.monitoring.engine == "evidently" else "choose_source",
}


class ApiServer(AirflowUI):
    """Only the API server of :class:`AirflowUI`, with the package's DAGs serialized into its database."""

    def start(self, timeout: float = 300.0) -> str:
        """Migrate, serialize the DAGs, start ``airflow api-server``; the URL once its database is healthy.

        :param timeout: seconds the whole start may take
        """
        from tools.ui import UIInfo

        deadline = time.monotonic() + timeout
        port = self._choose_port()
        self.home.mkdir(parents=True, exist_ok=True)
        self.admin_password()
        self.env = self.environment(port)
        self._migrate(self.env, deadline)
        self.airflow("dags", "reserialize", timeout=max(30.0, deadline - time.monotonic()))
        info = UIInfo(f"http://127.0.0.1:{port}", port, self.home, {})
        info.components["api-server"] = self._spawn("api-server", self.env)
        self._write_state(info)
        while self.health(info.url).get("metadatabase", {}).get("status") != "healthy":
            if self.dead_components(info):
                raise UIError(f"airflow api-server exited; see {self.log_file('api-server')}")
            if time.monotonic() > deadline:
                raise UIError(f"airflow api-server did not answer in time; see {self.log_file('api-server')}")
            time.sleep(0.5)
        return info.url

    def airflow(self, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        """Run ``airflow <args>`` against this server's database.

        :param args: the command's arguments
        :param timeout: seconds it may take
        """
        return subprocess.run(
            [*self.airflow_command(), *args],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


class Api:
    """The REST API of the server, as the admin user."""

    def __init__(self, server: ApiServer, url: str) -> None:
        self.server = server
        self.url = url
        self.token = server.token(url)

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> tuple[int, Any]:
        """``POST /api/v2/dags/{dag_id}/dagRuns`` with ``conf``; the status and the decoded body.

        :param dag_id: the DAG
        :param conf: the run's conf
        """
        body = {"dag_run_id": f"strict__{uuid.uuid4().hex}", "logical_date": None, "conf": conf}
        return _http(
            "POST", f"{self.url}/api/v2/dags/{dag_id}/dagRuns", body=body, token=self.token, timeout=API_TIMEOUT
        )


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    home = tmp_path_factory.mktemp("airflow-api")
    server = ApiServer(home)
    try:
        url = server.start()
        yield Api(server, url)
    finally:
        server.stop()


def _refused(status: int, body: Any, *words: str) -> None:
    assert status == 400, f"HTTP {status}: {body}"
    detail = json.dumps(body)
    for word in words:
        assert word in detail, f"{word!r} not in {detail}"


def _created(status: int, body: Any, conf: dict[str, Any]) -> None:
    assert status == 200, f"HTTP {status}: {body}"
    assert body["state"] == "queued"
    for key, value in conf.items():
        assert body["conf"][key] == value


# ---------------------------------------------------------------------------------------------- strategies


def _json_scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**9), 10**9),
        st.floats(-1e9, 1e9, allow_nan=False),
        st.text(string.ascii_letters + string.digits + " -_.", max_size=10),
    )


def _valid_value(rule: dict[str, Any]) -> st.SearchStrategy[Any]:
    if "anyOf" in rule:
        return st.one_of([_valid_value(option) for option in rule["anyOf"]])
    if "enum" in rule:
        return st.sampled_from(rule["enum"])
    low = rule.get("minimum", rule.get("exclusiveMinimum"))
    high = rule.get("maximum", rule.get("exclusiveMaximum"))
    if rule["type"] == "integer":
        return st.integers(low, high)
    return st.floats(
        low, high, exclude_min="exclusiveMinimum" in rule, exclude_max="exclusiveMaximum" in rule, allow_nan=False
    )


def _breaks(value: Any, rule: dict[str, Any]) -> bool:
    from jsonschema import Draft202012Validator

    return not Draft202012Validator(rule).is_valid(value)


valid_overrides = st.fixed_dictionaries({}, optional={name: _valid_value(rule) for name, rule in RULES.items()})


@st.composite
def bad_overrides(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """Valid overrides plus one bad entry: an unknown name, or a known one with a value its rule refuses."""
    overrides = draw(valid_overrides)
    if draw(st.booleans()):
        name = draw(st.from_regex(r"\A[a-z][a-z_]{0,14}\Z").filter(lambda n: n not in RULES))
        value = draw(_json_scalars())
    else:
        name = draw(st.sampled_from(sorted(RULES)))
        value = draw(_json_scalars().filter(lambda v: _breaks(v, RULES[name])))
    overrides[name] = value
    return overrides, name


_ACCOUNTS = st.from_regex(r"\A\d{12}\Z")
_REGIONS = st.sampled_from(["us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2"])
_GROUPS = st.from_regex(r"\A[a-z][a-z0-9-]{0,20}[a-z0-9]\Z")


@st.composite
def foreign_arns(draw: st.DrawFn) -> str:
    """A model package version ARN with at least one of account, region and group not the environment's."""
    account, region, group = draw(
        st.tuples(
            st.one_of(st.just(ACCOUNT), _ACCOUNTS),
            st.one_of(st.just(REGION), _REGIONS),
            st.one_of(st.just(GROUP), _GROUPS),
        ).filter(lambda t: t != (ACCOUNT, REGION, GROUP))
    )
    return f"arn:aws:sagemaker:{region}:{account}:model-package/{group}/{draw(st.integers(1, 10**6))}"


_KEYS = st.lists(st.from_regex(r"\A[a-z0-9][a-z0-9._-]{0,15}\Z"), max_size=3).map("/".join)
_BUCKETS = st.from_regex(r"\A[a-z0-9][a-z0-9.-]{1,30}[a-z0-9]\Z").filter(lambda b: b != CFG.storage.bucket)


# ---------------------------------------------------------------------------------------------- tests


def test_bad_hyperparameters_are_refused_naming_them(api: Api):
    @EXAMPLES
    @given(case=bad_overrides())
    def check(case: tuple[dict[str, Any], str]) -> None:
        overrides, name = case
        status, body = api.trigger("train_model", {"hyperparameters": overrides})
        _refused(status, body, "Invalid input for param hyperparameters", name)

    check()


def test_hyperparameters_within_the_schema_create_the_run(api: Api):
    @EXAMPLES
    @given(overrides=valid_overrides)
    def check(overrides: dict[str, Any]) -> None:
        conf = {"hyperparameters": overrides, "window_days": 30}
        _created(*api.trigger("train_model", conf), conf)

    check()


@pytest.mark.parametrize("dag_id", ["deploy_model", "batch_score"])
def test_a_model_package_of_another_group_region_or_account_is_refused(api: Api, dag_id: str):
    @EXAMPLES
    @given(arn=foreign_arns())
    def check(arn: str) -> None:
        _refused(*api.trigger(dag_id, {"model_package_arn": arn}), "Invalid input for param model_package_arn")

    check()
    own = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/12"
    _created(*api.trigger(dag_id, {"model_package_arn": own}), {"model_package_arn": own})


def test_a_baseline_dataset_outside_the_environments_buckets_is_refused(api: Api):
    @EXAMPLES
    @given(bucket=_BUCKETS, key=_KEYS)
    def check(bucket: str, key: str) -> None:
        uri = f"s3://{bucket}/{key}"
        _refused(
            *api.trigger("deploy_model", {"baseline_dataset_uri": uri}), "Invalid input for param baseline_dataset"
        )

    check()

    @EXAMPLES
    @given(key=_KEYS)
    def own(key: str) -> None:
        conf = {"baseline_dataset_uri": f"s3://{CFG.storage.bucket}/{key}"}
        _created(*api.trigger("deploy_model", conf), conf)

    own()


def test_an_unknown_conf_key_is_taken_by_the_trigger_and_refused_by_the_run_naming_it(api: Api):
    """Airflow 3.3's trigger accepts a key that is not a param; every task checks the conf before its work."""
    from airflow.dag_processing.dagbag import DagBag

    from ml_lifecycle.strict_input import refuse_unknown_conf_keys

    dags = DagBag(dag_folder=str(ROOT / "dags")).dags

    @EXAMPLES
    @given(
        dag_id=st.sampled_from(sorted(FIRST_TASK)), key=st.from_regex(r"\A[a-z][a-z_]{0,20}\Z"), value=_json_scalars()
    )
    def check(dag_id: str, key: str, value: Any) -> None:
        dag = dags[dag_id]
        status, body = api.trigger(dag_id, {key: value})
        if key in dag.params:
            return  # a declared param: its own schema decides (the tests above)
        _created(status, body, {key: value})
        context = {"dag_run": type("Run", (), {"conf": body["conf"]})(), "task": dag.get_task(FIRST_TASK[dag_id])}
        with pytest.raises(
            Exception, match=rf"{dag_id}: unknown conf key '{key}' \(not a param of the DAG; accepted: "
        ):
            refuse_unknown_conf_keys(context)

    check()


@pytest.mark.parametrize("dag_id", sorted(FIRST_TASK))
def test_the_first_task_of_a_run_triggered_with_an_unknown_key_fails_naming_it(api: Api, dag_id: str):
    """The run the REST API created, its first task run as a worker runs it (``airflow tasks test``)."""
    status, body = api.trigger(dag_id, {"window_dayz": 30})
    assert status == 200, body
    proc = api.server.airflow("tasks", "test", dag_id, FIRST_TASK[dag_id], body["dag_run_id"])
    output = proc.stdout + proc.stderr
    assert f"{dag_id}: unknown conf key 'window_dayz' (not a param of the DAG; accepted: " in output, output[-4000:]
    assert "AirflowFailException" in output, output[-4000:]
    # nothing ran: the check comes before the task's own work
    assert "Marking task as SUCCESS" not in output, output[-4000:]
