"""Training jobs: CreateTrainingJob, DescribeTrainingJob, ListTrainingJobs, StopTrainingJob.

A job runs as the framework containers' training toolkit would run it (script mode): the ``/opt/ml``
layout in a sandbox, channels downloaded from S3, ``sourcedir.tar.gz`` extracted to ``code/``, the
``SM_*`` variables, hyperparameters rendered as CLI arguments, ``model.tar.gz`` and ``output.tar.gz``
uploaded, ``MetricDefinitions`` applied to the log, and the log shipped to CloudWatch Logs.
"""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devstack.sagemaker import awsio, xgboost_algorithm
from devstack.sagemaker.common import now, pick
from devstack.sagemaker.environments import find_uv
from devstack.sagemaker.errors import SageMakerError, validation_error
from devstack.sagemaker.images import ImageInfo, parse_image_uri
from devstack.sagemaker.jobs import (
    MAX_FAILURE_REASON,
    RESTART_FAILURE,
    JobFailedError,
    JobStoppedError,
    RunningJob,
    SandboxJobs,
    image_base_environment,
    is_python,
    job_environment,
)
from devstack.sagemaker.process import JobProcess, MetricTracker, stderr_excerpt
from devstack.sagemaker.toolkit import (
    TrainingLayout,
    decode_hyperparameters,
    entry_point_type,
    split_hyperparameters,
    to_cmd_args,
    training_env,
)

if TYPE_CHECKING:
    from devstack.sagemaker.awsio import CloudWatchLogSink
    from devstack.sagemaker.environments import EnvironmentSpec
    from devstack.sagemaker.isolation import Confinement
    from devstack.sagemaker.paths import PathMapper

KIND = "training-jobs"
LOG_GROUP = "/aws/sagemaker/TrainingJobs"

FRAMEWORK_MODULES = {
    "sklearn": "sagemaker_sklearn_container.training:main",
    "xgboost": "sagemaker_xgboost_container.training:main",
    "pytorch": "sagemaker_pytorch_container.training:main",
    "tensorflow": "sagemaker_tensorflow_container.training:main",
    "huggingface": "sagemaker_huggingface_pytorch_container.training:main",
}

MESSAGES = {
    "Starting": "Preparing the instances for training",
    "Downloading": "Downloading the training image",
    "Training": "Training image download completed. Training in progress.",
    "Uploading": "Uploading generated training model",
    "Completed": "Training job completed",
    "Failed": "Training job failed",
    "Stopping": "Stopping the training job",
    "Stopped": "Training job stopped",
    "MaxRuntimeExceeded": "Training job runtime exceeded MaxRuntimeInSeconds provided",
}


