"""Observations from Services and pods: which lanes have ready pods of each service."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lanes.api.topology import resolve
from lanes.importers import load
from lanes.render.observe import (
    PodView,
    lane_label_keys,
    lane_services,
    observe,
    pod_view,
    selects,
)
from tests.conftest import REFERENCE

SERVICES = {
    "default/mocka": {"app": "mocka"},
    "default/mockb": {"app": "mockb"},
    "default/mockc": {"app": "mockc"},
}


INPUTS = REFERENCE / "asm-mock-chain-inputs.yaml"
STORY = load(INPUTS)


@pytest.fixture
def story():
    return STORY.groups[0], STORY.lanes


def pod(
    app: str,
    tag: str | None,
    *,
    ready: bool = True,
    namespace: str = "default",
    deleting: bool = False,
    phase: str = "Running",
) -> dict:
    labels = {"app": app}
    if tag is not None:
        labels["ASM_TRAFFIC_TAG"] = tag
    metadata: dict = {"name": f"{app}-{tag}", "namespace": namespace, "labels": labels}
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": metadata,
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


@pytest.mark.parametrize(
    ("body", "ready"),
    [
        pytest.param(pod("mocka", "base"), True, id="ready"),
        pytest.param(pod("mocka", "base", ready=False), False, id="not-ready"),
        pytest.param(pod("mocka", "base", deleting=True), False, id="terminating"),
        pytest.param(pod("mocka", "base", phase="Succeeded"), False, id="completed"),
        pytest.param({"metadata": {"name": "p", "namespace": "x"}}, False, id="no-status"),
    ],
)
def test_pod_readiness(body: dict, ready: bool) -> None:
    assert pod_view(body).ready is ready


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        pytest.param({"a": "1"}, {"a": "1", "b": "2"}, True, id="subset"),
        pytest.param({"a": "1"}, {"a": "2"}, False, id="other-value"),
        pytest.param({"a": "1", "c": "3"}, {"a": "1"}, False, id="missing-key"),
        pytest.param({}, {"a": "1"}, False, id="empty-selects-nothing"),
        pytest.param(None, {"a": "1"}, False, id="no-selector"),
    ],
)
def test_selects(selector, labels, expected) -> None:
    assert selects(selector, labels) is expected


@pytest.mark.parametrize(
    ("pods", "expected"),
    [
        pytest.param(
            [pod("mocka", "base"), pod("mockb", "base"), pod("mockc", "base")],
            {"default/mocka": ["base"], "default/mockb": ["base"], "default/mockc": ["base"]},
            id="state-0",
        ),
        pytest.param(
            [pod("mocka", "base"), pod("mocka", "canary"), pod("mockb", "base"), pod("mockc", "base")],
            {"default/mocka": ["base", "canary"], "default/mockb": ["base"], "default/mockc": ["base"]},
            id="state-1",
        ),
        pytest.param(
            [pod("mocka", "base"), pod("mocka", "canary", ready=False), pod("mockb", "base")],
            {"default/mocka": ["base"], "default/mockb": ["base"], "default/mockc": []},
            id="unready-canary-and-missing-mockc",
        ),
        pytest.param(
            [pod("mocka", "canary", namespace="other"), pod("mocka", "canary", deleting=True)],
            {"default/mocka": [], "default/mockb": [], "default/mockc": []},
            id="other-namespace-and-terminating",
        ),
        pytest.param(
            [pod("mocka", None), pod("mocka", "blue")],
            {"default/mocka": [], "default/mockb": [], "default/mockc": []},
            id="pods-in-no-lane",
        ),
    ],
)
def test_observe_story_pods(story, pods: list[dict], expected: dict) -> None:
    group, lanes = story
    assert observe(group, lanes, SERVICES, pods).ready == expected


def test_a_missing_service_has_no_pods(story) -> None:
    group, lanes = story
    services = {k: v for k, v in SERVICES.items() if k != "default/mockb"}
    observed = observe(group, lanes, services, [pod("mockb", "base")])
    assert observed.ready["default/mockb"] == []


def test_lanes_of_other_groups_are_ignored(story) -> None:
    group, lanes = story
    stranger = lanes[1].model_copy(
        update={"metadata": lanes[1].metadata.model_copy(update={"name": "x", "labels": {"swimlane-group": "other"}})}
    )
    observed = observe(group, [*lanes, stranger], SERVICES, [pod("mocka", "canary")])
    assert observed.ready["default/mocka"] == ["canary"]


def test_observations_drive_membership(story) -> None:
    group, lanes = story
    observed = observe(group, lanes, SERVICES, [pod("mocka", "base"), pod("mockc", "canary")])
    topology = resolve(group, lanes, observed)
    assert topology.members == {
        "default/mocka": ("base",),
        "default/mockb": ("base",),
        "default/mockc": ("base", "canary"),
    }


def test_lane_services_inverts(story) -> None:
    group, lanes = story
    observed = observe(group, lanes, SERVICES, [pod("mocka", "canary"), pod("mockc", "canary"), pod("mockb", "base")])
    assert lane_services(observed) == {"base": ["default/mockb"], "canary": ["default/mocka", "default/mockc"]}


def test_lane_label_keys(story) -> None:
    _, lanes = story
    assert lane_label_keys(lanes) == {"ASM_TRAFFIC_TAG"}


@given(
    st.lists(
        st.builds(
            PodView,
            namespace=st.sampled_from(["default", "other"]),
            name=st.text(min_size=1, max_size=5),
            labels=st.fixed_dictionaries(
                {"app": st.sampled_from(["mocka", "mockb", "mockc", "x"])},
                optional={"ASM_TRAFFIC_TAG": st.sampled_from(["base", "canary", "blue"])},
            ),
            ready=st.booleans(),
        ),
        max_size=12,
    )
)
def test_observe_is_order_independent_and_lists_only_group_lanes(pods: list[PodView]) -> None:
    group, lanes = STORY.groups[0], STORY.lanes
    forward = observe(group, lanes, SERVICES, pods)
    backward = observe(group, list(reversed(lanes)), SERVICES, list(reversed(pods)))
    assert forward == backward
    assert set(forward.ready) == set(SERVICES)
    for lanes_of in forward.ready.values():
        assert set(lanes_of) <= {"base", "canary"}
        assert lanes_of == sorted(lanes_of, key=lambda n: (n != "base", n))
