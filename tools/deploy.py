"""Upload the MWAA bundle built by ``python -m tools.dist`` to an environment's bucket.

The bucket and region come from ``include/config/<env>.yaml`` (``storage.bucket``, ``aws.region``); objects
are written with SSE-KMS when ``storage.kms_key_id`` is set. Keys (``--prefix``, default ``mwaa``)::

    s3://<bucket>/mwaa/dags/...            the DAG folder (MWAA's DagS3Path: mwaa/dags)
    s3://<bucket>/mwaa/plugins.zip         MWAA's PluginsS3Path
    s3://<bucket>/mwaa/requirements.txt    MWAA's RequirementsS3Path
    s3://<bucket>/mwaa/startup.sh          MWAA's StartupScriptS3Path
    s3://<bucket>/mwaa/manifest.json       what was deployed: files, digests, git commit
    s3://<bucket>/<code prefix>/<digest>/  the container code packages (ml_lifecycle.code_package)

An object is uploaded only when its SHA-256 (kept in the object's ``sha256`` metadata) differs from the
built file, so a second deploy of the same build uploads nothing. DAG-folder objects that are no longer in
the build are deleted, so a removed DAG disappears from MWAA. The bucket must be versioned (MWAA requires
it): plugins.zip, requirements.txt and startup.sh are referenced by S3 object version, and their version ids
are printed for ``aws mwaa update-environment``; ``--mwaa-environment NAME`` makes that call itself when a
version changed.

Usage: ``python -m tools.deploy --env dev [--dist dist/mwaa] [--dry-run] [--mwaa-environment NAME]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mimetypes
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "plugins") not in sys.path:  # the package, as on MWAA; the Makefile sets PYTHONPATH too
    sys.path.insert(0, str(ROOT / "plugins"))

from ml_lifecycle import code_package  # noqa: E402
from ml_lifecycle.config import Config, ConfigError, load_config  # noqa: E402

DEFAULT_DIST = ROOT / "dist" / "mwaa"
DEFAULT_PREFIX = "mwaa"
DIGEST_METADATA = "sha256"
# Objects MWAA references by S3 object version, and the UpdateEnvironment fields that carry the version.
VERSIONED = {
    "plugins.zip": ("PluginsS3Path", "PluginsS3ObjectVersion"),
    "requirements.txt": ("RequirementsS3Path", "RequirementsS3ObjectVersion"),
    "startup.sh": ("StartupScriptS3Path", "StartupScriptS3ObjectVersion"),
}


class DeployError(RuntimeError):
    """The bundle or the target is not fit to deploy; the message says what to fix."""


@dataclass
class ObjectResult:
    key: str
    uploaded: bool
    version_id: str | None


@dataclass
class DeployResult:
    bucket: str
    prefix: str
    objects: list[ObjectResult] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    code: dict[str, dict[str, Any]] = field(default_factory=dict)
    mwaa_update: dict[str, Any] | None = None

    @property
    def uploaded(self) -> list[str]:
        return [o.key for o in self.objects if o.uploaded]

    def version_of(self, name: str) -> str | None:
        key = f"{self.prefix}/{name}"
        return next((o.version_id for o in self.objects if o.key == key), None)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["versions"] = {name: self.version_of(name) for name in VERSIONED}
        return data


def read_manifest(dist: Path) -> dict[str, Any]:
    """The build's manifest, with every listed file present and matching its digest."""
    path = dist / "manifest.json"
    if not path.is_file():
        raise DeployError(f"{path} does not exist: build the bundle first (make dist)")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    for entry in manifest["files"]:
        file = dist / entry["path"]
        if not file.is_file():
            raise DeployError(f"{file} is listed in the manifest but missing: rebuild with make dist")
        if hashlib.sha256(file.read_bytes()).hexdigest() != entry["sha256"]:
            raise DeployError(f"{file} changed after the build (digest mismatch): rebuild with make dist")
    names = {entry["path"] for entry in manifest["files"]}
    missing = [name for name in ("plugins.zip", "requirements.txt", "startup.sh") if name not in names]
    if missing or not any(name.startswith("dags/") for name in names):
        raise DeployError(f"{path}: the bundle lacks {', '.join(missing) or 'dags/'}; rebuild with make dist")
    return manifest


