"""The images the local node can run, and the program that stands in for each.

Nothing is pulled: an image is a name the project knows. Two are known:

- The mock-chain sample service, whose real counterpart has its version built in, so the tag
  decides the version it reports (`:1.0` -> v1, `:2.0` -> v2) whatever `version` env the
  pod sets. The story relies on that: its Deployments keep `version: v1` in their env when
  the image moves to 2.0, and the new pods must report v2.
- The operator image the Helm chart runs (`lanes/operator:<appVersion>`), whose ENTRYPOINT
  is `kubectl-lane` (see the Dockerfile): this copy of lanes' CLI, followed by the
  container's `args`. Only the chart's own tag is known, since this copy of lanes is what
  that tag stands for.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

from lanes_testbed.mesh.mockapp import version_of_image
from lanes_testbed.mesh.pods import APP_MODULE

SAMPLE_REPOSITORIES = (
    "lanes/mock-chain",
    "registry.cn-beijing.aliyuncs.com/aliacs-app-catalog/go-http-sample",
)
_ALIYUN_SAMPLE = re.compile(
    r"^registry(?:-vpc)?\.[a-z0-9-]+\.aliyuncs\.com/aliacs-app-catalog/go-http-sample$"
)
_DOCKER_HUB = ("docker.io/", "index.docker.io/")
# The chart's image.repository and appVersion (charts/lanes; a unit test holds them equal).
OPERATOR_REPOSITORY = "lanes/operator"
OPERATOR_TAG = "0.1.0"
# The module of the `kubectl-lane` console script, the image's ENTRYPOINT.
CLI_MODULE = "lanes.cli.main"


class ImageNotKnown(ValueError):
    """The image is not one the local node can run; the message says which ones it can."""


@dataclass(frozen=True)
class Program:
    """What runs for a container: its argv and the env the image itself would carry."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    image_id: str = ""
    # Whether the container's `args` follow argv (an image whose ENTRYPOINT takes them).
    takes_args: bool = False


def repository_of(image: str) -> str:
    """`registry/path/name:tag@digest` -> `registry/path/name`, Docker Hub prefix dropped."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    for prefix in _DOCKER_HUB:
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name


def is_sample(image: str) -> bool:
    repository = repository_of(image)
    return repository in SAMPLE_REPOSITORIES or bool(_ALIYUN_SAMPLE.match(repository))


def tag_of(image: str) -> str | None:
    """`name:tag@digest` -> `tag`; None when the image names no tag."""
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def is_operator(image: str) -> bool:
    return repository_of(image) == OPERATOR_REPOSITORY


def known_images() -> str:
    """What the local node runs, for messages."""
    samples = " and ".join(f"{r}:<version>" for r in SAMPLE_REPOSITORIES)
    return (f"{samples} (the mock-chain sample service) and "
            f"{OPERATOR_REPOSITORY}:{OPERATOR_TAG} (the chart's operator)")


def program_for(image: str) -> Program:
    """The program that runs `image` here.

    Raises:
        ImageNotKnown: the image is neither a sample image nor the chart's operator image,
            or its tag names no version the node can run.
    """
    if is_operator(image):
        return operator_program(image)
    if not is_sample(image):
        raise ImageNotKnown(
            f"image {image!r} is not known to the local node, which runs only {known_images()}"
        )
    try:
        version = version_of_image(image)
    except ValueError as error:
        raise ImageNotKnown(f"{error}; the local node reads the version from the tag") from None
    return Program(
        argv=(sys.executable, "-m", APP_MODULE),
        env={"LANES_IMAGE": image, "version": version},
        image_id=image_id(image),
    )


def operator_program(image: str) -> Program:
    """The chart's operator image: `kubectl-lane` from this copy of lanes, then `args`.

    Raises:
        ImageNotKnown: the tag is not the chart's appVersion.
    """
    tag = tag_of(image)
    if tag != OPERATOR_TAG:
        raise ImageNotKnown(
            f"image {image!r}: the local node runs {OPERATOR_REPOSITORY} only at the chart's "
            f"appVersion {OPERATOR_TAG!r}, the version of this copy of lanes"
        )
    return Program(argv=(sys.executable, "-m", CLI_MODULE), image_id=image_id(image), takes_args=True)


def image_id(image: str) -> str:
    """A stable digest-style id, since no real image (and so no real digest) exists."""
    digest = hashlib.sha256(image.encode()).hexdigest()
    return f"{repository_of(image)}@sha256:{digest}"
