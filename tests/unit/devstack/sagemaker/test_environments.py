"""Image environments: content-addressed, built once under concurrent first use, reused after a restart;
the catalogue and the project's Dockerfiles resolve images to environments, or name what is wrong."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from devstack.sagemaker.catalogue import ImageEnvironments, catalogue_spec
from devstack.sagemaker.dockerfile import DockerfileError, read_dockerfile
from devstack.sagemaker.environments import MARKER, EnvironmentCache, EnvironmentSpec
from devstack.sagemaker.images import parse_image_uri
from tests.integration.devstack.sagemaker_support import build_probe_wheel

REPO = Path(__file__).resolve().parents[4]


@pytest.fixture
def probe_spec(tmp_path: Path) -> EnvironmentSpec:
    """A spec installable without a network: one local wheel."""
    wheels = tmp_path / "wheels"
    build_probe_wheel(wheels)
    return EnvironmentSpec(
        image="probe:1", requirements=("--no-index", f"--find-links {wheels}", "devstack-probe==1.0")
    )


def test_concurrent_first_uses_build_once_and_a_restart_reuses_the_build(
    tmp_path: Path, probe_spec: EnvironmentSpec
) -> None:
    cache = EnvironmentCache(tmp_path / "cache")
    progress: list[str] = []
    results: list[Path] = []

    def first_use() -> None:
        results.append(cache.ensure(probe_spec, progress.append))

    threads = [threading.Thread(target=first_use) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert len(set(results)) == 1 and len(results) == 3
    assert sum(line.startswith("Building the environment of probe:1") for line in progress) == 1
    env = results[0]
    assert list(env.glob("lib/python*/site-packages/devstack_probe/__init__.py"))
    # compiled at install, as pip compiles an image's packages: a job does not compile what it imports
    assert list(env.glob("lib/python*/site-packages/devstack_probe/__pycache__/__init__.*.pyc"))
    restarted: list[str] = []
    assert EnvironmentCache(tmp_path / "cache").ensure(probe_spec, restarted.append) == env
    assert restarted == []


def test_a_half_built_environment_is_rebuilt(tmp_path: Path, probe_spec: EnvironmentSpec) -> None:
    cache = EnvironmentCache(tmp_path / "cache")
    env = cache.path_for(probe_spec)
    env.mkdir(parents=True)
    (env / "leftover").write_text("a crash mid-build")
    progress: list[str] = []

    assert cache.ensure(probe_spec, progress.append) == env

    assert (env / MARKER).is_file()
    assert not (env / "leftover").exists()
    assert any("Removing an incomplete environment" in line for line in progress)


def test_the_address_changes_with_the_content(tmp_path: Path, probe_spec: EnvironmentSpec) -> None:
    cache = EnvironmentCache(tmp_path / "cache")
    other = EnvironmentSpec(image="probe:1", requirements=(*probe_spec.requirements, "pip"))
    assert cache.path_for(probe_spec) != cache.path_for(other)
    assert cache.path_for(probe_spec) == cache.path_for(EnvironmentSpec("probe:1", probe_spec.requirements))


@pytest.mark.parametrize(
    ("uri", "version"),
    [
        pytest.param(
            "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
            "scikit-learn==1.2.1",
            id="sklearn-1.2-1",
        ),
        pytest.param(
            "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.4-2-cpu-py3",
            "scikit-learn==1.4.2",
            id="sklearn-1.4-2",
        ),
        pytest.param(
            "246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost:1.7-1", "xgboost==1.7.4", id="xgboost-1.7-1"
        ),
        pytest.param(
            "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.0-5",
            "xgboost-cpu==3.0.5",
            id="xgboost-3.0-5",
        ),
    ],
)
def test_catalogue_pins_each_images_framework_version(uri: str, version: str) -> None:
    spec = catalogue_spec(parse_image_uri(uri))
    assert spec is not None
    assert version in spec.requirements
    assert spec.substitutions, "every catalogue image runs on Python 3.11, a substitution to state"


def test_unknown_images_are_named_in_the_reason(tmp_path: Path) -> None:
    images = ImageEnvironments(EnvironmentCache(tmp_path), "123456789012", tmp_path / "images")
    pytorch = parse_image_uri("763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.8.0-cpu-py312")
    assert images.spec_for(pytorch) is None
    assert images.unknown_image_reason(pytorch).startswith(
        f"ClientError: The devstack cannot run the image {pytorch.uri}"
    )


def _dockerfile(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "img" / "Dockerfile"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_dockerfile_gives_base_layers_env_and_entrypoint(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "requirements.txt").write_text("# pinned\nrequests==2.32.3\n")
    path = _dockerfile(
        tmp_path,
        "ARG REGION=us-east-1\n"
        "FROM 683313688378.dkr.ecr.${REGION}.amazonaws.com/sagemaker-scikit-learn:1.4-2-cpu-py3\n"
        "COPY requirements.txt /tmp/\n"
        "RUN pip install --no-cache-dir great-expectations==1.24.1 \\\n"
        "    && python3 -m pip install -r requirements.txt\n"
        "ENV A=1 B=two\n"
        'ENTRYPOINT ["python3", "/opt/program/run.py"]\n',
    )
    recipe = read_dockerfile(path)
    assert recipe.base.endswith("sagemaker-scikit-learn:1.4-2-cpu-py3")
    assert recipe.requirements == ["great-expectations==1.24.1", "requests==2.32.3"]
    assert recipe.environment == {"A": "1", "B": "two"}
    assert recipe.entrypoint == ["python3", "/opt/program/run.py"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("FROM x\nRUN apt-get install -y curl\n", "only 'pip install ...' RUN commands", id="apt"),
        pytest.param("FROM x\nCOPY app.py /opt/\n", "only requirements files may be copied", id="copy-code"),
        pytest.param("FROM x\nENTRYPOINT python3 run.py\n", "exec form", id="shell-entrypoint"),
        pytest.param("RUN pip install x\n", "no FROM line", id="no-from"),
        pytest.param("FROM ${BASE}\n", "$BASE has no ARG default", id="unset-arg"),
    ],
)
def test_dockerfile_features_the_devstack_cannot_follow_are_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DockerfileError, match=message.replace("$", r"\$").replace("(", r"\(")):
        read_dockerfile(_dockerfile(tmp_path, text))


def test_the_projects_validation_image_resolves_to_great_expectations_on_the_processing_base() -> None:
    images = ImageEnvironments(EnvironmentCache(Path("/nonexistent")), "123456789012")
    spec = images.spec_for(parse_image_uri("123456789012.dkr.ecr.us-east-1.amazonaws.com/ml-lifecycle-validation:1"))
    assert spec is not None
    assert spec.source == "include/images/ml-lifecycle-validation/Dockerfile"
    assert any(r.startswith("great-expectations==") for r in spec.extra_requirements)
    assert "scikit-learn==1.4.2" in spec.requirements