def _content_type(name: str) -> str:
    if name.endswith((".py", ".sh", ".sql", ".txt", ".airflowignore", ".yaml", ".yml")):
        return "text/plain; charset=utf-8"
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _remote_state(s3: Any, bucket: str, key: str) -> tuple[str | None, str | None]:
    """(sha256 metadata, version id) of an object, or (None, None) when it does not exist."""
    from botocore.exceptions import ClientError

    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code")) in {"404", "NoSuchKey", "NotFound"}:
            return None, None
        raise
    return head.get("Metadata", {}).get(DIGEST_METADATA), head.get("VersionId")


def check_bucket(s3: Any, bucket: str, *, allow_unversioned: bool) -> None:
    from botocore.exceptions import ClientError

    try:
        status = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        raise DeployError(f"s3://{bucket}: cannot read its versioning ({code}); does the bucket exist?") from exc
    if status != "Enabled" and not allow_unversioned:
        raise DeployError(
            f"s3://{bucket}: versioning is {status or 'not enabled'}; MWAA requires a versioned bucket "
            "(infra/cloudformation/ml-lifecycle.yaml creates one)"
        )


def deploy(
    s3: Any,
    config: Config,
    dist: Path = DEFAULT_DIST,
    *,
    prefix: str = DEFAULT_PREFIX,
    bucket: str | None = None,
    dry_run: bool = False,
    prune: bool = True,
    publish_code: bool = True,
    allow_unversioned: bool = False,
) -> DeployResult:
    """Upload what changed in ``dist`` to ``s3://<bucket>/<prefix>/`` and publish the container code.

    :param s3: a boto3 S3 client
    :param config: the target environment's configuration (bucket, KMS key, code prefix)
    :param dist: the folder built by ``tools.dist``
    :param prefix: key prefix of the MWAA objects
    :param bucket: overrides ``storage.bucket``
    :param dry_run: report what would change, write nothing
    :param prune: delete objects under ``<prefix>/dags/`` that the build no longer has
    :param publish_code: also publish ``include/code/*`` as content-addressed packages
    :param allow_unversioned: accept a bucket without versioning (a local test bucket)
    """
    manifest = read_manifest(dist)
    bucket = bucket or config.storage.bucket
    prefix = prefix.strip("/")
    kms = config.storage.kms_key_id
    check_bucket(s3, bucket, allow_unversioned=allow_unversioned)
    result = DeployResult(bucket=bucket, prefix=prefix)

    entries = sorted(manifest["files"], key=lambda e: e["path"])
    entries.append({"path": "manifest.json", "sha256": None})
    for entry in entries:
        key = f"{prefix}/{entry['path']}"
        body = (dist / entry["path"]).read_bytes()
        digest = entry["sha256"] or hashlib.sha256(body).hexdigest()
        remote_digest, version = _remote_state(s3, bucket, key)
        if remote_digest == digest:
            result.objects.append(ObjectResult(key, False, version))
            continue
        if dry_run:
            result.objects.append(ObjectResult(key, True, None))
            continue
        extra: dict[str, Any] = {"Metadata": {DIGEST_METADATA: digest}, "ContentType": _content_type(key)}
        if kms:
            extra.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=kms)
        response = s3.put_object(Bucket=bucket, Key=key, Body=body, **extra)
        result.objects.append(ObjectResult(key, True, response.get("VersionId")))

    if prune:
        wanted = {f"{prefix}/{e['path']}" for e in manifest["files"]}
        stale: list[str] = []
        paginator = s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=f"{prefix}/dags/"):
            stale += [obj["Key"] for obj in page.get("Contents", []) if obj["Key"] not in wanted]
        if stale and not dry_run:
            for start in range(0, len(stale), 1000):
                batch = [{"Key": key} for key in stale[start : start + 1000]]
                response = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
                if response.get("Errors"):
                    failed = ", ".join(f"{e['Key']} ({e.get('Code')})" for e in response["Errors"])
                    raise DeployError(f"could not delete stale DAG-folder objects: {failed}")
        result.deleted = sorted(stale)

    code_root = dist / "dags" / "include" / "code"
    if publish_code and code_root.is_dir() and not dry_run:
        components = tuple(
            sorted(
                p.name
                for p in code_root.iterdir()
                if p.is_dir() and not p.name.startswith("_") and p.name != code_package.COMMON_DIR
            )
        )
        result.code = code_package.publish_code(
            s3, code_root, components, bucket=bucket, prefix=config.storage.prefixes.code, kms_key_id=kms
        )
    return result


