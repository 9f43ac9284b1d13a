"""``python -m tools.deploy``: the bundle lands at the documented keys of a versioned bucket, only changes
are uploaded, removed DAG files disappear, and MWAA is pointed at the new object versions.

Runs against a moto S3 server on 127.0.0.1 started by the test.
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from ml_lifecycle.config import load_config
from tools import deploy, dist

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "ml-lifecycle-local"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint, monkeypatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    yield client
    versions = client.list_object_versions(Bucket=BUCKET)
    for item in versions.get("Versions", []) + versions.get("DeleteMarkers", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"], VersionId=item["VersionId"])
    client.delete_bucket(Bucket=BUCKET)


@pytest.fixture
def sources(tmp_path) -> Path:
    root = tmp_path / "src"
    for name in ("dags", "plugins", "include"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("requirements.txt", ".airflowignore", "infra/mwaa/startup.sh"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, root / name)
    (root / "dags" / "example_dag.py").write_text("# a DAG file\n")
    return root


@pytest.fixture
def config():
    return load_config("local")


def _build(sources: Path, tmp_path: Path) -> tuple[Path, dict]:
    out = tmp_path / "dist"
    return out, dist.build(out, root=sources)


def _keys(s3) -> set[str]:
    return {obj["Key"] for obj in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def test_first_deploy_puts_everything_at_the_documented_keys(s3, sources, tmp_path, config):
    out, manifest = _build(sources, tmp_path)
    result = deploy.deploy(s3, config, out)

    keys = _keys(s3)
    for entry in manifest["files"]:
        key = f"mwaa/{entry['path']}"
        assert key in keys, key
        assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == (out / entry["path"]).read_bytes()
    for key in ("mwaa/plugins.zip", "mwaa/requirements.txt", "mwaa/startup.sh", "mwaa/manifest.json"):
        assert key in keys
    assert "mwaa/dags/example_dag.py" in keys
    assert "mwaa/dags/include/config/dev.yaml" in keys
    for name in ("plugins.zip", "requirements.txt", "startup.sh"):
        version = result.version_of(name)
        assert version and version != "null", name
        assert s3.head_object(Bucket=BUCKET, Key=f"mwaa/{name}")["VersionId"] == version
    # every component is published, each with common/ inside; common/ is not published on its own
    components = {p.name for p in (sources / "include" / "code").iterdir() if p.is_dir()} - {"common"}
    assert set(result.code) == components
    for info in result.code.values():
        assert info["sourcedir_uri"].startswith(f"s3://{BUCKET}/code/")
        assert info["sourcedir_uri"].removeprefix(f"s3://{BUCKET}/") in keys
        assert "common/features_schema.json" in info["files"]


def test_second_deploy_of_the_same_build_uploads_nothing(s3, sources, tmp_path, config):
    out, _ = _build(sources, tmp_path)
    first = deploy.deploy(s3, config, out)
    second = deploy.deploy(s3, config, out)
    assert second.uploaded == []
    assert second.deleted == []
    assert all(info["uploaded"] == 0 for info in second.code.values())
    for name in deploy.VERSIONED:
        assert second.version_of(name) == first.version_of(name)


def test_a_change_uploads_only_what_changed(s3, sources, tmp_path, config):
    out, _ = _build(sources, tmp_path)
    first = deploy.deploy(s3, config, out)
    with (sources / "plugins" / "ml_lifecycle" / "__init__.py").open("a") as handle:
        handle.write("# changed\n")
    out, _ = _build(sources, tmp_path)
    second = deploy.deploy(s3, config, out)
    assert sorted(second.uploaded) == ["mwaa/manifest.json", "mwaa/plugins.zip"]
    assert second.version_of("plugins.zip") != first.version_of("plugins.zip")
    assert second.version_of("requirements.txt") == first.version_of("requirements.txt")


def test_removed_dag_files_disappear_from_the_bucket(s3, sources, tmp_path, config):
    out, _ = _build(sources, tmp_path)
    deploy.deploy(s3, config, out)
    (sources / "dags" / "example_dag.py").unlink()
    out, _ = _build(sources, tmp_path)
    result = deploy.deploy(s3, config, out)
    assert result.deleted == ["mwaa/dags/example_dag.py"]
    assert "mwaa/dags/example_dag.py" not in _keys(s3)


def test_dry_run_writes_nothing(s3, sources, tmp_path, config):
    out, _ = _build(sources, tmp_path)
    result = deploy.deploy(s3, config, out, dry_run=True)
    assert "mwaa/plugins.zip" in result.uploaded
    assert _keys(s3) == set()


def test_unversioned_bucket_is_refused(s3, sources, tmp_path, config):
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Suspended"})
    out, _ = _build(sources, tmp_path)
    with pytest.raises(deploy.DeployError, match=r"MWAA requires a versioned bucket"):
        deploy.deploy(s3, config, out)
    assert _keys(s3) == set()


def test_a_bundle_edited_after_the_build_is_refused(s3, sources, tmp_path, config):
    out, _ = _build(sources, tmp_path)
    (out / "requirements.txt").write_text("tampered\n")
    with pytest.raises(deploy.DeployError, match=r"requirements\.txt changed after the build"):
        deploy.deploy(s3, config, out)


def test_missing_bundle_names_the_fix(s3, tmp_path, config):
    with pytest.raises(deploy.DeployError, match=r"make dist"):
        deploy.deploy(s3, config, tmp_path / "nothing")


def _mwaa_client():
    return boto3.client("mwaa", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def _deployed() -> deploy.DeployResult:
    result = deploy.DeployResult(bucket=BUCKET, prefix="mwaa")
    result.objects = [
        deploy.ObjectResult("mwaa/plugins.zip", True, "v-plugins-2"),
        deploy.ObjectResult("mwaa/requirements.txt", False, "v-req-1"),
        deploy.ObjectResult("mwaa/startup.sh", False, "v-start-1"),
    ]
    return result


def _environment(plugins_version: str) -> dict:
    return {
        "Environment": {
            "Name": "ml-lifecycle-dev",
            "DagS3Path": "mwaa/dags",
            "PluginsS3Path": "mwaa/plugins.zip",
            "PluginsS3ObjectVersion": plugins_version,
            "RequirementsS3Path": "mwaa/requirements.txt",
            "RequirementsS3ObjectVersion": "v-req-1",
            "StartupScriptS3Path": "mwaa/startup.sh",
            "StartupScriptS3ObjectVersion": "v-start-1",
        }
    }


def test_mwaa_environment_is_pointed_at_new_versions():
    mwaa = _mwaa_client()
    with Stubber(mwaa) as stub:
        stub.add_response("get_environment", _environment("v-plugins-1"), {"Name": "ml-lifecycle-dev"})
        stub.add_response(
            "update_environment",
            {"Arn": "arn:aws:airflow:us-east-1:111122223333:environment/ml-lifecycle-dev"},
            {
                "Name": "ml-lifecycle-dev",
                "PluginsS3Path": "mwaa/plugins.zip",
                "PluginsS3ObjectVersion": "v-plugins-2",
            },
        )
        update = deploy.update_environment(mwaa, "ml-lifecycle-dev", _deployed())
        stub.assert_no_pending_responses()
    assert update == {"PluginsS3Path": "mwaa/plugins.zip", "PluginsS3ObjectVersion": "v-plugins-2"}


def test_mwaa_environment_already_current_is_left_alone():
    mwaa = _mwaa_client()
    with Stubber(mwaa) as stub:
        stub.add_response("get_environment", _environment("v-plugins-2"), {"Name": "ml-lifecycle-dev"})
        assert deploy.update_environment(mwaa, "ml-lifecycle-dev", _deployed()) is None
        stub.assert_no_pending_responses()


def test_command_line_prints_the_object_versions(s3, s3_endpoint, sources, tmp_path, capsys):
    out, _ = _build(sources, tmp_path)
    report = tmp_path / "deploy.json"
    code = deploy.main(["--env", "local", "--dist", str(out), "--endpoint-url", s3_endpoint, "--json", str(report)])
    printed = capsys.readouterr().out
    assert code == 0
    result = json.loads(report.read_text())
    plugins_version = result["versions"]["plugins.zip"]
    assert f"PluginsS3ObjectVersion={plugins_version}" in printed
    assert "RequirementsS3ObjectVersion=" in printed and "StartupScriptS3ObjectVersion=" in printed


def test_command_line_reports_an_unknown_environment(capsys):
    assert deploy.main(["--env", "nosuchenv"]) == 1
    assert "no config file for environment 'nosuchenv'" in capsys.readouterr().err
