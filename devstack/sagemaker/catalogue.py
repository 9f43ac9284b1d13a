"""The image catalogue: which SageMaker images the devstack runs, and what each one's environment holds.

Versions follow the images' own pins (the SageMaker container repositories' ``requirements.txt`` and
Dockerfiles at each branch head). Every image runs on the local Python 3.11 (the
images ship 3.8 to 3.12); where a pinned library has no wheel for Python 3.11 the nearest release that
has one is used, and the substitution is recorded in the spec (and shown in the job's log on first build).
The toolkits themselves (sagemaker-training, sagemaker-containers, sagemaker-inference) are not installed:
the devstack performs their behaviour around the job (:mod:`devstack.sagemaker.toolkit`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from devstack.sagemaker.dockerfile import DockerfileError, read_dockerfile
from devstack.sagemaker.environments import REPOSITORY_ROOT, EnvironmentCache, EnvironmentSpec
from devstack.sagemaker.images import ImageInfo, parse_image_uri

_PY = "Python 3.11 for the image's Python {0}: the only interpreter on the machine"

#: (repository, framework version) -> spec. The tags SageMaker uses for each are in :data:`TAGS`.
CATALOGUE: dict[tuple[str, str], EnvironmentSpec] = {
    ("sagemaker-scikit-learn", "1.2-1"): EnvironmentSpec(
        image="sagemaker-scikit-learn:1.2-1",
        requirements=(
            "scikit-learn==1.2.1",
            "numpy==1.24.1",
            "pandas==1.5.3",
            "scipy==1.9.3",
            "pyarrow==14.0.1",
            "boto3==1.28.57",
            "pip",
        ),
        substitutions=(
            _PY.format("3.9"),
            "pandas 1.5.3 for 1.1.3: pandas 1.1.3 has no wheel for Python 3.11 (1.5 is the first series with one)",
            "scipy 1.9.3 for 1.8.0: scipy 1.8.0 has no wheel for Python 3.11",
        ),
        exclude_newer="2025-09-22T00:00:00Z",
        toolkit="sklearn",
    ),
    ("sagemaker-scikit-learn", "1.4-2"): EnvironmentSpec(
        image="sagemaker-scikit-learn:1.4-2",
        requirements=(
            "scikit-learn==1.4.2",
            "numpy==2.1.0",
            "pandas==2.3.2",
            "scipy>=1.9.0",
            "pyarrow==17.0.0",
            "boto3==1.28.57",
            "pip",
        ),
        substitutions=(_PY.format("3.10"),),
        exclude_newer="2026-04-17T00:00:00Z",
        toolkit="sklearn",
    ),
    ("sagemaker-xgboost", "1.7-1"): EnvironmentSpec(
        image="sagemaker-xgboost:1.7-1",
        requirements=(
            "xgboost==1.7.4",
            "scikit-learn==1.1.3",
            "numpy==1.24.1",
            "pandas==1.5.3",
            "scipy==1.9.3",
            "pyarrow==14.0.1",
            "boto3==1.17.52",
            "matplotlib",
            "pip",
        ),
        substitutions=(
            _PY.format("3.9"),
            "scikit-learn 1.1.3 for 0.24.1: 0.24.1 has no wheel for Python 3.11 (1.1.3 is the first with one)",
            "pandas 1.5.3 for 1.2.4 and scipy 1.9.3 for 1.8.0: no wheels for Python 3.11",
            "mlio, dask and the CUDA libraries are left out (no wheels, or GPU only)",
        ),
        exclude_newer="2025-09-17T00:00:00Z",
        toolkit="xgboost",
    ),
    ("sagemaker-xgboost", "3.0-5"): EnvironmentSpec(
        image="sagemaker-xgboost:3.0-5",
        requirements=(
            "xgboost-cpu==3.0.5",
            "scikit-learn==1.5.2",
            "numpy==2.1.0",
            "pandas==2.2.3",
            "scipy==1.15.0",
            "pyarrow==22.0.0",
            "boto3==1.17.52",
            "matplotlib",
            "pip",
        ),
        substitutions=(
            _PY.format("3.10"),
            "xgboost-cpu 3.0.5 for xgboost 3.0.5: the same release built without CUDA (the image is a GPU build)",
            "dask and the CUDA libraries are left out (GPU only)",
        ),
        exclude_newer="2025-11-17T00:00:00Z",
        toolkit="xgboost",
    ),
}

#: Tags SageMaker gives each catalogued version (SDK ``image_uris``: scikit-learn ``<v>-cpu-py3``,
#: XGBoost 1.2-1 and later the bare version).
TAGS: dict[tuple[str, str], tuple[str, ...]] = {
    ("sagemaker-scikit-learn", "1.2-1"): ("1.2-1-cpu-py3", "1.2-1"),
    ("sagemaker-scikit-learn", "1.4-2"): ("1.4-2-cpu-py3", "1.4-2"),
    ("sagemaker-xgboost", "1.7-1"): ("1.7-1", "1.7-1-cpu-py3"),
    ("sagemaker-xgboost", "3.0-5"): ("3.0-5",),
}


def supported_images() -> list[str]:
    """``repository:tag`` of every catalogued image, for messages and docs."""
    return [f"{repo}:{tag}" for key, tags in TAGS.items() for repo in [key[0]] for tag in tags]


def catalogue_spec(image: ImageInfo) -> EnvironmentSpec | None:
    """The environment of a SageMaker framework image, or None when its tag is not catalogued."""
    if image.repository is None or image.tag is None:
        return None
    for key, tags in TAGS.items():
        if key[0] == image.repository and image.tag in tags:
            return CATALOGUE[key]
    return None


def _display(path: Path) -> str:
    return str(path.relative_to(REPOSITORY_ROOT)) if path.is_relative_to(REPOSITORY_ROOT) else str(path)


class ImageEnvironments:
    """Resolves a job's image URI to its environment and builds it on first use.

    Known SageMaker framework images come from :data:`CATALOGUE`; the project's own images from
    ``<images_dir>/<name>/Dockerfile`` when the URI is ``<account>.dkr.ecr.<region>.amazonaws.com/<name>:<tag>``
    in the service's account.

    :param cache: the environment cache.
    :param account_id: the account whose ECR repositories hold the project's own images.
    :param images_dir: the folder of the project's image Dockerfiles (default ``<repository>/include/images``).
    """

    def __init__(self, cache: EnvironmentCache, account_id: str, images_dir: Path | None = None) -> None:
        self.cache = cache
        self.account_id = account_id
        self.images_dir = Path(images_dir) if images_dir else REPOSITORY_ROOT / "include" / "images"

    def own_image_dockerfile(self, image: ImageInfo) -> Path | None:
        """The Dockerfile of one of the project's own images, or None."""
        if image.account != self.account_id or not image.repository:
            return None
        if "/" in image.repository or image.repository.startswith("."):
            return None
        path = self.images_dir / image.repository / "Dockerfile"
        return path if path.is_file() else None

    def spec_for(self, image: ImageInfo) -> EnvironmentSpec | None:
        """The environment of ``image``, or None when the devstack does not know the image.

        :raises DockerfileError: when the project's Dockerfile for it cannot be used.
        """
        spec = catalogue_spec(image) if image.family in ("sklearn", "xgboost") else None
        if spec is not None:
            return spec
        dockerfile = self.own_image_dockerfile(image)
        if dockerfile is None:
            return None
        recipe = read_dockerfile(dockerfile)
        base = catalogue_spec(parse_image_uri(recipe.base))
        if base is None:
            raise DockerfileError(
                f"{dockerfile}: FROM {recipe.base} is not a SageMaker image the devstack knows "
                f"(known: {', '.join(supported_images())})"
            )
        return replace(
            base,
            image=image.repository,
            extra_requirements=tuple(recipe.requirements),
            environment=tuple(sorted(recipe.environment.items())),
            entrypoint=tuple(recipe.entrypoint),
            source=_display(dockerfile),
        )

    def unknown_image_reason(self, image: ImageInfo) -> str:
        """The FailureReason of a job whose image the devstack does not know."""
        if image.family in ("sklearn", "xgboost"):
            why = (
                f"tag {image.tag} of {image.repository} is not in the devstack's image catalogue "
                f"(known: {', '.join(supported_images())})"
            )
        elif image.account == self.account_id and image.repository:
            why = (
                f"the repository {image.repository} of account {image.account} has no Dockerfile at "
                f"include/images/{image.repository}/Dockerfile"
            )
        else:
            why = (
                "it is neither a SageMaker scikit-learn or XGBoost image of the catalogue "
                f"({', '.join(supported_images())}) nor one of the project's own images "
                "(include/images/<name>/Dockerfile)"
            )
        return f"ClientError: The devstack cannot run the image {image.uri}: {why}."

    def ensure(self, spec: EnvironmentSpec, say: Callable[[str], None]) -> Path:
        """Build (once) and return the environment of ``spec``."""
        return self.cache.ensure(spec, say)


#: the account the own images are resolved in when every environment is built ahead of use
_PREBUILD_ACCOUNT = "000000000000"


def every_environment(cache: EnvironmentCache, images_dir: Path | None = None) -> list[EnvironmentSpec]:
    """The environment of every catalogued image and of every own image under ``images_dir``.

    :raises DockerfileError: when one of the project's Dockerfiles cannot be used.
    """
    resolver = ImageEnvironments(cache, _PREBUILD_ACCOUNT, images_dir)
    specs = list(CATALOGUE.values())
    for dockerfile in sorted(resolver.images_dir.glob("*/Dockerfile")):
        uri = f"{_PREBUILD_ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/{dockerfile.parent.name}:latest"
        spec = resolver.spec_for(parse_image_uri(uri))
        if spec is not None:
            specs.append(spec)
    return specs


def build_every_environment(
    cache: EnvironmentCache, images_dir: Path | None = None, progress: Callable[[str], None] | None = None
) -> list[Path]:
    """Build (or find in ``cache``) the environment of every image :func:`every_environment` lists.

    What ``make test`` runs before the tests, so that jobs find their environments built and no test waits
    for the package index.
    """
    return [cache.ensure(spec, progress) for spec in every_environment(cache, images_dir)]
