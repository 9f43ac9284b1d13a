"""Read the project's own image Dockerfiles (``include/images/<name>/Dockerfile``) into environment specs.

The same Dockerfile is what CI builds and pushes to ECR for AWS, so the devstack derives the local
environment from it rather than from a second description. The subset it understands is the one such
images need, and anything else is an error naming the line (never silently ignored):

- ``ARG NAME=default`` and ``${NAME}`` / ``$NAME`` in later lines (defaults only; CI may pass other values);
- ``FROM <SageMaker framework image URI>``: the base environment, from the catalogue;
- ``RUN pip install [options] <requirement>...`` (also ``python -m pip`` / ``python3 -m pip``, ``-r file``
  relative to the Dockerfile's folder, several commands joined with ``&&``; ``--index-url``,
  ``--extra-index-url`` and ``--find-links`` are kept): installed on top of the base;
- ``ENV NAME=value`` (or ``ENV NAME value``): variables of the image;
- ``ENTRYPOINT ["exec", "form"]``: what a processing job without ``ContainerEntrypoint`` runs;
- ``COPY``/``ADD`` of a requirements file used by ``pip install -r``, ``WORKDIR``, ``LABEL``, ``USER``,
  ``EXPOSE``, ``CMD`` (no effect locally).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")
_IGNORED = {"WORKDIR", "LABEL", "USER", "EXPOSE", "CMD", "MAINTAINER", "SHELL", "STOPSIGNAL", "HEALTHCHECK"}
#: pip options kept as requirement-file lines (where packages come from).
_PIP_INDEX_OPTIONS = {
    "-i": "--index-url",
    "--index-url": "--index-url",
    "--extra-index-url": "--extra-index-url",
    "-f": "--find-links",
    "--find-links": "--find-links",
}
_PIP_OPTIONS_WITH_VALUE = {"-c", "--constraint", "--timeout"}
_PIP_FLAGS = {"--no-cache-dir", "--upgrade", "-U", "--quiet", "-q", "--no-compile", "--disable-pip-version-check"}


class DockerfileError(ValueError):
    """The Dockerfile uses something the devstack cannot derive an environment from."""


@dataclass
class ImageRecipe:
    """What a project Dockerfile says.

    :param path: the Dockerfile.
    :param base: the ``FROM`` image URI.
    :param requirements: the ``pip install`` requirements, in order.
    :param environment: the ``ENV`` variables.
    :param entrypoint: the ``ENTRYPOINT`` exec form.
    """

    path: Path
    base: str = ""
    requirements: list[str] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    entrypoint: list[str] = field(default_factory=list)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    lines: list[tuple[int, str]] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        buffer += stripped
        lines.append((start, buffer))
        buffer = ""
    if buffer:
        lines.append((start, buffer))
    return lines


def _substitute(text: str, args: dict[str, str], where: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in args:
            raise DockerfileError(f"{where}: ${name} has no ARG default")
        return args[name]

    return _VAR.sub(value, text)


def _pip_requirements(command: list[str], folder: Path, copies: dict[str, str], where: str) -> list[str]:
    if command[:1] in (["pip"], ["pip3"]):
        rest = command[1:]
    elif len(command) >= 3 and command[0] in ("python", "python3") and command[1:3] == ["-m", "pip"]:
        rest = command[3:]
    else:
        raise DockerfileError(
            f"{where}: only 'pip install ...' RUN commands are understood, not {shlex.join(command)!r}"
        )
    if not rest or rest[0] != "install":
        raise DockerfileError(f"{where}: only 'pip install' is understood, not {shlex.join(command)!r}")
    requirements: list[str] = []
    items = iter(rest[1:])
    for item in items:
        if item in ("-r", "--requirement"):
            name = next(items, "")
            path = folder / copies.get(name, name)
            if not path.is_file():
                raise DockerfileError(f"{where}: requirements file {name} not found next to the Dockerfile")
            requirements += [
                line.split("#", 1)[0].strip()
                for line in path.read_text(encoding="utf-8").splitlines()
                if line.split("#", 1)[0].strip()
            ]
        elif item in _PIP_INDEX_OPTIONS:
            requirements.append(f"{_PIP_INDEX_OPTIONS[item]} {next(items, '')}")
        elif item in _PIP_OPTIONS_WITH_VALUE:
            next(items, None)
        elif item in _PIP_FLAGS:
            continue
        elif item.startswith("-"):
            raise DockerfileError(f"{where}: pip option {item} is not understood")
        else:
            requirements.append(item)
    return requirements


def read_dockerfile(path: Path) -> ImageRecipe:
    """Parse a project Dockerfile.

    :param path: ``include/images/<name>/Dockerfile``.
    :raises DockerfileError: naming the file and line of anything it cannot use.
    """
    recipe = ImageRecipe(path=path)
    args: dict[str, str] = {}
    copies: dict[str, str] = {}  # where a COPY put a file in the image -> the file next to the Dockerfile
    for number, line in _logical_lines(path.read_text(encoding="utf-8")):
        where = f"{path}:{number}"
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        rest = rest.strip()
        if instruction == "ARG":
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip().strip('"')
        elif instruction == "FROM":
            if recipe.base:
                raise DockerfileError(f"{where}: multi-stage builds are not understood")
            recipe.base = _substitute(rest.split()[0], args, where)
        elif instruction == "RUN":
            for part in _substitute(rest, args, where).split("&&"):
                recipe.requirements += _pip_requirements(shlex.split(part), path.parent, copies, where)
        elif instruction == "ENV":
            text = _substitute(rest, args, where)
            if "=" in text.split()[0]:
                for item in shlex.split(text):
                    key, _, value = item.partition("=")
                    recipe.environment[key] = value
            else:
                key, _, value = text.partition(" ")
                recipe.environment[key] = value.strip()
        elif instruction == "ENTRYPOINT":
            try:
                entrypoint = json.loads(rest)
            except ValueError as exc:
                raise DockerfileError(f'{where}: ENTRYPOINT must use the exec form (["..."])') from exc
            if not isinstance(entrypoint, list) or not all(isinstance(x, str) for x in entrypoint):
                raise DockerfileError(f"{where}: ENTRYPOINT must be a list of strings")
            recipe.entrypoint = entrypoint
        elif instruction in ("COPY", "ADD"):
            *sources, dest = shlex.split(rest)
            if not sources or not all(s.endswith(".txt") for s in sources):
                raise DockerfileError(
                    f"{where}: only requirements files may be copied into the image (code goes in as job inputs)"
                )
            for source in sources:
                copies[dest.rstrip("/") + "/" + Path(source).name if dest.endswith("/") else dest] = source
        elif instruction not in _IGNORED:
            raise DockerfileError(f"{where}: {instruction} is not understood")
    if not recipe.base:
        raise DockerfileError(f"{path}: no FROM line")
    return recipe
