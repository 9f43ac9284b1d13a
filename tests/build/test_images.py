"""The project's own SageMaker images: one Dockerfile each under include/images, named by every config, with
an ECR repository in the stack and a push step before each deploy (CI and CodeBuild)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from devstack.sagemaker.catalogue import catalogue_spec
from devstack.sagemaker.dockerfile import read_dockerfile
from devstack.sagemaker.images import parse_image_uri

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((ROOT / "include" / "images").glob("*/Dockerfile"))
CONFIGS = sorted((ROOT / "include" / "config").glob("*.yaml"))


def _version(dockerfile: Path) -> str:
    match = re.search(r'^LABEL org\.opencontainers\.image\.version="([^"]+)"', dockerfile.read_text(), re.M)
    assert match, f"{dockerfile}: no version label (the tag infra/docker/push-images.sh pushes)"
    return match.group(1)


@pytest.mark.parametrize("name", ["ml-lifecycle-validation", "ml-lifecycle-monitoring"])
def test_there_is_an_image(name: str) -> None:
    assert ROOT / "include" / "images" / name / "Dockerfile" in DOCKERFILES


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_each_dockerfile_builds_on_a_sagemaker_image_the_devstack_knows(dockerfile: Path) -> None:
    recipe = read_dockerfile(dockerfile)
    assert catalogue_spec(parse_image_uri(recipe.base)) is not None, recipe.base
    assert _version(dockerfile)


@pytest.mark.parametrize("key", ["validation", "monitoring"])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_every_config_runs_its_jobs_in_the_projects_own_images(config: Path, key: str) -> None:
    document = yaml.safe_load(config.read_text())
    image = parse_image_uri(document["sagemaker"]["images"][key])
    assert image.repository == f"ml-lifecycle-{key}"
    assert image.account == str(document["aws"]["account_id"])
    assert image.region == document["aws"]["region"]
    dockerfile = ROOT / "include" / "images" / str(image.repository) / "Dockerfile"
    assert dockerfile.is_file()
    assert image.tag == _version(dockerfile)


def test_the_stack_declares_a_repository_for_each_image() -> None:
    template = (ROOT / "infra" / "cloudformation" / "ml-lifecycle.yaml").read_text()
    for dockerfile in DOCKERFILES:
        assert f"RepositoryName: {dockerfile.parent.name}" in template


@pytest.mark.parametrize("pipeline", ["buildspec.yml", ".github/workflows/ci.yml"])
def test_images_are_pushed_before_every_deploy(pipeline: str) -> None:
    text = (ROOT / pipeline).read_text()
    deploys = [m.start() for m in re.finditer(r"make deploy", text)]
    pushes = [m.start() for m in re.finditer(r"infra/docker/push-images\.sh", text)]
    assert deploys and len(pushes) == len(deploys)
    assert all(p < d for p, d in zip(pushes, deploys, strict=True))
