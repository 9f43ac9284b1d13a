"""``docker-compose.yaml``, the images it builds and ``airflow_settings.yaml``, checked statically (no Docker
engine here): the services exist and start in order, versions are pinned to MWAA's (Airflow 3.3.1, Python
3.12), mounts and build files exist, ports do not clash, and connections match ``include/config/local.yaml``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from ml_lifecycle.config import load_config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
AIRFLOW_SERVICES = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"}
DEVSTACK_SERVICES = {"devstack-aws", "devstack-sagemaker", "devstack-snowflake"}
ONE_SHOT = {"airflow-init", "devstack-seed"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def local_conn_ids() -> set[str]:
    cfg = load_config("local")
    return {cfg.aws.conn_id, cfg.snowflake.conn_id}


def _dockerfile(service: dict) -> Path:
    return ROOT / service["build"]["context"] / service["build"]["dockerfile"]


def _from_line(dockerfile: Path) -> str:
    return next(line.split()[1] for line in dockerfile.read_text().splitlines() if line.startswith("FROM "))


def test_the_stack_has_its_services(services):
    assert set(services) == {"postgres"} | AIRFLOW_SERVICES | DEVSTACK_SERVICES | ONE_SHOT


def test_airflow_image_is_3_3_1_on_python_3_12(services):
    for name in AIRFLOW_SERVICES | {"airflow-init"}:
        dockerfile = _dockerfile(services[name])
        assert _from_line(dockerfile) == "apache/airflow:3.3.1-python3.12", name
        assert '"apache-airflow==3.3.1"' in dockerfile.read_text(), "requirements must not move Airflow"
        assert services[name]["image"] == "ml-lifecycle-airflow:3.3.1-python3.12"


def test_every_image_is_pinned(services):
    for name, service in services.items():
        image = service.get("image", "")
        assert image and not image.endswith(":latest") and ":" in image, name
        if "build" in service:
            base = _from_line(_dockerfile(service))
            assert ":" in base and not base.endswith(":latest"), f"{name}: {base}"


def test_astro_dockerfile_uses_python_3_12():
    assert _from_line(ROOT / "Dockerfile").endswith("-python-3.12")


def test_mounted_and_copied_host_paths_exist(services):
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source}"
        if "build" in service:
            dockerfile = _dockerfile(service)
            assert dockerfile.is_file(), name
            for line in dockerfile.read_text().splitlines():
                if line.startswith("COPY "):
                    for source in line.split()[1:-1]:
                        assert (ROOT / service["build"]["context"] / source).exists(), f"{dockerfile}: {source}"


def test_airflow_services_mount_dags_plugins_and_include(services):
    for name in AIRFLOW_SERVICES:
        mounts = {v.split(":")[1] for v in services[name]["volumes"] if v.startswith(".")}
        assert mounts == {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include"}, name
        assert services[name]["environment"]["ML_LIFECYCLE_ENV"] == "local"


def test_ports_are_unique(services):
    published = [p.split(":")[0] for s in services.values() for p in s.get("ports", [])]
    assert len(published) == len(set(published)), published


def test_long_running_services_have_healthchecks(services):
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service["restart"] == "no", name
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_dependencies_wait_for_health_or_completion(services):
    for name, service in services.items():
        for dependency, spec in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            condition = spec["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits on {dependency}'s missing healthcheck"
            else:
                assert condition == "service_completed_successfully" and dependency in ONE_SHOT, (name, dependency)
    for name in AIRFLOW_SERVICES:
        needs = services[name]["depends_on"]
        assert needs["airflow-init"]["condition"] == "service_completed_successfully"
        assert needs["postgres"]["condition"] == "service_healthy"
        assert needs["devstack-seed"]["condition"] == "service_completed_successfully"


def _compose_connections(service: dict) -> dict[str, dict]:
    env = service["environment"]
    return {
        key.removeprefix("AIRFLOW_CONN_").lower(): json.loads(v)
        for key, v in env.items()
        if key.startswith("AIRFLOW_CONN_")
    }


def _hosts_and_ports(connection: dict) -> set[tuple[str, int]]:
    found = set()
    for url in re.findall(r"https?://[^\"'\s]+", json.dumps(connection)):
        parsed = urlparse(url)
        found.add((parsed.hostname, parsed.port))
    if connection.get("host"):
        found.add((connection["host"], connection["port"]))
    return found


def test_compose_connections_match_local_config_and_services(services, local_conn_ids):
    from airflow.models.connection import Connection

    published = {
        name: {int(p.split(":")[-1]) for p in s.get("ports", [])} for name, s in services.items() if s.get("ports")
    }
    for name in AIRFLOW_SERVICES:
        connections = _compose_connections(services[name])
        assert set(connections) == local_conn_ids, name
        for conn_id, value in connections.items():
            Connection.from_json(json.dumps(value), conn_id=conn_id)  # Airflow parses it
            for host, port in _hosts_and_ports(value):
                assert host in published and port in published[host], f"{conn_id}: {host}:{port}"


def test_astro_settings_connections_match_local_config_and_compose(services, local_conn_ids):
    settings = yaml.safe_load((ROOT / "airflow_settings.yaml").read_text())["airflow"]["connections"]
    assert {c["conn_id"] for c in settings} == local_conn_ids
    compose = _compose_connections(services["airflow-scheduler"])
    for connection in settings:
        ours = compose[connection["conn_id"]]
        assert connection["conn_type"] == ours["conn_type"]
        assert connection.get("conn_extra", {}) == ours.get("extra", {}), connection["conn_id"]
        assert connection.get("conn_host") == ours.get("host")
        assert connection.get("conn_port") == ours.get("port")


def test_devstack_services_run_existing_modules_with_known_options(services):
    for name in DEVSTACK_SERVICES:
        command = services[name]["command"]
        assert command[:2] == ["python", "-m"], name
        module = command[2]
        # the module's own command line, as the container runs it: its --help lists every option it takes
        proc = subprocess.run(
            [sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, f"{name}: python -m {module} --help failed: {proc.stderr[-2000:]}"
        for option in command[3:]:
            assert re.search(rf"(?m)^\s+(?:-\w, )?{re.escape(option.split('=')[0])}\b", proc.stdout), (
                f"{name}: {module} has no option {option}"
            )
        assert "--host=0.0.0.0" in command, f"{name} must listen beyond the container's loopback"


def test_seed_command_compiles_and_names_real_functions(services):
    code = services["devstack-seed"]["command"][2]
    compile(code, "devstack-seed", "exec")
    from devstack.snowflake.seed import SeedParams, seed

    assert callable(seed) and SeedParams().seed == 42