def toolkit_log_line(level: str, message: str) -> str:
    """Format a line the way the training toolkit logs it."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    return f"{stamp},000 sagemaker-training-toolkit {level:<8} {message}"


def _append_transition(desc: dict[str, Any], transition: dict[str, Any]) -> None:
    """Enter a secondary status: the open transition ends when the new one starts."""
    transitions = desc.setdefault("SecondaryStatusTransitions", [])
    if transitions and "EndTime" not in transitions[-1]:
        transitions[-1]["EndTime"] = transition["StartTime"]
    transitions.append(transition)
    desc["SecondaryStatus"] = transition["Status"]


class TrainingJobs(SandboxJobs):
    """CreateTrainingJob, DescribeTrainingJob, ListTrainingJobs and StopTrainingJob: the SageMaker training
    toolkit's layout under ``/opt/ml``, secondary statuses, and SIGTERM on stop.

    :param service: the owning service.
    """

    KIND = KIND
    LOG_GROUP = LOG_GROUP
    NOUN = "Training"
    THREAD_PREFIX = "train"
    SUMMARY_FIELDS = [
        "TrainingJobName",
        "TrainingJobArn",
        "CreationTime",
        "TrainingEndTime",
        "LastModifiedTime",
        "TrainingJobStatus",
        "SecondaryStatus",
    ]

    # -- actions ---------------------------------------------------------------------------------

    def create(self, params: dict[str, Any], tuning_job_arn: str | None = None) -> str:
        """Create and start a training job; return its ARN.

        :param params: a validated CreateTrainingJob request.
        :param tuning_job_arn: the parent tuning job, for its children.
        :raises SageMakerError: for duplicate names and requests SageMaker rejects at create time.
        """
        name = params["TrainingJobName"]
        arn = self.service.arn("training-job", name)
        spec = params["AlgorithmSpecification"]
        if not spec.get("TrainingImage") and not spec.get("AlgorithmName"):
            raise validation_error("Either TrainingImage or AlgorithmName must be provided in AlgorithmSpecification.")
        self.check_channels(params)
        created = now()
        output_path = params["OutputDataConfig"]["S3OutputPath"].rstrip("/")
        compressed = params["OutputDataConfig"].get("CompressionType", "GZIP") != "NONE"
        model_uri = f"{output_path}/{name}/output/model.tar.gz" if compressed else f"{output_path}/{name}/output/model/"
        desc: dict[str, Any] = pick(params, self._echo)
        desc.update(
            {
                "TrainingJobName": name,
                "TrainingJobArn": arn,
                "TrainingJobStatus": "InProgress",
                "SecondaryStatus": "Starting",
                "SecondaryStatusTransitions": [
                    {"Status": "Starting", "StartTime": created, "StatusMessage": MESSAGES["Starting"]}
                ],
                "ModelArtifacts": {"S3ModelArtifacts": model_uri},
                "CreationTime": created,
                "LastModifiedTime": created,
                "EnableNetworkIsolation": params.get("EnableNetworkIsolation", False),
                "EnableInterContainerTrafficEncryption": params.get("EnableInterContainerTrafficEncryption", False),
                "EnableManagedSpotTraining": params.get("EnableManagedSpotTraining", False),
                "HyperParameters": params.get("HyperParameters", {}),
            }
        )
        if tuning_job_arn:
            desc["TuningJobArn"] = tuning_job_arn
        self._start(name, arn, {"desc": desc, "request": params}, params.get("Tags"))
        return arn

    def check_channels(self, params: dict[str, Any]) -> None:
        seen: set[str] = set()
        s3 = self.service.client("s3")
        for channel in params.get("InputDataConfig", []):
            channel_name = channel["ChannelName"]
            if channel_name in seen:
                raise validation_error(f"Channel names must be unique; {channel_name!r} is repeated.")
            seen.add(channel_name)
            source = channel["DataSource"].get("S3DataSource")
            if not source:
                continue
            uri = source["S3Uri"]
            if not uri.startswith("s3://"):
                raise validation_error(f'S3 URL "{uri}" given in input data source is not an S3 URL.')
            if source["S3DataType"] in ("S3Prefix", "ManifestFile") and not awsio.has_objects(s3, uri):
                bucket = uri[len("s3://") :].split("/", 1)[0]
                raise validation_error(
                    f'No S3 objects found under S3 URL "{uri}" given in input data source. '
                    "Please ensure that "
                    f"the bucket exists in the selected region ({self.service.region}), that objects exist "
                    f'under that S3 prefix, and that the role "{params["RoleArn"]}" has "s3:ListBucket" '
                    f'permissions on bucket "{bucket}".'
                )

    # -- state -----------------------------------------------------------------------------------

    def _update(self, name: str, **members: Any) -> None:
        def change(record: dict[str, Any]) -> None:
            record["desc"].update(members)
            record["desc"]["LastModifiedTime"] = now()

        self.service.store.update(KIND, name, change)

    def _transition(self, name: str, status: str, *, primary: str | None = None, message: str | None = None) -> None:
        at = now()

        def change(record: dict[str, Any]) -> None:
            desc = record["desc"]
            _append_transition(desc, {"Status": status, "StartTime": at, "StatusMessage": message or MESSAGES[status]})
            if primary:
                desc["TrainingJobStatus"] = primary
            desc["LastModifiedTime"] = at

        self.service.store.update(KIND, name, change)

    def _finish(self, name: str, primary: str, secondary: str, message: str | None = None, **members: Any) -> None:
        at = now()

        def change(record: dict[str, Any]) -> None:
            desc = record["desc"]
            text = message or MESSAGES[secondary]
            _append_transition(desc, {"Status": secondary, "StartTime": at, "EndTime": at, "StatusMessage": text})
            desc["TrainingJobStatus"] = primary
            desc["LastModifiedTime"] = at
            start = desc.get("TrainingStartTime")
            if start is not None:
                desc.setdefault("TrainingEndTime", at)
                seconds = max(1, round(desc["TrainingEndTime"] - start))
                desc["TrainingTimeInSeconds"] = seconds
                count = desc.get("ResourceConfig", {}).get("InstanceCount", 1)
                desc["BillableTimeInSeconds"] = seconds * count
            desc.update({k: v for k, v in members.items() if v is not None})

        self.service.store.update(KIND, name, change)

    def _mark_stopping(self, name: str) -> None:
        self._transition(name, "Stopping", primary="Stopping")

    def _finish_failed(self, name: str, reason: str, mapper: PathMapper | None = None) -> None:
        self._finish(name, "Failed", "Failed", FailureReason=reason)

    def _finish_stopped(self, name: str) -> None:
        self._finish(name, "Stopped", "Stopped")

    # -- worker ----------------------------------------------------------------------------------

    def _execute(
        self, name: str, job: RunningJob, request: dict[str, Any], mapper: PathMapper, sink: CloudWatchLogSink
    ) -> None:
        layout = TrainingLayout(mapper.root)
        layout.create()
        self._take_fault(name, job)
        spec = request["AlgorithmSpecification"]
        image = parse_image_uri(spec.get("TrainingImage", ""))
        hyperparameters: dict[str, str] = request.get("HyperParameters", {})
        environment: dict[str, str] = request.get("Environment", {})
        self._check_runnable(spec, request)

        def say(line: str) -> None:
            sink.write(line, time.time())

        # Downloading: the image (its environment, built on first use), config files, channels, source code.
        self._transition(name, "Downloading")
        env_spec, env_dir = self._image_environment(image, say)
        self._update(name, TrainingStartTime=now())
        input_config = self._write_config(request, layout)
        self._download_channels(request, layout)
        if job.stop_requested.is_set():
            raise JobStoppedError
        decoded = decode_hyperparameters(hyperparameters)
        user_hps, reserved = split_hyperparameters(decoded)
        program = environment.get("SAGEMAKER_PROGRAM") or reserved.get("sagemaker_program")
        submit_dir = reserved.get("sagemaker_submit_directory")
        if not program and not spec.get("ContainerEntrypoint") and env_spec.toolkit != "xgboost":
            raise JobFailedError(
                f"ClientError: The image {image.uri} runs script mode, which needs the sagemaker_program "
                "hyperparameter or the SAGEMAKER_PROGRAM environment variable."
            )
        self._fetch_code(submit_dir, layout)

        # Training.
        self._transition(name, "Training")
        resource_config = json.loads((layout.config_dir / "resourceconfig.json").read_text())
        definitions = list(spec.get("MetricDefinitions", []))
        algorithm_mode = not program and not spec.get("ContainerEntrypoint")
        if algorithm_mode:
            definitions = xgboost_algorithm.metric_definitions(definitions)
            self._update(
                name,
                AlgorithmSpecification={**request["AlgorithmSpecification"], "MetricDefinitions": definitions},
            )
        metrics = MetricTracker(definitions)

        def on_line(line: str, ts: float) -> None:
            sink.write(line, ts)
            metrics.feed(line, ts)

        network = not request.get("EnableNetworkIsolation", False)
        run = _Run(
            name=name,
            request=request,
            image=image,
            env_spec=env_spec,
            env_dir=env_dir,
            layout=layout,
            job_layout=TrainingLayout(mapper.job_root),
            mapper=mapper,
            confinement=self._confinement(mapper, str(TrainingLayout(mapper.job_root).code_dir), env_dir, network),
            network=network,
        )
        base_env = {
            **image_base_environment(env_dir),
            **dict(env_spec.environment),
            "TRAINING_JOB_NAME": name,
            "TRAINING_JOB_ARN": self.service.arn("training-job", name),
            **{k: mapper.rewrite(v) for k, v in environment.items()},
        }
        if algorithm_mode:
            argv, extra_env, uses_toolkit = self._algorithm_command(run)
        else:
            argv, extra_env, uses_toolkit = self._command(
                run, program, submit_dir, user_hps, input_config, resource_config, on_line
            )
        env = job_environment(self.service, {**base_env, **extra_env}, base={})
        if uses_toolkit:
            self._install_requirements(run, env, on_line)
        if uses_toolkit:
            on_line(toolkit_log_line("INFO", "Invoking user script"), time.time())
            on_line(toolkit_log_line("INFO", f"Command: {shlex.join(argv)}"), time.time())
        stopping = request.get("StoppingCondition", {})
        max_runtime = stopping.get("MaxRuntimeInSeconds", 86400)
        started = self.service.store.get(KIND, name)["desc"]["TrainingStartTime"]
        remaining = max(0.1, max_runtime - (time.time() - started))
        process = JobProcess(
            argv,
            env,
            mapper.sandbox if run.confinement else layout.code_dir,
            on_line,
            stop_signal=signal.SIGTERM,
            grace_seconds=self.service.stop_grace_seconds,
            confinement=run.confinement,
        )
        self._record_process(name, process)
        job.attach(process)
        result = process.wait(max_runtime=remaining)
        self._update(name, FinalMetricDataList=metrics.final_metric_data())
        if result.exit_code == 0 and not result.timed_out and not result.stopped:
            layout.output_dir.joinpath("success").touch()
            self._transition(name, "Uploading")
            self._upload(name, request, layout)
            self._update(name, TrainingEndTime=now())
            on_line(toolkit_log_line("INFO", "Reporting training SUCCESS"), time.time())
            self._finish(name, "Completed", "Completed")
            return
        if result.stopped and self._shutting_down:
            raise JobFailedError(RESTART_FAILURE)
        if result.timed_out or result.stopped:
            self._transition(name, "Uploading")
            self._upload(name, request, layout)
            self._update(name, TrainingEndTime=now())
            if result.timed_out:
                self._finish(
                    name,
                    "Stopped",
                    "MaxRuntimeExceeded",
                    FailureReason=(
                        f"MaxRuntimeExceeded: Training job runtime exceeded MaxRuntimeInSeconds "
                        f"provided ({max_runtime} s); the job was stopped."
                    ),
                )
            else:
                self._finish(name, "Stopped", "Stopped")
            return
        text, exit_code = self._failure_text(layout, result.exit_code, result.stderr_tail, argv, uses_toolkit)
        on_line(toolkit_log_line("ERROR", "Reporting training FAILURE"), time.time())
        self._update(name, TrainingEndTime=now())
        raise JobFailedError(f"AlgorithmError: {text}, exit code: {exit_code}")

    def _check_runnable(self, spec: dict[str, Any], request: dict[str, Any]) -> None:
        if spec.get("AlgorithmName") and not spec.get("TrainingImage"):
            raise JobFailedError(
                f"ClientError: Algorithm {spec['AlgorithmName']} cannot be run by the devstack: only images "
                "(TrainingImage) are run."
            )
        resources = request.get("ResourceConfig", {})
        if resources.get("InstanceGroups"):
            raise JobFailedError(
                "ClientError: The devstack runs single-instance jobs only; InstanceGroups is not supported."
            )
        count = resources.get("InstanceCount", 1)
        if count != 1:
            raise JobFailedError(f"ClientError: The devstack runs single-instance jobs only (InstanceCount={count}).")
        if spec.get("TrainingInputMode", "File") == "Pipe" or any(
            c.get("InputMode") == "Pipe" for c in request.get("InputDataConfig", [])
        ):
            raise JobFailedError("ClientError: Pipe input mode cannot be run by the devstack; use File or FastFile.")

    def _write_config(self, request: dict[str, Any], layout: TrainingLayout) -> dict[str, Any]:
        hyperparameters = request.get("HyperParameters", {})
        input_config: dict[str, Any] = {}
        for channel in request.get("InputDataConfig", []):
            entry: dict[str, Any] = {}
            if channel.get("ContentType"):
                entry["ContentType"] = channel["ContentType"]
            source = channel["DataSource"].get("S3DataSource", {})
            entry["TrainingInputMode"] = channel.get("InputMode") or request["AlgorithmSpecification"].get(
                "TrainingInputMode", "File"
            )
            entry["S3DistributionType"] = source.get("S3DataDistributionType", "FullyReplicated")
            entry["RecordWrapperType"] = channel.get("RecordWrapperType", "None")
            input_config[channel["ChannelName"]] = entry
        instance_type = request.get("ResourceConfig", {}).get("InstanceType", "local")
        resource_config = {
            "current_host": "algo-1",
            "current_instance_type": instance_type,
            "current_group_name": "homogeneousCluster",
            "hosts": ["algo-1"],
            "instance_groups": [
                {
                    "instance_group_name": "homogeneousCluster",
                    "instance_type": instance_type,
                    "hosts": ["algo-1"],
                }
            ],
            "network_interface_name": "eth0",
        }
        (layout.config_dir / "hyperparameters.json").write_text(json.dumps(hyperparameters))
        (layout.config_dir / "inputdataconfig.json").write_text(json.dumps(input_config))
        (layout.config_dir / "resourceconfig.json").write_text(json.dumps(resource_config))
        if request.get("CheckpointConfig"):
            (layout.config_dir / "checkpointconfig.json").write_text(json.dumps(request["CheckpointConfig"]))
        return input_config

    def _download_channels(self, request: dict[str, Any], layout: TrainingLayout) -> None:
        s3 = self.service.client("s3")
        for channel in request.get("InputDataConfig", []):
            name = channel["ChannelName"]
            source = channel["DataSource"].get("S3DataSource")
            if source is None:
                raise JobFailedError(
                    f"ClientError: Channel {name} uses a data source the devstack does not support "
                    "(only S3DataSource is emulated)."
                )
            dest = layout.channel_dir(name)
            try:
                if source["S3DataType"] == "S3Prefix":
                    awsio.download_prefix(s3, source["S3Uri"], dest)
                elif source["S3DataType"] == "ManifestFile":
                    awsio.download_manifest(s3, source["S3Uri"], dest)
                else:
                    raise JobFailedError(
                        f"ClientError: Channel {name} uses S3DataType {source['S3DataType']}, "
                        "which the devstack "
                        "does not support (S3Prefix and ManifestFile are emulated)."
                    )
            except JobFailedError:
                raise
            except Exception as exc:
                raise JobFailedError(
                    f"ClientError: Data download failed: could not download {source['S3Uri']} for channel {name}: {exc}"
                ) from exc

    def _fetch_code(self, submit_dir: Any, layout: TrainingLayout) -> None:
        if not submit_dir or any(layout.code_dir.iterdir()):
            return
        submit = str(submit_dir)
        try:
            if submit.startswith("s3://"):
                bucket, key = awsio.parse_s3_uri(submit)
                tarball = layout.root.parent.parent / "sourcedir.tar.gz"
                self.service.client("s3").download_file(bucket, key, str(tarball))
                awsio.extract_tarball(tarball, layout.code_dir)
            elif Path(submit).is_dir():
                shutil.copytree(submit, layout.code_dir, dirs_exist_ok=True)
            elif Path(submit).is_file():
                awsio.extract_tarball(Path(submit), layout.code_dir)
            else:
                raise FileNotFoundError(submit)
        except Exception as exc:
            raise JobFailedError(
                f"ClientError: Could not fetch the source code sagemaker_submit_directory={submit}: {exc}"
            ) from exc

    def _command(
        self,
        run: _Run,
        program: str,
        submit_dir: Any,
        user_hps: dict[str, Any],
        input_config: dict[str, Any],
        resource_config: dict[str, Any],
        on_line: Any,
    ) -> tuple[list[str], dict[str, str], bool]:
        spec = run.request["AlgorithmSpecification"]
        mapper, layout, job_layout = run.mapper, run.layout, run.job_layout
        python = str(run.env_dir / "bin" / "python")
        if spec.get("ContainerEntrypoint"):
            argv = mapper.rewrite_all(list(spec["ContainerEntrypoint"]) + list(spec.get("ContainerArguments", [])))
            if is_python(argv[0]):
                argv[0] = python
            return argv, {"PYTHONPATH": str(job_layout.code_dir)}, False
        program = str(program)
        user_args = [mapper.rewrite(a) for a in to_cmd_args(user_hps)]
        user_args += mapper.rewrite_all(list(spec.get("ContainerArguments", [])))
        entry = entry_point_type(layout.code_dir, program)
        if not (layout.code_dir / program).exists() and entry.kind != "python_package":
            raise JobFailedError(
                "AlgorithmError: ExecuteUserScriptError:\nExitCode 2\n"
                f"ErrorMessage \"can't open file {program!r}: [Errno 2] No such file or directory "
                'in /opt/ml/code"'
                ", exit code: 1"
            )
        framework_module = FRAMEWORK_MODULES.get(run.env_spec.toolkit or "", "")
        env = training_env(
            layout=job_layout,
            job_name=run.name,
            region=self.service.region,
            hyperparameters=run.request.get("HyperParameters", {}),
            input_data_config=input_config,
            resource_config=resource_config,
            framework_module=framework_module or None,
            entry_point=program,
            module_dir=str(submit_dir) if submit_dir else str(job_layout.code_dir),
            user_args=user_args,
        )
        env["SAGEMAKER_TRAINING_MODULE"] = framework_module
        env["SAGEMAKER_PROGRAM"] = program
        env["PYTHONPATH"] = str(job_layout.code_dir)
        if entry.kind == "python_program":
            argv = [python, program, *user_args]
        elif entry.kind == "python_package":
            argv = [python, "-m", entry.module_name, *user_args]
        else:
            script = layout.code_dir / program
            if script.exists():
                script.chmod(script.stat().st_mode | 0o111)
            argv = ["/bin/sh", "-c", f"./{program} {shlex.join(user_args)}".strip()]
        return argv, env, True

    def _install_requirements(self, run: _Run, env: dict[str, str], on_line: Any) -> None:
        """Install ``requirements.txt`` of the source directory as the toolkit does, before the script.

        The scikit-learn toolkit runs ``python -m pip install -r requirements.txt`` (error
        ``InstallRequirementsError``); the XGBoost image's older toolkit installs the code as a package with
        its requirements (``InstallModuleError``). The install runs inside the job's namespace (its writes
        go to the job's layer of the environment, not the cached environment); under network isolation it
        has no network, so anything not already installed cannot be fetched and the job fails.
        """
        requirements = run.layout.code_dir / "requirements.txt"
        if not requirements.is_file():
            return
        python = str(run.env_dir / "bin" / "python")
        if run.env_spec.toolkit == "xgboost":
            error, shown = "InstallModuleError", f"{python} -m pip install . -r requirements.txt"
        else:
            error, shown = "InstallRequirementsError", f"{python} -m pip install -r requirements.txt"
        on_line(toolkit_log_line("INFO", "Installing dependencies from requirements.txt"), time.time())
        on_line(toolkit_log_line("INFO", shown), time.time())
        uv = find_uv(self.service.python)
        argv = [uv, "pip", "install", "--python", python, "-r", str(run.job_layout.code_dir / "requirements.txt")]
        if not run.network:
            # No route out: only what the image already has can satisfy the requirements (and uv's cache,
            # which the container would not have, must not either).
            argv += ["--offline", "--no-cache"]
        target = None
        if run.confinement is None or not run.confinement.overlays:
            # No copy-on-write layer over the cached environment: install into the job's own folder instead.
            target = run.layout.root.parent.parent / "site-packages"
            argv += ["--target", str(target)]
            env["PYTHONPATH"] = f"{env.get('PYTHONPATH', '')}:{target}".strip(":")
        lines: list[str] = []

        def keep(line: str, ts: float) -> None:
            lines.append(line)
            on_line(line, ts)

        process = JobProcess(
            argv,
            env,
            run.mapper.sandbox if run.confinement else run.layout.code_dir,
            keep,
            confinement=run.confinement,
        )
        result = process.wait(max_runtime=3600)
        if result.exit_code != 0:
            excerpt = stderr_excerpt(lines, limit=500).replace('"', "'")
            text = f'{error}:\nExitCode {result.exit_code}\nErrorMessage "{excerpt}"\nCommand "{shown}"'
            run.layout.failure_file.write_text(text, encoding="utf-8")
            on_line(toolkit_log_line("ERROR", "Reporting training FAILURE"), time.time())
            raise JobFailedError(f"AlgorithmError: {text}, exit code: 1")

    def _algorithm_command(self, run: _Run) -> tuple[list[str], dict[str, str], bool]:
        """The built-in XGBoost algorithm (no user script): the devstack's algorithm-mode runner."""
        runner = run.mapper.sandbox / "algorithm" / xgboost_algorithm.SCRIPT.name
        runner.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(xgboost_algorithm.SCRIPT, runner)
        argv = [str(run.env_dir / "bin" / "python"), str(runner), "--opt-ml", str(run.job_layout.root)]
        return argv, {}, False

    def _failure_text(
        self,
        layout: TrainingLayout,
        exit_code: int,
        stderr_tail: list[str],
        argv: list[str],
        uses_toolkit: bool,
    ) -> tuple[str, int]:
        failure_file = layout.failure_file
        if failure_file.exists():
            text = failure_file.read_text(encoding="utf-8", errors="replace").strip()
            return text[:MAX_FAILURE_REASON], 1 if uses_toolkit else exit_code
        excerpt = stderr_excerpt(stderr_tail)
        if not uses_toolkit:
            return excerpt, exit_code
        code = exit_code if exit_code >= 0 else 128 - exit_code
        lines = ["ExecuteUserScriptError:", f"ExitCode {code}", f'ErrorMessage "{excerpt}"']
        if code == 137:
            lines.append("ExtraInfo OutOfMemory: Process killed by SIGKILL (signal 9)")
        lines.append(f'Command "{shlex.join(argv)}"')
        text = "\n".join(lines)
        failure_file.write_text(text, encoding="utf-8")
        return text, 1

    def _upload(self, name: str, request: dict[str, Any], layout: TrainingLayout) -> None:
        s3 = self.service.client("s3")
        output = request["OutputDataConfig"]
        base = f"{output['S3OutputPath'].rstrip('/')}/{name}/output"
        work = layout.root.parent.parent / "upload"
        try:
            if output.get("CompressionType", "GZIP") == "NONE":
                awsio.upload_directory(s3, layout.model_dir, f"{base}/model/")
            else:
                awsio.make_tarball(layout.model_dir, work / "model.tar.gz")
                bucket, key = awsio.parse_s3_uri(f"{base}/model.tar.gz")
                s3.upload_file(str(work / "model.tar.gz"), bucket, key)
            awsio.make_tarball(layout.output_data_dir, work / "output.tar.gz")
            bucket, key = awsio.parse_s3_uri(f"{base}/output.tar.gz")
            s3.upload_file(str(work / "output.tar.gz"), bucket, key)
        except Exception as exc:
            raise JobFailedError(f"ClientError: Could not upload the model artifacts to {base}: {exc}") from exc


@dataclass
class _Run:
    """What one training job's command is built from."""

    name: str
    request: dict[str, Any]
    image: ImageInfo
    env_spec: EnvironmentSpec
    env_dir: Path
    layout: TrainingLayout
    job_layout: TrainingLayout
    mapper: PathMapper
    confinement: Confinement | None
    network: bool


__all__ = ["KIND", "LOG_GROUP", "JobFailedError", "SageMakerError", "TrainingJobs"]
