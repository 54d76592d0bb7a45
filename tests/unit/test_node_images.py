"""Which images the local node runs, and the program each becomes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from lanes.cli.main import main
from lanes_testbed.node.images import (CLI_MODULE, OPERATOR_REPOSITORY, OPERATOR_TAG, ImageNotKnown,
                                   program_for, tag_of)
from lanes_testbed.node.pods import container_args

CHART = Path(__file__).resolve().parents[2] / "charts" / "lanes"
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_the_operator_image_is_the_charts() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert values["image"]["repository"] == OPERATOR_REPOSITORY
    assert not values["image"]["tag"], "the chart's tag defaults to its appVersion"
    assert chart["appVersion"] == OPERATOR_TAG


def test_the_operator_runs_the_kubectl_lane_entry_point() -> None:
    assert f'kubectl-lane = "{CLI_MODULE}:main"' in PYPROJECT.read_text()
    assert main.__module__ == CLI_MODULE


@pytest.mark.parametrize("image", [
    f"{OPERATOR_REPOSITORY}:{OPERATOR_TAG}",
    f"docker.io/{OPERATOR_REPOSITORY}:{OPERATOR_TAG}",
], ids=["chart", "docker-hub-prefix"])
def test_the_operator_image_runs_this_copy_of_lanes_with_the_containers_args(image: str) -> None:
    program = program_for(image)
    assert program.argv == (sys.executable, "-m", CLI_MODULE)
    assert program.takes_args
    assert program.env == {}


def test_a_sample_image_takes_no_args() -> None:
    assert not program_for("lanes/mock-chain:1.0").takes_args


@pytest.mark.parametrize("image", [f"{OPERATOR_REPOSITORY}:9.9.9", OPERATOR_REPOSITORY],
                         ids=["other-tag", "no-tag"])
def test_the_operator_image_runs_only_at_the_charts_app_version(image: str) -> None:
    with pytest.raises(ImageNotKnown, match=f"only at the chart's appVersion '{OPERATOR_TAG}'"):
        program_for(image)


def test_an_unknown_image_names_every_image_the_node_runs() -> None:
    with pytest.raises(ImageNotKnown) as raised:
        program_for("nginx:1.27")
    message = str(raised.value)
    assert "'nginx:1.27'" in message
    assert "lanes/mock-chain:<version>" in message
    assert f"{OPERATOR_REPOSITORY}:{OPERATOR_TAG}" in message


@pytest.mark.parametrize(("image", "tag"), [
    ("lanes/operator:0.1.0", "0.1.0"),
    ("registry:5000/lanes/operator", None),
    ("registry:5000/lanes/operator:1@sha256:ab", "1"),
])
def test_tag_of(image: str, tag: str | None) -> None:
    assert tag_of(image) == tag


def test_args_are_expanded_from_the_containers_env_as_kubelet_does() -> None:
    container = {"args": ["operator", "--metrics-host=$(POD_IP)", "--x=$(UNSET)", "$$(POD_IP)", 9090]}
    assert container_args(container, {"POD_IP": "127.0.0.12"}) == (
        "operator", "--metrics-host=127.0.0.12", "--x=$(UNSET)", "$(POD_IP)", "9090")
    assert container_args({}, {}) == ()
