"""Find the AWS API actions the DAGs and the ``ml_lifecycle`` package can call, for the IAM policies.

Two sources are scanned statically (``ast``), nothing is executed against AWS:

1. **Our code** (``plugins/ml_lifecycle``, ``dags``): every attribute or string literal that names a
   boto3 operation (``client.describe_endpoint(...)``, ``asyncio.to_thread(client.describe_endpoint, ...)``,
   ``get_paginator("list_model_packages")``, ``get_waiter("endpoint_in_service")``) of the services in
   :data:`SERVICES`. The service is the only one that has that operation, else the one the receiver names
   (``cloudwatch.describe_alarms``, ``s3.put_object``), else the entry of the reviewed allowlist
   ``infra/iam/ambiguous-calls.json``; anything else is reported as unresolved. So is everything a static
   scan cannot see through, until the allowlist says what it can call:

   - a client of a service outside :data:`SERVICES` (``boto3.client("sqs")``, ``AwsBaseHook(client_type=
     "ecr")``, a provider hook such as ``SqsHook``), or of a service named by a variable;
   - an operation named at run time (``getattr(client, name)`` with a non-literal name);
   - boto3's resource API (``boto3.resource("s3")``, ``get_resource_type``), whose calls hide behind objects.
2. **The Amazon provider classes our code uses** (imported from ``airflow.providers.amazon``): operators and
   triggers we use or subclass are scanned whole (their own and their provider bases' methods); hooks are
   scanned for the methods our code or those classes call on them (``self.hook.create_training_job``,
   ``s3_hook.load_file``), following ``self.<method>`` calls and the sub-hooks (``s3_hook``, ``logs_hook``)
   transitively. Operations are taken in the hook's own service.
3. **The message-queue triggers our code builds** with the common-messaging provider's
   ``MessageQueueTrigger(scheme="<literal>", ...)`` (the asset watchers): the scheme is resolved to the trigger
   class the installed providers register for it (``sqs``: the Amazon provider's ``SqsSensorTrigger``), which is
   then scanned as in 2. A scheme that is not a literal, or that no provider registers, is reported.

Operations map to IAM actions through :func:`iam_actions` (``s3:ListBucket`` for ``ListObjectsV2`` and the
like); :func:`implied_actions` adds what AWS checks besides the operation itself (``iam:PassRole`` for a
request that carries a role ARN, ``sagemaker:AddTags`` for a create request that carries tags, KMS for
SSE-KMS objects).

Usage: ``python -m tools.iam_scan`` prints the actions and where each comes from.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
import sys
import textwrap
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ALLOWLIST = ROOT / "infra" / "iam" / "ambiguous-calls.json"
SCANNED = ("plugins/ml_lifecycle", "dags")

# boto3 service name -> IAM action prefix, for the services the product talks to.
SERVICES = {
    "s3": "s3",
    "sagemaker": "sagemaker",
    "sagemaker-runtime": "sagemaker",
    "cloudwatch": "cloudwatch",
    "logs": "logs",
    "sns": "sns",
    "application-autoscaling": "application-autoscaling",
    "sts": "sts",
    "kms": "kms",
    "secretsmanager": "secretsmanager",
    "sqs": "sqs",
}
# Words in a receiver expression that name its service (``cloudwatch.describe_alarms``).
_HINTS = (
    ("runtime", "sagemaker-runtime"),
    ("sagemaker", "sagemaker"),
    ("autoscaling", "application-autoscaling"),
    ("cloudwatch", "cloudwatch"),
    ("logs", "logs"),
    ("sns", "sns"),
    ("kms", "kms"),
    ("secrets", "secretsmanager"),
    ("sqs", "sqs"),
    ("s3", "s3"),
)
# Operations whose IAM action differs from ``<prefix>:<Operation>``.
_S3_ACTIONS = {
    "ListObjectsV2": ("s3:ListBucket",),
    "ListObjects": ("s3:ListBucket",),
    "HeadBucket": ("s3:ListBucket",),
    "HeadObject": ("s3:GetObject",),
    "DeleteObjects": ("s3:DeleteObject",),
    "ListObjectVersions": ("s3:ListBucketVersions",),
    "ListMultipartUploads": ("s3:ListBucketMultipartUploads",),
    "CreateMultipartUpload": ("s3:PutObject",),
    "UploadPart": ("s3:PutObject",),
    "CompleteMultipartUpload": ("s3:PutObject",),
    "UploadPartCopy": ("s3:GetObject", "s3:PutObject"),
    "CopyObject": ("s3:GetObject", "s3:PutObject"),
    "SelectObjectContent": ("s3:GetObject",),
    "ListBuckets": ("s3:ListAllMyBuckets",),
    "GetObjectAttributes": ("s3:GetObject", "s3:GetObjectAttributes"),
}
_UPLOAD = ("PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "AbortMultipartUpload")
# boto3's managed-transfer methods on the S3 client, and the operations they send.
S3_TRANSFER = {
    "upload_file": (
        "PutObject",
        "CreateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
        "AbortMultipartUpload",
    ),
    "upload_fileobj": (
        "PutObject",
        "CreateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
        "AbortMultipartUpload",
    ),
    "download_file": ("HeadObject", "GetObject"),
    "download_fileobj": ("HeadObject", "GetObject"),
    "copy": ("HeadObject", "CopyObject", "CreateMultipartUpload", "UploadPartCopy", "CompleteMultipartUpload"),
}
# Creating operations whose ``Tags`` AWS authorises as ``<prefix>:TagResource`` (the botocore documentation of
# PutMetricAlarm's and CreateTopic's Tags; Application Auto Scaling's "tag on creation" permissions).
_TAG_ON_CREATE = {
    "cloudwatch": {"PutMetricAlarm"},
    "application-autoscaling": {"RegisterScalableTarget"},
    "sns": {"CreateTopic"},
}
# SQS batch operations, authorised as their single-message action.
_SQS_ACTIONS = {
    "DeleteMessageBatch": ("sqs:DeleteMessage",),
    "SendMessageBatch": ("sqs:SendMessage",),
    "ChangeMessageVisibilityBatch": ("sqs:ChangeMessageVisibility",),
}
# Operations that need no IAM permission.
_FREE = {("sts", "GetCallerIdentity")}
# Provider base classes that only hold plumbing (connections, templating); their methods are not scanned.
_PLUMBING = {
    "AwsBaseOperator",
    "AwsBaseSensor",
    "AwsBaseHook",
    "AwsGenericHook",
    "BaseAwsLink",
    "AwsBaseWaiterTrigger",
}
# Attributes through which provider code reaches another hook.
_SUB_HOOKS = {
    "s3_hook": ("airflow.providers.amazon.aws.hooks.s3", "S3Hook"),
    "logs_hook": ("airflow.providers.amazon.aws.hooks.logs", "AwsLogsHook"),
}
# Triggers do not declare their hook class; this names it (checked by the tests against the trigger source).
TRIGGER_HOOKS = {
    "SageMakerTrigger": ("airflow.providers.amazon.aws.hooks.sagemaker", "SageMakerHook"),
    "SageMakerPipelineTrigger": ("airflow.providers.amazon.aws.hooks.sagemaker", "SageMakerHook"),
    "SqsSensorTrigger": ("airflow.providers.amazon.aws.hooks.sqs", "SqsHook"),
}
# The common-messaging trigger that stands for a provider's trigger chosen by its ``scheme`` argument.
MESSAGE_QUEUE_TRIGGER = ("airflow.providers.common.messaging.triggers.msg_queue", "MessageQueueTrigger")
# Nor do notifiers (their ``hook`` property makes it); checked by the tests against the notifier source.
NOTIFIER_HOOKS = {
    "SnsNotifier": ("airflow.providers.amazon.aws.hooks.sns", "SnsHook"),
}


@dataclass(frozen=True)
class Call:
    """One AWS operation referenced somewhere."""

    service: str  # boto3 service name
    operation: str  # botocore operation name (CamelCase)
    where: str  # file:line or provider Class.method


@dataclass
class ScanResult:
    calls: list[Call] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)

    def operations(self) -> set[tuple[str, str]]:
        return {(c.service, c.operation) for c in self.calls}


# ------------------------------------------------------------------------------------- botocore models


@cache
def _session() -> Any:
    import botocore.session

    return botocore.session.get_session()


@cache
def operation_index() -> dict[str, frozenset[tuple[str, str]]]:
    """snake_case or CamelCase operation name -> {(service, Operation)} over :data:`SERVICES`."""
    from botocore import xform_name

    index: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for service in SERVICES:
        for operation in _session().get_service_model(service).operation_names:
            index[xform_name(operation)].add((service, operation))
            index[operation].add((service, operation))
    return {name: frozenset(found) for name, found in index.items()}


@cache
def waiter_index() -> dict[str, frozenset[tuple[str, str]]]:
    """Waiter name (botocore's and the Amazon provider's custom ones) -> {(service, Operation)}."""
    from botocore import xform_name

    index: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for service in SERVICES:
        try:
            model = _session().get_waiter_model(service)
        except Exception:  # noqa: S112 - a service without waiters
            continue
        for name in model.waiter_names:
            operation = model.get_waiter(name).operation
            index[xform_name(name)].add((service, operation))
    custom = Path(importlib.import_module("airflow.providers.amazon.aws").__file__).parent / "waiters"
    for path in sorted(custom.glob("*.json")):
        service = path.stem
        if service not in SERVICES:
            continue
        for name, waiter in json.loads(path.read_text())["waiters"].items():
            index[name].add((service, waiter["operation"]))
    return {name: frozenset(found) for name, found in index.items()}


def _input_members(service: str, operation: str) -> set[str]:
    """Every member name anywhere in the operation's input shape."""
    model = _session().get_service_model(service).operation_model(operation)
    seen: set[str] = set()
    names: set[str] = set()

    def walk(shape: Any) -> None:
        if shape is None or shape.name in seen:
            return
        seen.add(shape.name)
        if shape.type_name == "structure":
            for member_name, member in shape.members.items():
                names.add(member_name)
                walk(member)
        elif shape.type_name == "list":
            walk(shape.member)
        elif shape.type_name == "map":
            walk(shape.value)

    walk(model.input_shape)
    return names


