"""What the SageMaker training toolkit does inside a framework container, re-implemented for local runs.

Covers the parts a script-mode job observes: hyperparameter decoding, the reserved ``sagemaker_*`` keys,
the command-line rendering of hyperparameters, the ``SM_*`` environment variables and the entry-point
types (Python program, Python package, command).
"""

from __future__ import annotations

import json
import multiprocessing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Reserved hyperparameters that never reach the user script (besides every ``sagemaker_*`` key).
RESERVED_HYPERPARAMETERS = frozenset({"_tuning_objective_metric", "default_user_module_name"})

#: ``sagemaker_*`` keys the toolkit knows; other ``sagemaker_*`` keys go to ``SM_FRAMEWORK_PARAMS``.
SAGEMAKER_HYPERPARAMETERS = frozenset(
    {
        "sagemaker_program",
        "sagemaker_submit_directory",
        "sagemaker_enable_cloudwatch_metrics",
        "sagemaker_region",
        "sagemaker_container_log_level",
        "sagemaker_job_name",
        "sagemaker_s3_output",
    }
)


def decode_value(raw: str) -> Any:
    """Decode one hyperparameter value: JSON if it parses, else the raw string.

    :param raw: the string value from ``hyperparameters.json``.
    """
    try:
        return json.loads(raw)
    except (ValueError, TypeError):
        return raw


def decode_hyperparameters(raw: dict[str, str]) -> dict[str, Any]:
    """Decode every hyperparameter value (see :func:`decode_value`)."""
    return {key: decode_value(value) for key, value in raw.items()}


