"""One bad lane does not freeze a group: on the real API server, a SwimLane made invalid by its
own edit is set aside (its own Ready=False naming the field, its last valid routes kept, or
none for a new lane), the group's condition lists it, and the other lanes' routes keep
following the pods."""

from __future__ import annotations

import pytest
from kubernetes import client

from lanes.kube.kinds import SWIMLANE, SWIMLANEGROUP, Kind
from lanes.kube.lanesapi import LanesApi
from lanes.operator.runtime import Options
from lanes_testbed.inprocess import OperatorThread, eventually

from .operator_support import enter_state, live_generated, matches

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def operator(control_plane):
    with OperatorThread(Options(kubeconfig=str(control_plane.kubeconfig), metrics_port=None)) as running:
        yield running


def read(api: client.ApiClient, kind: Kind, name: str) -> dict:
    return client.CustomObjectsApi(api).get_cluster_custom_object(kind.group, kind.version, kind.plural, name)


def condition(api: client.ApiClient, kind: Kind, name: str, type_: str = "Ready") -> dict:
    found = {c["type"]: c for c in (read(api, kind, name).get("status") or {}).get("conditions") or []}
    return found.get(type_, {})


def in_force(api: client.ApiClient, story) -> bool:
    """The group's routes and every lane's spec recorded as in force."""
    group = read(api, SWIMLANEGROUP, story.name)
    lanes = [read(api, SWIMLANE, lane["metadata"]["name"]) for lane in story.lanes]
    return ((group.get("status") or {}).get("generationInForce") == group["metadata"]["generation"]
            and all((lane.get("status") or {}).get("specInForce") for lane in lanes))


def set_aside(api: client.ApiClient, lane: str) -> dict | None:
    ready = condition(api, SWIMLANE, lane)
    return ready if ready.get("reason") == "InvalidSpec" and "set aside" in ready.get("message", "") else None


def test_an_edited_lane_keeps_its_last_valid_routes_while_the_others_converge(
    operator, stories, kube_api
) -> None:
    story = stories.create(state="1")
    eventually(lambda: matches(live_generated(kube_api, story.name), story.expected("1")), "routes in force")
    eventually(lambda: in_force(kube_api, story), "the specs in force recorded")
    canary = story.lane("canary")
    client.CustomObjectsApi(kube_api).patch_cluster_custom_object(
        SWIMLANE.group, SWIMLANE.version, SWIMLANE.plural, canary,
        {"spec": {"labelSelector": {"ASM_TRAFFIC_TAG": "base"}}})

    ready = eventually(lambda: set_aside(kube_api, canary), "the lane set aside")
    assert ready["status"] == "False"
    assert f"SwimLane/{canary}: spec.labelSelector: selects the same pods as lane" in ready["message"]
    assert "its last valid spec stays in force" in ready["message"]
    group = eventually(lambda: (lambda c: c if "lanes set aside" in c.get("message", "") else None)(
        condition(kube_api, SWIMLANEGROUP, story.name)), "the group listing the lane set aside")
    assert (group["status"], group["reason"]) == ("False", "InvalidSpec")
    assert f"SwimLane/{canary}" in group["message"]
    assert matches(live_generated(kube_api, story.name), story.expected("1"))
    eventually(lambda: any("lanes set aside" in e["message"] and e["type"] == "Warning"
                           for e in LanesApi(kube_api).events_of(story.name, "SwimLaneGroup")),
               "a Warning event on the group")

    enter_state(kube_api, story, "2")
    eventually(lambda: matches(live_generated(kube_api, story.name), story.expected("2")),
               "the group's routes following the pods while the lane is set aside")
    assert set_aside(kube_api, canary) is not None


def test_a_new_lane_duplicating_base_is_not_rendered_and_the_group_goes_on(
    operator, stories, kube_api
) -> None:
    story = stories.create(state="1")
    eventually(lambda: matches(live_generated(kube_api, story.name), story.expected("1")), "routes in force")
    eventually(lambda: in_force(kube_api, story), "the specs in force recorded")
    custom = client.CustomObjectsApi(kube_api)
    rogue = f"rogue-{story.suffix}"
    custom.create_cluster_custom_object(SWIMLANE.group, SWIMLANE.version, SWIMLANE.plural, {
        "apiVersion": f"{SWIMLANE.group}/{SWIMLANE.version}", "kind": "SwimLane",
        "metadata": {"name": rogue, "labels": {"swimlane-group": story.name}},
        "spec": {"labelSelector": {"ASM_TRAFFIC_TAG": "base"}}})
    try:
        ready = eventually(lambda: set_aside(kube_api, rogue), "the new lane set aside")
        assert "spec.labelSelector: selects the same pods as lane" in ready["message"]
        assert "its routes are not rendered" in ready["message"]
        assert f"SwimLane/{rogue}" in condition(kube_api, SWIMLANEGROUP, story.name)["message"]
        assert condition(kube_api, SWIMLANE, story.lane("canary"))["status"] == "True"
        assert matches(live_generated(kube_api, story.name), story.expected("1"))

        enter_state(kube_api, story, "2")
        eventually(lambda: matches(live_generated(kube_api, story.name), story.expected("2")),
                   "the group's routes following the pods beside the lane set aside")
    finally:
        custom.delete_cluster_custom_object(SWIMLANE.group, SWIMLANE.version, SWIMLANE.plural, rogue)
    eventually(lambda: condition(kube_api, SWIMLANEGROUP, story.name).get("status") == "True",
               "the group Ready again once the bad lane is gone")