def iam_actions(service: str, operation: str) -> set[str]:
    """The IAM actions AWS checks for one operation (empty for those that need none)."""
    if (service, operation) in _FREE:
        return set()
    if service == "s3" and operation in _S3_ACTIONS:
        return set(_S3_ACTIONS[operation])
    if service == "sqs" and operation in _SQS_ACTIONS:
        return set(_SQS_ACTIONS[operation])
    return {f"{SERVICES[service]}:{operation}"}


def implied_actions(service: str, operation: str) -> set[str]:
    """Actions AWS checks in addition to the operation's own, from what its request can carry."""
    if (service, operation) in _FREE:
        return set()
    members = _input_members(service, operation)
    implied = set()
    if service == "sagemaker" and members & {"RoleArn", "ExecutionRoleArn"}:
        implied.add("iam:PassRole")
    if service == "sagemaker" and operation.startswith("Create") and "Tags" in members:
        implied.add("sagemaker:AddTags")
    if service in _TAG_ON_CREATE and operation in _TAG_ON_CREATE[service]:
        implied.add(f"{SERVICES[service]}:TagResource")  # tags in a create request are checked as TagResource
    if service == "sagemaker" and members & {"KmsKeyId", "VolumeKmsKeyId"}:
        implied.add("kms:CreateGrant")  # SageMaker takes a grant on the CMK for volumes and outputs
    if service == "s3" and operation in {"PutObject", "CreateMultipartUpload", "CopyObject"}:
        implied.add("kms:GenerateDataKey")  # SSE-KMS objects (storage.kms_key_id)
    if service == "s3" and operation in {"GetObject", "HeadObject", "CopyObject", "UploadPartCopy"}:
        implied.add("kms:Decrypt")
    return implied