def update_environment(mwaa: Any, name: str, result: DeployResult) -> dict[str, Any] | None:
    """Point MWAA environment ``name`` at the deployed object versions when any of them changed.

    :return: the fields sent to ``UpdateEnvironment``, or None when the environment already uses them
    """
    current = mwaa.get_environment(Name=name)["Environment"]
    update: dict[str, Any] = {}
    for file, (path_field, version_field) in VERSIONED.items():
        version = result.version_of(file)
        if not version:
            raise DeployError(f"no S3 object version for {result.prefix}/{file}: is the bucket versioned?")
        wanted_path = f"{result.prefix}/{file}"
        if current.get(path_field) != wanted_path or current.get(version_field) != version:
            update[path_field] = wanted_path
            update[version_field] = version
    if current.get("DagS3Path") != f"{result.prefix}/dags":
        update["DagS3Path"] = f"{result.prefix}/dags"
    if not update:
        return None
    mwaa.update_environment(Name=name, **update)
    return update


def _print(result: DeployResult, dry_run: bool) -> None:
    verb = "would upload" if dry_run else "uploaded"
    print(f"deploy: s3://{result.bucket}/{result.prefix}/ ({verb} {len(result.uploaded)} of {len(result.objects)})")
    for obj in result.objects:
        if obj.uploaded:
            print(f"  {verb:<12} {obj.key}")
    for key in result.deleted:
        print(f"  {'would delete' if dry_run else 'deleted':<12} {key}")
    for component, info in sorted(result.code.items()):
        print(f"  code {component:<13} {info['sourcedir_uri']} ({info['uploaded']} new objects)")
    print("MWAA object versions:")
    for file, (path_field, version_field) in VERSIONED.items():
        print(f"  {path_field}={result.prefix}/{file} {version_field}={result.version_of(file)}")
    if result.mwaa_update is not None:
        print(f"MWAA environment updated: {json.dumps(result.mwaa_update, sort_keys=True)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True, help="environment name: include/config/<env>.yaml")
    parser.add_argument("--dist", type=Path, default=DEFAULT_DIST, help="the built bundle (default: dist/mwaa)")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help="key prefix of the MWAA objects (default: mwaa)")
    parser.add_argument("--bucket", help="override storage.bucket of the environment's config")
    parser.add_argument("--profile", help="AWS profile (default: the standard credential chain)")
    parser.add_argument("--endpoint-url", help="S3 endpoint (a local stand-in); boto3 also reads AWS_ENDPOINT_URL_S3")
    parser.add_argument("--dry-run", action="store_true", help="show what would change, write nothing")
    parser.add_argument("--no-prune", action="store_true", help="keep DAG-folder objects the build no longer has")
    parser.add_argument("--no-code", action="store_true", help="do not publish the container code packages")
    parser.add_argument("--allow-unversioned", action="store_true", help="accept a bucket without versioning")
    parser.add_argument("--mwaa-environment", help="update this MWAA environment to the new object versions")
    parser.add_argument("--json", type=Path, help="also write the result as JSON to this file")
    args = parser.parse_args(argv)

    import boto3

    try:
        config = load_config(args.env)
        session = boto3.session.Session(profile_name=args.profile, region_name=config.aws.region)
        s3 = session.client("s3", endpoint_url=args.endpoint_url)
        result = deploy(
            s3,
            config,
            args.dist,
            prefix=args.prefix,
            bucket=args.bucket,
            dry_run=args.dry_run,
            prune=not args.no_prune,
            publish_code=not args.no_code,
            allow_unversioned=args.allow_unversioned,
        )
        if args.mwaa_environment and not args.dry_run:
            result.mwaa_update = update_environment(session.client("mwaa"), args.mwaa_environment, result) or {}
    except (ConfigError, DeployError, code_package.CodePackageError) as exc:
        print(f"deploy: {exc}", file=sys.stderr)
        return 1
    _print(result, args.dry_run)
    if args.json:
        args.json.write_text(json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
