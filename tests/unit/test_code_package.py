from __future__ import annotations

import io
import tarfile
import time

import boto3
import pytest
from moto import mock_aws

from ml_lifecycle.code_package import (
    CodePackageError,
    deterministic_tarball,
    package_component,
    publish_code,
)
from ml_lifecycle.config import include_dir

BUCKET = "code-bucket"


def _write(root, files):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_same_content_gives_the_same_bytes(tmp_path):
    _write(tmp_path / "a" / "training", {"train.py": "print(1)\n", "lib/util.py": "X = 1\n"})
    first = package_component(tmp_path / "a", "training")
    time.sleep(1.1)  # a later mtime must not change the archive
    _write(tmp_path / "b" / "training", {"lib/util.py": "X = 1\n", "train.py": "print(1)\n"})
    second = package_component(tmp_path / "b", "training")
    assert first.tarball == second.tarball
    assert first.digest == second.digest and len(first.digest) == 16


def test_changed_content_changes_the_digest(tmp_path):
    _write(tmp_path / "training", {"train.py": "print(1)\n"})
    before = package_component(tmp_path, "training").digest
    _write(tmp_path / "training", {"train.py": "print(2)\n"})
    assert package_component(tmp_path, "training").digest != before


def test_archive_has_sorted_normalised_entries_and_no_caches(tmp_path):
    _write(tmp_path / "training", {"z.py": "", "a.py": "", "__pycache__/a.cpython-311.pyc": "", ".hidden": ""})
    archive = package_component(tmp_path, "training")
    with tarfile.open(fileobj=io.BytesIO(archive.tarball), mode="r:gz") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["a.py", "z.py"]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}


def test_missing_or_empty_component_is_an_error(tmp_path):
    with pytest.raises(CodePackageError, match="does not exist"):
        package_component(tmp_path, "training")
    (tmp_path / "training" / "__pycache__").mkdir(parents=True)
    with pytest.raises(CodePackageError, match="no files"):
        package_component(tmp_path, "training")


def test_gzip_header_has_no_timestamp():
    data = deterministic_tarball({"a": b"1"})
    assert data[4:8] == b"\x00\x00\x00\x00"


@mock_aws
def test_publish_uploads_once_and_reuses_unchanged_code(tmp_path):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    _write(tmp_path / "training", {"train.py": "print(1)\n"})
    _write(tmp_path / "preprocessing", {"preprocess.py": "print(2)\n"})
    first = publish_code(s3, tmp_path, ("training", "preprocessing"), bucket=BUCKET, prefix="code")
    second = publish_code(s3, tmp_path, ("training", "preprocessing"), bucket=BUCKET, prefix="code")
    assert first["training"]["uploaded"] == 2 and second["training"]["uploaded"] == 0
    digest = first["training"]["digest"]
    assert first["training"]["sourcedir_uri"] == f"s3://{BUCKET}/code/{digest}/sourcedir.tar.gz"
    body = s3.get_object(Bucket=BUCKET, Key=f"code/{digest}/sourcedir.tar.gz")["Body"].read()
    assert body == package_component(tmp_path, "training").tarball
    script = first["preprocessing"]["src_uri"] + "preprocess.py"
    key = script.removeprefix(f"s3://{BUCKET}/")
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"print(2)\n"


@mock_aws
def test_publish_fills_in_a_partly_published_prefix(tmp_path):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    _write(tmp_path / "training", {"train.py": "print(1)\n"})
    first = publish_code(s3, tmp_path, ("training",), bucket=BUCKET, prefix="code")["training"]
    s3.delete_object(Bucket=BUCKET, Key=f"code/{first['digest']}/src/train.py")
    again = publish_code(s3, tmp_path, ("training",), bucket=BUCKET, prefix="code")["training"]
    assert again["uploaded"] == 1


def test_the_repository_code_packages():
    root = include_dir() / "code"
    for component in ("training", "preprocessing", "inference"):
        archive = package_component(root, component)
        assert archive.files, component
    assert "train.py" in package_component(root, "training").files


def test_common_is_shipped_inside_every_component(tmp_path):
    _write(tmp_path / "training", {"train.py": "print(1)\n"})
    _write(tmp_path / "preprocessing", {"preprocess.py": "print(2)\n"})
    _write(tmp_path / "common", {"contract.py": "X = 1\n", "features_schema.json": "{}\n"})
    for component in ("training", "preprocessing"):
        archive = package_component(tmp_path, component)
        with tarfile.open(fileobj=io.BytesIO(archive.tarball), mode="r:gz") as tar:
            names = tar.getnames()
        assert "common/contract.py" in names and "common/features_schema.json" in names, component
        assert archive.files["common/contract.py"] == b"X = 1\n"


def test_a_change_to_common_changes_every_component_digest(tmp_path):
    _write(tmp_path / "training", {"train.py": "print(1)\n"})
    _write(tmp_path / "preprocessing", {"preprocess.py": "print(2)\n"})
    _write(tmp_path / "common", {"contract.py": "X = 1\n"})
    before = {c: package_component(tmp_path, c).digest for c in ("training", "preprocessing")}
    _write(tmp_path / "common", {"contract.py": "X = 2\n"})
    after = {c: package_component(tmp_path, c).digest for c in ("training", "preprocessing")}
    assert all(before[c] != after[c] for c in before)


def test_common_is_not_a_component_and_cannot_be_shadowed(tmp_path):
    _write(tmp_path / "common", {"contract.py": "X = 1\n"})
    _write(tmp_path / "training", {"train.py": "", "common/contract.py": "X = 9\n"})
    with pytest.raises(CodePackageError, match="shipped inside every component"):
        package_component(tmp_path, "common")
    with pytest.raises(CodePackageError, match="has its own common/"):
        package_component(tmp_path, "training")


@pytest.mark.parametrize(
    "component", ["preprocessing", "training", "evaluation", "inference", "validation"], ids=lambda c: c
)
def test_every_repository_component_carries_the_contract(component):
    root = include_dir() / "code"
    files = package_component(root, component).files
    assert files["common/features_schema.json"] == (root / "common" / "features_schema.json").read_bytes()
    assert files["common/contract.py"] == (root / "common" / "contract.py").read_bytes()
