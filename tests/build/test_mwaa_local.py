"""``tools.mwaa_local`` without starting Airflow: the bundle's layout, the install inputs, MWAA's settings."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from tools import mwaa_local as ml
from tools.dist import build

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ml.Constraints(
    airflow="apache-airflow==3.3.1\nnumpy==2.5.1\nscipy==1.18.0\npandas==3.0.5\n",
    essential="apache-airflow==3.3.1\n",
    source="test",
)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist") / "mwaa"
    build(out)
    return out


class FakeStack:
    """What ``MwaaLocal`` reads of a running devstack, without one."""

    snowflake_port = 5999

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:5998",
            "AWS_ACCESS_KEY_ID": "devstack",
            "AIRFLOW_CONN_AWS_DEFAULT": '{"conn_type": "aws"}',
            "DEVSTACK_STATE_DIR": "/tmp/x",
        }


def test_the_template_options_become_mwaa_variables() -> None:
    options = ml.configuration_options({"MlLifecycleEnv": "dev"})
    assert options["AIRFLOW__SECRETS__BACKEND"] == (
        "airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend"
    )
    assert json.loads(options["AIRFLOW__SECRETS__BACKEND_KWARGS"]) == {
        "connections_prefix": "airflow/connections",
        "variables_prefix": "airflow/variables",
    }
    assert options["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert options["AIRFLOW__ML_LIFECYCLE__ENV"] == "dev"


def test_an_option_that_cannot_be_resolved_locally_is_named(tmp_path: Path) -> None:
    template = tmp_path / "t.yaml"
    template.write_text(
        "Resources:\n  Env:\n    Type: AWS::MWAA::Environment\n    Properties:\n"
        "      AirflowConfigurationOptions:\n        core.x: !GetAtt Bucket.Arn\n"
    )
    with pytest.raises(ml.MwaaLocalError, match=r"'core\.x'"):
        ml.configuration_options({"MlLifecycleEnv": "local"}, template)


@pytest.mark.parametrize(
    ("python", "kept"),
    [
        pytest.param("3.11", {"apache-airflow", "pandas"}, id="py311-drops-numpy-scipy"),
        pytest.param("3.12", {"apache-airflow", "pandas", "numpy", "scipy"}, id="py312-keeps-all"),
    ],
)
def test_airflow_constraints_follow_the_interpreter(python: str, kept: set[str]) -> None:
    text = ml.for_python(CONSTRAINTS.airflow, python)
    assert {line.split("==")[0] for line in text.splitlines()} == kept


def test_the_virtualenv_is_keyed_by_every_input() -> None:
    key = ml.venv_key(b"pandas==3.0.5\n", CONSTRAINTS, "3.11.7")
    assert key == ml.venv_key(b"pandas==3.0.5\n", CONSTRAINTS, "3.11.7")
    changed = [
        ml.venv_key(b"pandas==3.0.6\n", CONSTRAINTS, "3.11.7"),
        ml.venv_key(b"pandas==3.0.5\n", ml.Constraints(CONSTRAINTS.airflow + "x==1\n", "", "t"), "3.11.7"),
        ml.venv_key(b"pandas==3.0.5\n", ml.Constraints(CONSTRAINTS.airflow, "y==1\n", "t"), "3.11.7"),
        ml.venv_key(b"pandas==3.0.5\n", CONSTRAINTS, "3.11.8"),
    ]
    assert key not in changed and len(set(changed)) == 4


def test_a_requirements_file_without_mwaas_constraint_line_is_refused(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("pandas==3.0.5\n")
    with pytest.raises(ml.MwaaLocalError, match="--constraint line"):
        ml.ensure_venv(requirements, venvs=tmp_path / "venvs", constraints=CONSTRAINTS)


def test_the_bundle_is_laid_out_as_mwaa_does(bundle: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "plugins" / "stale").mkdir(parents=True)
    ml.lay_out(bundle, home)
    assert not (home / "plugins" / "stale").exists(), "the plugins folder is replaced, as a new plugins.zip does"
    with zipfile.ZipFile(bundle / "plugins.zip") as archive:
        names = {n for n in archive.namelist() if not n.endswith("/")}
    assert {p.relative_to(home / "plugins").as_posix() for p in (home / "plugins").rglob("*") if p.is_file()} == names
    assert (home / "plugins" / "ml_lifecycle" / "__init__.py").is_file()
    assert sorted(p.name for p in (home / "dags").glob("*.py")) == sorted(p.name for p in (ROOT / "dags").glob("*.py"))
    assert (home / "dags" / "include" / "config" / "local.yaml").is_file()
    assert (home / "startup.sh").is_file()


def test_a_bundle_that_differs_from_its_manifest_is_refused(bundle: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "mwaa"
    shutil.copytree(bundle, copy)
    ml.check_bundle(copy)
    (copy / "dags" / "train_model.py").write_text("# edited after the build\n")
    with pytest.raises(ml.MwaaLocalError, match=r"train_model\.py differs from the manifest"):
        ml.check_bundle(copy)
    (copy / "plugins.zip").unlink()
    with pytest.raises(ml.MwaaLocalError, match=r"plugins\.zip is missing"):
        ml.check_bundle(copy)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param({"AIRFLOW__ML_LIFECYCLE__ENV": "dev"}, "dev", id="configuration-option"),
        pytest.param({"AIRFLOW_ENV_NAME": "ml-lifecycle-prod"}, "prod", id="environment-name"),
    ],
)
def test_startup_sh_is_sourced_with_mwaas_variables(
    bundle: Path, tmp_path: Path, given: dict[str, str], expected: str
) -> None:
    home = tmp_path / "home"
    ml.lay_out(bundle, home)
    env = {"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(home)} | given
    exports = ml.startup_exports(home / "startup.sh", env, tmp_path / "startup.log")
    assert exports["ML_LIFECYCLE_ENV"] == expected
    assert exports["ML_LIFECYCLE_INCLUDE_DIR"] == str(home / "dags" / "include")
    assert "ML_LIFECYCLE_ENV" in (tmp_path / "startup.log").read_text(), "the script's output is logged"


def test_a_failing_startup_script_stops_the_start(tmp_path: Path) -> None:
    script = tmp_path / "startup.sh"
    script.write_text("#!/usr/bin/env bash\necho broken >&2\nfalse\n")
    with pytest.raises(ml.MwaaLocalError, match="exit code 1"):
        ml.startup_exports(script, {"PATH": "/usr/bin:/bin"}, tmp_path / "startup.log")


def test_components_get_mwaas_settings_and_nothing_of_the_repository(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", f"{ROOT}/plugins:{ROOT}")
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
    monkeypatch.setenv("AIRFLOW_CONN_SNOWFLAKE_DEFAULT", '{"conn_type": "snowflake"}')
    monkeypatch.setenv("AWS_PROFILE", "someone-real")
    monkeypatch.setenv("PATH", f"{ROOT / '.venv' / 'bin'}:/usr/bin:/bin")
    home, venv = tmp_path / "home", tmp_path / "venv"
    ml.lay_out(bundle, home)
    runtime = ml.MwaaLocal(home, venv=venv, stack_info=FakeStack())
    assert runtime.metadb is not None, "the metadata database is PostgreSQL, as on MWAA"
    monkeypatch.setattr(runtime.metadb, "url", lambda: "postgresql+psycopg2://airflow:pw@127.0.0.1:5999/airflow")
    env = runtime.component_environment("scheduler", runtime.environment(8123))
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql+psycopg2://airflow:pw@127.0.0.1:5999/airflow"
    assert "PYTHONPATH" not in env and "AWS_PROFILE" not in env
    assert not [k for k in env if k.startswith(("AIRFLOW_CONN_", "DEVSTACK_"))]
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(home / "dags")
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(home / "plugins")
    assert env["AIRFLOW__SECRETS__BACKEND"].endswith("SecretsManagerBackend")
    assert env["AIRFLOW_ENV_NAME"] == "ml-lifecycle-local" and env["MWAA_AIRFLOW_COMPONENT"] == "scheduler"
    assert env["ML_LIFECYCLE_ENV"] == "local", "startup.sh selected the environment"
    assert env["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:5998"
    assert env["PATH"].split(":")[0] == str(venv / "bin")
    assert str(ROOT / ".venv" / "bin") not in env["PATH"].split(":")
    assert runtime.airflow_command() == [str(venv / "bin" / "airflow")]
    assert runtime.workdir == home.resolve()


def test_connections_go_to_secrets_manager_under_the_templates_prefix(bundle: Path, tmp_path: Path) -> None:
    from moto import mock_aws

    home = tmp_path / "home"
    ml.lay_out(bundle, home)
    with mock_aws():
        import boto3

        def client(service: str) -> object:
            return boto3.client(service, region_name="us-east-1")

        stack = SimpleNamespace(
            client=client,
            airflow_aws_connection=lambda: {"conn_type": "aws", "extra": {"region_name": "us-east-1"}},
            airflow_snowflake_connection=lambda: {"conn_type": "snowflake", "host": "127.0.0.1", "port": 5999},
        )
        options = ml.configuration_options({"MlLifecycleEnv": "local"})
        names = ml.seed_devstack(stack, home, "local", options)
        ml.seed_devstack(stack, home, "local", options)  # twice: the secrets are updated, not duplicated
        assert names == ["airflow/connections/aws_default", "airflow/connections/snowflake_default"]
        value = client("secretsmanager").get_secret_value(SecretId="airflow/connections/snowflake_default")
        assert json.loads(value["SecretString"])["port"] == 5999
        assert "ml-lifecycle-local" in {b["Name"] for b in client("s3").list_buckets()["Buckets"]}
        # the approval queue of approval_events.queue_url, and the stack's rule that fills it
        queue = client("sqs").get_queue_url(QueueName="ml-lifecycle-local-approvals")["QueueUrl"]
        arn = client("sqs").get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        (target,) = client("events").list_targets_by_rule(Rule="ml-lifecycle-local-approvals")["Targets"]
        assert target["Arn"] == arn
