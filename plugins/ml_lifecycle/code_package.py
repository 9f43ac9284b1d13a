"""Ship the container code under ``include/code/`` to S3, content-addressed.

Each component folder (``include/code/<component>/``: ``preprocessing``, ``training``, ``evaluation``,
``inference``, ``validation``, ``monitoring``) becomes a deterministic ``tar.gz`` holding its own files
and, under ``common/``, the files of ``include/code/common/`` (the dataset contract and the helpers the
components share). The archive is reproducible: entries sorted, mtimes, owners and modes fixed, gzip
header without a timestamp or file name. The same content therefore always gives the same bytes and the same
SHA-256, and it is published under that hash::

    s3://<bucket>/<code prefix>/<sha256[:16]>/sourcedir.tar.gz    the whole component (training, inference)
    s3://<bucket>/<code prefix>/<sha256[:16]>/src/<file>           its files (processing jobs mount this prefix)

Objects are uploaded only when a HEAD says they are absent. A run whose code did not change reuses the
objects of the run before it; a run whose code changed gets a new prefix, so a running job never sees its
code replaced.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SOURCEDIR_NAME = "sourcedir.tar.gz"
COMMON_DIR = "common"
DIGEST_LENGTH = 16
FIXED_MTIME = 0
_EXCLUDED_DIRS = {"__pycache__", ".pytest_cache", ".ipynb_checkpoints", ".mypy_cache", ".ruff_cache"}
_EXCLUDED_SUFFIXES = (".pyc", ".pyo")


class CodePackageError(RuntimeError):
    """The code folder is missing or empty, or its upload failed."""


@dataclass(frozen=True)
class CodeArchive:
    """One component packaged: its files, the archive bytes and their digest."""

    component: str
    files: dict[str, bytes] = field(repr=False)
    tarball: bytes = field(repr=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.tarball).hexdigest()

    @property
    def digest(self) -> str:
        """The first 16 hex digits of the archive's SHA-256: the S3 folder name."""
        return self.sha256[:DIGEST_LENGTH]


def _included(path: Path, root: Path) -> bool:
    rel = path.relative_to(root)
    if any(part in _EXCLUDED_DIRS or part.startswith(".") for part in rel.parts):
        return False
    return path.is_file() and not path.name.endswith(_EXCLUDED_SUFFIXES) and not path.is_symlink()


def collect_files(folder: Path) -> dict[str, bytes]:
    """Files under ``folder`` (POSIX relative path -> bytes), caches and hidden files left out.

    :raises CodePackageError: the folder does not exist or holds no files
    """
    if not folder.is_dir():
        raise CodePackageError(f"code folder {folder} does not exist")
    files = {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if _included(p, folder)
    }
    if not files:
        raise CodePackageError(f"code folder {folder} holds no files to package")
    return files


def deterministic_tarball(files: dict[str, bytes]) -> bytes:
    """A ``tar.gz`` of ``files`` whose bytes depend only on the paths and contents."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            data = files[name]
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = FIXED_MTIME
            info.mode = 0o755 if name.endswith(".sh") else 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.type = tarfile.REGTYPE
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=FIXED_MTIME, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def package_component(code_root: Path, component: str) -> CodeArchive:
    """Package ``code_root/component`` into a :class:`CodeArchive`, with ``code_root/common`` (when present)
    under ``common/``; a change to ``common`` therefore changes every component's digest.

    :raises CodePackageError: the component is missing or empty, is ``common`` itself, or has its own
        ``common/`` folder
    """
    if component == COMMON_DIR:
        raise CodePackageError(f"{COMMON_DIR!r} is shipped inside every component, not as one of its own")
    files = collect_files(code_root / component)
    if (code_root / COMMON_DIR).is_dir():
        clash = sorted(name for name in files if name.startswith(f"{COMMON_DIR}/"))
        if clash:
            raise CodePackageError(f"{component} has its own {COMMON_DIR}/ ({clash[0]}); it would be overwritten")
        files.update({f"{COMMON_DIR}/{name}": data for name, data in collect_files(code_root / COMMON_DIR).items()})
    return CodeArchive(component=component, files=files, tarball=deterministic_tarball(files))


def _object_exists(s3_client: Any, bucket: str, key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        s3_client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in {"404", "NoSuchKey", "NotFound"}:
            return False
        raise
    return True


def _put(s3_client: Any, bucket: str, key: str, body: bytes, kms_key_id: str | None) -> None:
    extra: dict[str, Any] = {}
    if kms_key_id:
        extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id}
    s3_client.put_object(Bucket=bucket, Key=key, Body=body, **extra)


def publish_component(
    s3_client: Any,
    archive: CodeArchive,
    *,
    bucket: str,
    prefix: str,
    kms_key_id: str | None = None,
) -> dict[str, Any]:
    """Upload ``archive`` under ``s3://bucket/prefix/<digest>/`` unless it is already there.

    :param s3_client: a boto3 S3 client
    :return: ``{"digest", "sha256", "sourcedir_uri", "src_uri", "files", "uploaded"}``; ``uploaded`` counts
        the objects this call wrote (0 when the code was already published)
    """
    base = f"{prefix.strip('/')}/{archive.digest}"
    objects = {f"{base}/{SOURCEDIR_NAME}": archive.tarball}
    objects.update({f"{base}/src/{name}": data for name, data in archive.files.items()})
    uploaded = 0
    for key, body in objects.items():
        if _object_exists(s3_client, bucket, key):
            continue
        _put(s3_client, bucket, key, body, kms_key_id)
        uploaded += 1
    if uploaded:
        log.info(
            "Published %s code %s (%d objects) to s3://%s/%s/",
            archive.component,
            archive.digest,
            uploaded,
            bucket,
            base,
        )
    else:
        log.info("%s code %s is already published at s3://%s/%s/", archive.component, archive.digest, bucket, base)
    return {
        "digest": archive.digest,
        "sha256": archive.sha256,
        "sourcedir_uri": f"s3://{bucket}/{base}/{SOURCEDIR_NAME}",
        "src_uri": f"s3://{bucket}/{base}/src/",
        "files": sorted(archive.files),
        "uploaded": uploaded,
    }


def publish_code(
    s3_client: Any,
    code_root: Path,
    components: tuple[str, ...],
    *,
    bucket: str,
    prefix: str,
    kms_key_id: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Package and publish each of ``components`` (sub-folders of ``code_root``); component -> result."""
    return {
        component: publish_component(
            s3_client, package_component(code_root, component), bucket=bucket, prefix=prefix, kms_key_id=kms_key_id
        )
        for component in components
    }