def split_hyperparameters(decoded: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split decoded hyperparameters into (user, reserved).

    Reserved are every key starting with ``sagemaker_`` plus ``_tuning_objective_metric`` and
    ``default_user_module_name``.
    """
    user: dict[str, Any] = {}
    reserved: dict[str, Any] = {}
    for key, value in decoded.items():
        if key.startswith("sagemaker_") or key in RESERVED_HYPERPARAMETERS:
            reserved[key] = value
        else:
            user[key] = value
    return user, reserved


def _arg_value(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={_arg_value(v)}" for k, v in sorted(value.items()))
    return str(value)


def to_cmd_args(user_hyperparameters: dict[str, Any]) -> list[str]:
    """Render user hyperparameters as the toolkit does: sorted keys, ``--key`` or ``-k``, ``str(value)``.

    Booleans become ``True``/``False``, lists their Python repr as one item, dicts ``k1=v1,k2=v2``.

    :param user_hyperparameters: decoded hyperparameters without reserved keys.
    """
    args: list[str] = []
    for key in sorted(user_hyperparameters):
        flag = f"-{key}" if len(key) == 1 else f"--{key}"
        args.extend([flag, _arg_value(user_hyperparameters[key])])
    return args


def env_value(value: Any) -> str:
    """Format an ``SM_*`` value: strings as they are, anything else compact sorted JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class EntryPoint:
    """How to run the user entry point.

    :param kind: ``python_program``, ``python_package`` or ``command``.
    :param name: the entry point as given (``train.py``).
    """

    kind: str
    name: str

    @property
    def module_name(self) -> str:
        """The module name: the entry point without ``.py`` / ``.sh``."""
        for suffix in (".py", ".sh"):
            if self.name.endswith(suffix):
                return self.name[: -len(suffix)]
        return self.name


def entry_point_type(code_dir: Path, name: str) -> EntryPoint:
    """Classify the entry point the way the toolkit does.

    :param code_dir: the directory holding the extracted source.
    :param name: the ``sagemaker_program`` value.
    """
    if name.endswith(".sh"):
        return EntryPoint("command", name)
    if (code_dir / "setup.py").exists():
        return EntryPoint("python_package", name)
    if name.endswith(".py"):
        return EntryPoint("python_program", name)
    return EntryPoint("command", name)


@dataclass(frozen=True)
class TrainingLayout:
    """The ``/opt/ml`` paths of one training job, as seen by the job (already mapped into the sandbox).

    :param root: the directory that plays ``/opt/ml``.
    """

    root: Path

    @property
    def input_dir(self) -> Path:
        return self.root / "input"

    @property
    def config_dir(self) -> Path:
        return self.root / "input" / "config"

    @property
    def data_dir(self) -> Path:
        return self.root / "input" / "data"

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def output_data_dir(self) -> Path:
        return self.root / "output" / "data"

    @property
    def intermediate_dir(self) -> Path:
        return self.root / "output" / "intermediate"

    @property
    def failure_file(self) -> Path:
        return self.root / "output" / "failure"

    @property
    def code_dir(self) -> Path:
        return self.root / "code"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    def channel_dir(self, channel: str) -> Path:
        return self.data_dir / channel

    def create(self) -> None:
        """Create the directories the platform creates before the container starts."""
        for path in (
            self.config_dir,
            self.data_dir,
            self.model_dir,
            self.output_data_dir,
            self.intermediate_dir,
            self.code_dir,
            self.checkpoints_dir,
        ):
            path.mkdir(parents=True, exist_ok=True)


def training_env(
    *,
    layout: TrainingLayout,
    job_name: str,
    region: str,
    hyperparameters: dict[str, str],
    input_data_config: dict[str, Any],
    resource_config: dict[str, Any],
    framework_module: str | None,
    entry_point: str | None,
    module_dir: str,
    user_args: list[str],
) -> dict[str, str]:
    """Return the ``SM_*`` (and companion) variables the toolkit exports before running the script.

    :param layout: the job's ``/opt/ml`` paths.
    :param job_name: the training job name.
    :param region: the AWS region.
    :param hyperparameters: the raw (string-valued) hyperparameters.
    :param input_data_config: the content of ``inputdataconfig.json``.
    :param resource_config: the content of ``resourceconfig.json``.
    :param framework_module: ``SAGEMAKER_TRAINING_MODULE`` of the emulated image.
    :param entry_point: the user entry point (``train.py``) or None.
    :param module_dir: ``sagemaker_submit_directory`` or the code directory.
    :param user_args: the rendered CLI arguments.
    """
    decoded = decode_hyperparameters(hyperparameters)
    user_hps, reserved = split_hyperparameters(decoded)
    channels = sorted(input_data_config)
    channel_dirs = {name: str(layout.channel_dir(name)) for name in channels}
    hosts = resource_config["hosts"]
    current_host = resource_config["current_host"]
    num_cpus = multiprocessing.cpu_count()
    framework_params = {
        key: value
        for key, value in reserved.items()
        if key.startswith("sagemaker_") and key not in SAGEMAKER_HYPERPARAMETERS
    }
    module_name = None
    if entry_point:
        module_name = EntryPoint("python_program", entry_point).module_name
    log_level = reserved.get("sagemaker_container_log_level", 20)
    instance_groups = resource_config.get("instance_groups", [])
    props: dict[str, Any] = {
        "additional_framework_parameters": framework_params,
        "channel_input_dirs": channel_dirs,
        "current_host": current_host,
        "current_instance_group": resource_config.get("current_group_name", "homogeneousCluster"),
        "current_instance_group_hosts": hosts,
        "current_instance_type": resource_config.get("current_instance_type", "local"),
        "distribution_hosts": hosts,
        "distribution_instance_groups": [g["instance_group_name"] for g in instance_groups],
        "framework_module": framework_module,
        "hosts": hosts,
        "hyperparameters": user_hps,
        "input_config_dir": str(layout.config_dir),
        "input_data_config": input_data_config,
        "input_dir": str(layout.input_dir),
        "instance_groups": [g["instance_group_name"] for g in instance_groups],
        "instance_groups_dict": {g["instance_group_name"]: g for g in instance_groups},
        "is_hetero": False,
        "is_master": current_host == hosts[0],
        "is_modelparallel_enabled": None,
        "is_smddpmprun_installed": False,
        "is_smddprun_installed": False,
        "job_name": reserved.get("sagemaker_job_name", job_name),
        "log_level": log_level,
        "master_hostname": hosts[0],
        "model_dir": str(layout.model_dir),
        "module_dir": module_dir,
        "module_name": module_name,
        "network_interface_name": resource_config.get("network_interface_name", "eth0"),
        "num_cpus": num_cpus,
        "num_gpus": 0,
        "num_neurons": 0,
        "output_data_dir": str(layout.output_data_dir),
        "output_dir": str(layout.output_dir),
        "output_intermediate_dir": str(layout.intermediate_dir),
        "resource_config": resource_config,
        "user_entry_point": entry_point,
    }
    env: dict[str, str] = {}
    for key, value in props.items():
        if value is None:
            continue
        env[f"SM_{key.upper()}"] = env_value(value)
    env["SM_CHANNELS"] = env_value(channels)
    for name, path in channel_dirs.items():
        env[f"SM_CHANNEL_{name.upper()}"] = path
    env["SM_HPS"] = env_value(user_hps)
    for key, value in user_hps.items():
        env[f"SM_HP_{key.upper()}"] = env_value(value)
    env["SM_USER_ARGS"] = env_value(user_args)
    env["SM_INPUT_DATA_CONFIG"] = env_value(input_data_config)
    env["SM_RESOURCE_CONFIG"] = env_value(resource_config)
    env["SM_FRAMEWORK_PARAMS"] = env_value(framework_params)
    env["SM_TRAINING_ENV"] = env_value({k: v for k, v in props.items() if v is not None} | {"user_args": user_args})
    env["SAGEMAKER_JOB_NAME"] = str(props["job_name"])
    env["CURRENT_HOST"] = current_host
    env["SAGEMAKER_REGION"] = region
    return env