# ------------------------------------------------------------------------------------------- our code


def _docstring_nodes(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _hinted(receiver: str, candidates: Iterable[str]) -> set[str]:
    text = receiver.lower()
    candidates = set(candidates)
    for word, service in _HINTS:
        if word in text and service in candidates:
            return {service}
    return set()


def load_allowlist(path: Path = ALLOWLIST) -> dict[str, Any]:
    """The reviewed entries of ``path``: see its ``_about``.

    ``"<file>:<operation name>" -> service`` (or ``"not-aws"``) for an ambiguous name; for a site the scan
    cannot see through (``"<file>:getattr(client, self.method)"``, ``"<file>:AwsBaseHook(client_type=x)"``,
    ``"<file>:boto3.resource(...)"``) the entry itself: ``{"service": ..., "operations": [...]}`` (what it
    can call) or ``{"services": [...]}`` (which clients a variable service name can make).
    """
    if not path.is_file():
        return {}
    found: dict[str, Any] = {}
    for key, entry in json.loads(path.read_text()).items():
        if key.startswith("_"):
            continue
        found[key] = entry if _is_site(key) else entry["service"]
    return found


def _is_site(key: str) -> bool:
    """An allowlist key that names a code site (``getattr(...)``, ``Hook(client_type=...)``), not an operation."""
    return "(" in key


#: calls that make a boto3 client: the service is their first argument or a ``client_type``/``service_name``
_CLIENT_MAKERS = {"client", "_client", "get_client_type", "AwsBaseHook", "AwsGenericHook"}
_SERVICE_KEYWORDS = ("client_type", "service_name")
#: boto3's resource API: its objects send requests the scan cannot see
_RESOURCE_MAKERS = {"resource", "get_resource_type"}


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _sites(tree: ast.AST, where: str, allowlist: dict[str, Any], result: ScanResult) -> None:
    """Report (or resolve through the allowlist) what a static scan cannot see through; see the module doc."""
    known = set(_session().get_available_services())

    def reviewed(text: str, line: int, problem: str) -> Any:
        entry = allowlist.get(f"{where}:{text}")
        if entry is None:
            result.unresolved.append(f"{where}:{line}: {text}: {problem}; review it in {ALLOWLIST.name}")
        return entry

    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _call_name(node)
        if name == "getattr" and len(node.args) >= 2 and not isinstance(node.args[1], ast.Constant):
            text = f"getattr({ast.unparse(node.args[0])}, {ast.unparse(node.args[1])})"
            entry = reviewed(text, node.lineno, "an attribute named at run time could be any AWS operation")
            if entry and entry.get("service") != "not-aws":
                result.calls += [Call(entry["service"], op, f"{where}:{node.lineno}") for op in entry["operations"]]
            continue
        if name in _RESOURCE_MAKERS:
            text = f"{ast.unparse(node.func)}(...)"
            entry = reviewed(text, node.lineno, "boto3's resource API sends requests the scan cannot see")
            if entry and entry.get("service") != "not-aws":
                result.calls += [Call(entry["service"], op, f"{where}:{node.lineno}") for op in entry["operations"]]
            continue
        service = next((k.value for k in node.keywords if k.arg in _SERVICE_KEYWORDS), None)
        if service is None and name in _CLIENT_MAKERS and node.args:
            service = node.args[0]
        if service is None:
            continue
        if isinstance(service, ast.Constant) and isinstance(service.value, str):
            if service.value in known and service.value not in SERVICES:
                result.unresolved.append(
                    f"{where}:{node.lineno}: a {service.value!r} client: the scan covers only "
                    f"{', '.join(sorted(SERVICES))}; add the service to tools/iam_scan.py SERVICES"
                )
            continue
        keyword = next((k.arg for k in node.keywords if k.arg in _SERVICE_KEYWORDS), None)
        text = f"{ast.unparse(node.func)}({keyword}={ast.unparse(service)})" if keyword else None
        text = text or f"{ast.unparse(node.func)}({ast.unparse(service)})"
        entry = reviewed(text, node.lineno, "a client of a service named at run time")
        if entry:
            outside = sorted(set(entry["services"]) - set(SERVICES))
            if outside:
                result.unresolved.append(
                    f"{where}:{node.lineno}: {text} can make a client of {', '.join(outside)}, which the scan "
                    "does not cover; add the service to tools/iam_scan.py SERVICES"
                )


def _references(tree: ast.AST) -> Iterator[tuple[str, str, int, bool]]:
    """(name, receiver text, line, is_string) for attributes and string literals."""
    docstrings = _docstring_nodes(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            yield node.attr, ast.unparse(node.value), node.lineno, False
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{2,80}", node.value)
        ):
            yield node.value, "", node.lineno, True


def _module_names(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    return names


def scan_source(source: str, where: str, allowlist: dict[str, Any] | None = None) -> ScanResult:
    """The AWS operations one file of our code references."""
    allowlist = load_allowlist() if allowlist is None else allowlist
    result = ScanResult()
    ops, waiters = operation_index(), waiter_index()
    tree = ast.parse(source)
    _sites(tree, where, allowlist, result)
    modules = _module_names(tree)
    for name, receiver, line, is_string in _references(tree):
        if not is_string and (receiver in {"self", "cls"} or receiver in modules):
            continue  # our own attribute, or a module function (re.search): not a client call
        transfer = not is_string and name in S3_TRANSFER
        found = {("s3", op) for op in S3_TRANSFER[name]} if transfer else set(ops.get(name, ()))
        if is_string:
            found |= set(waiters.get(name, ()))
            if "_" not in name and not name[0].isupper():
                continue  # a plain word in a string ("search", "publish") is not a call
        if not found:
            continue
        services = {service for service, _ in found}
        ambiguous = len(services) > 1 or transfer or ("_" not in name and not is_string)
        chosen = _hinted(receiver, services) if ambiguous else services
        if not chosen:
            key = f"{where}:{name}"
            if allowlist.get(key) == "not-aws":
                continue
            chosen = {allowlist.get(key)} & services if isinstance(allowlist.get(key), str) else set()
            if not chosen:
                shown = f"{receiver}.{name}" if receiver else repr(name)
                result.unresolved.append(f"{where}:{line}: {shown} could be {', '.join(sorted(services))}")
                continue
        result.calls += [Call(s, op, f"{where}:{line}") for s, op in sorted(found) if s in chosen]
    return result


def scan_our_code(root: Path = ROOT, allowlist: dict[str, Any] | None = None) -> ScanResult:
    result = ScanResult()
    for folder in SCANNED:
        for path in sorted((root / folder).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            rel = path.relative_to(root).as_posix()
            found = scan_source(path.read_text(encoding="utf-8"), rel, allowlist)
            result.calls += found.calls
            result.unresolved += found.unresolved
    return result


# --------------------------------------------------------------------------------------- provider code


def provider_imports(root: Path = ROOT) -> dict[str, type]:
    """Classes our code imports from ``airflow.providers.amazon`` (name -> class)."""
    found: dict[str, type] = {}
    for folder in SCANNED:
        for path in sorted((root / folder).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("airflow.providers.amazon"):
                    module = importlib.import_module(node.module)
                    for alias in node.names:
                        obj = getattr(module, alias.name, None)
                        if inspect.isclass(obj) and obj.__module__.startswith("airflow.providers.amazon"):
                            found[alias.name] = obj
    return found


def message_queue_triggers(root: Path = ROOT) -> tuple[dict[str, type], list[str]]:
    """The provider trigger classes behind our ``MessageQueueTrigger(scheme=...)`` calls, and what cannot be resolved.

    :return: (trigger class name -> class, problems)
    """
    module_name, class_name = MESSAGE_QUEUE_TRIGGER
    found: dict[str, type] = {}
    problems: list[str] = []
    for folder in SCANNED:
        for path in sorted((root / folder).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            rel = path.relative_to(root).as_posix()
            tree = ast.parse(path.read_text(encoding="utf-8"))
            if not any(
                isinstance(n, ast.ImportFrom) and n.module == module_name and any(a.name == class_name for a in n.names)
                for n in ast.walk(tree)
            ):
                continue
            for node in ast.walk(tree):
                if not (isinstance(node, ast.Call) and _call_name(node) == class_name):
                    continue
                scheme = next((k.value for k in node.keywords if k.arg == "scheme"), None)
                if not (isinstance(scheme, ast.Constant) and isinstance(scheme.value, str)):
                    problems.append(
                        f"{rel}:{node.lineno}: {class_name} without a literal scheme= (its queue "
                        "provider, and so the AWS calls, cannot be told)"
                    )
                    continue
                module = importlib.import_module(module_name)
                providers = [p for p in module.MESSAGE_QUEUE_PROVIDERS if p.scheme_matches(scheme.value)]
                if len(providers) != 1:
                    problems.append(
                        f"{rel}:{node.lineno}: {class_name} scheme {scheme.value!r} is served by "
                        f"{len(providers)} installed queue providers, not one"
                    )
                    continue
                trigger = providers[0].trigger_class()
                found[trigger.__name__] = trigger
    return found, problems


def _is_hook(cls: type) -> bool:
    from airflow.providers.amazon.aws.hooks.base_aws import AwsGenericHook

    return issubclass(cls, AwsGenericHook)


@cache
def _hook_service(cls: type) -> str | None:
    try:
        return cls(aws_conn_id=None).client_type  # type: ignore[call-arg]
    except Exception:
        return None


def _component_hook(cls: type) -> type | None:
    hook = getattr(cls, "aws_hook_class", None)
    if inspect.isclass(hook):
        return hook
    for klass in cls.__mro__:
        known = TRIGGER_HOOKS.get(klass.__name__) or NOTIFIER_HOOKS.get(klass.__name__)
        if known:
            module, name = known
            return getattr(importlib.import_module(module), name)
    return None


def _own_functions(cls: type) -> Iterator[tuple[type, str, Any]]:
    """(defining class, name, function) for the provider methods of ``cls`` outside plumbing bases."""
    for klass in cls.__mro__:
        if not klass.__module__.startswith("airflow.providers.amazon") or klass.__name__ in _PLUMBING:
            continue
        for name, value in vars(klass).items():
            func = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
            if inspect.isfunction(func):
                yield klass, name, func


def _method(cls: type, name: str) -> tuple[type, Any] | None:
    for klass, own_name, func in _own_functions(cls):
        if own_name == name:
            return klass, func
    return None


@cache
def _function_tree(func: Any) -> ast.AST:
    return ast.parse(textwrap.dedent(inspect.getsource(func)))


def scan_provider(classes: dict[str, type], hook_methods: set[str]) -> ScanResult:
    """Operations reachable from the provider classes our code uses.

    :param classes: provider classes imported by our code
    :param hook_methods: attribute names our code uses, to find the hook methods it calls
    """
    result = ScanResult()
    ops, waiters = operation_index(), waiter_index()
    queue: list[tuple[type, type | None, str]] = []  # (class, its hook class, method name)
    for cls in classes.values():
        if _is_hook(cls):
            queue += [(cls, cls, name) for name in sorted(hook_methods) if _method(cls, name)]
        elif hasattr(cls, "__mro__"):
            hook = _component_hook(cls)
            queue += [(cls, hook, name) for _, name, _ in _own_functions(cls)]
    done: set[tuple[str, str]] = set()
    while queue:
        cls, hook, name = queue.pop()
        found = _method(cls, name)
        if not found or (found[0].__qualname__, name) in done:
            continue
        klass, func = found
        done.add((klass.__qualname__, name))
        service = _hook_service(hook) if hook else None
        where = f"{klass.__module__}.{klass.__qualname__}.{name}"
        for attr, receiver, _line, is_string in _references(_function_tree(func)):
            if not is_string:
                if receiver == "self" and _method(cls, attr):
                    queue.append((cls, hook, attr))
                    continue
                tail = receiver.split(".")[-1]
                if tail == "hook" and hook is not None and _method(hook, attr):
                    queue.append((hook, hook, attr))
                    continue
                if tail in _SUB_HOOKS:
                    module, sub = _SUB_HOOKS[tail]
                    sub_hook = getattr(importlib.import_module(module), sub)
                    if _method(sub_hook, attr):
                        queue.append((sub_hook, sub_hook, attr))
                        continue
            candidates = set(ops.get(attr, ())) | set(waiters.get(attr, ()))
            if is_string and "_" not in attr and not attr[0].isupper():
                continue
            in_service = {c for c in candidates if c[0] == service}
            if not is_string and service == "s3" and attr in S3_TRANSFER:
                in_service = {("s3", op) for op in S3_TRANSFER[attr]}
            result.calls += [Call(s, op, where) for s, op in sorted(in_service)]
    return result


# ------------------------------------------------------------------------------------------ the result


def attribute_names(root: Path = ROOT) -> set[str]:
    names = set()
    for folder in SCANNED:
        for path in sorted((root / folder).rglob("*.py")):
            if "__pycache__" not in path.parts:
                names |= {n.attr for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Attribute)}
    return names


def unscanned_provider_services(classes: dict[str, type]) -> list[str]:
    """The provider classes our code imports whose hook talks to a service outside :data:`SERVICES`."""
    found = []
    for name, cls in sorted(classes.items()):
        hook = cls if _is_hook(cls) else _component_hook(cls)
        service = _hook_service(hook) if hook else None
        if service and service not in SERVICES:
            found.append(
                f"{name} (airflow.providers.amazon) talks to {service!r}: the scan covers only "
                f"{', '.join(sorted(SERVICES))}; add the service to tools/iam_scan.py SERVICES"
            )
    return found


def scan(root: Path = ROOT, allowlist: dict[str, Any] | None = None) -> ScanResult:
    """Every operation our code and the provider classes it uses can call."""
    ours = scan_our_code(root, allowlist)
    triggers, trigger_problems = message_queue_triggers(root)
    classes = provider_imports(root) | triggers
    provider = scan_provider(classes, attribute_names(root))
    return ScanResult(
        calls=ours.calls + provider.calls,
        unresolved=ours.unresolved + trigger_problems + unscanned_provider_services(classes),
    )


def required_actions(result: ScanResult) -> dict[str, set[str]]:
    """IAM action -> where it comes from (operations and the actions they imply)."""
    needed: dict[str, set[str]] = defaultdict(set)
    for call in result.calls:
        for action in iam_actions(call.service, call.operation) | implied_actions(call.service, call.operation):
            needed[action].add(call.where)
    return dict(needed)


def main() -> int:
    result = scan()
    for action, where in sorted(required_actions(result).items()):
        print(f"{action:<55} {len(where):>3} place(s), e.g. {sorted(where)[0]}")
    for item in result.unresolved:
        print(f"UNRESOLVED {item}", file=sys.stderr)
    return 1 if result.unresolved else 0


if __name__ == "__main__":
    sys.exit(main())
