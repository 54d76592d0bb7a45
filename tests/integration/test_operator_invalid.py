"""Bad input: the CRD schema refuses some at once; the rest surface in status, no route changed."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable

import pytest
from kubernetes import client

from lanes.kube.kinds import SWIMLANE, SWIMLANEGROUP, Kind
from lanes.kube.lanesapi import LanesApi
from lanes.operator.runtime import Options
from lanes_testbed.inprocess import OperatorThread, eventually

from .operator_support import Story, build_story, delete_story, group_exists, live_generated, matches

pytestmark = pytest.mark.integration

DELETE = object()


def edited(body: dict, path: str, value: object) -> dict:
    body = copy.deepcopy(body)
    *parents, last = path.split(".")
    target = body
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is DELETE:
        del target[last]
    else:
        target[int(last) if last.isdigit() else last] = value
    return body


SCHEMA_CASES = [
    ("group", "spec.services", DELETE, "spec.services: Required value"),
    ("group", "spec.services", [], "spec.services: Invalid value"),
    ("group", "spec.flavour", "linkerd", 'spec.flavour: Unsupported value: "linkerd"'),
    ("group", "spec.permissiveModeConfiguration.routeHeader", "X Lane", "spec.permissiveModeConfiguration.routeHeader"),
    ("group", "spec.permissiveModeConfiguration.fallbackTarget", DELETE, "permissive mode (isPermissive: true) needs permissiveModeConfiguration.fallbackTarget"),
    ("group", "spec.isPermissive", False, "strict mode (isPermissive: false or unset) has no fallback lane"),
    ("group", "spec.services.0.name", "Mock_A", "spec.services[0].name"),
    ("group", "spec.ingress.ingressRouting.ingressRoutingStrategy", "random", "spec.ingress.ingressRouting.ingressRoutingStrategy"),
    ("lane", "spec.labelSelector", DELETE, "spec.labelSelector: Required value"),
    ("lane", "spec.labelSelector", {}, "spec.labelSelector: Invalid value"),
    ("lane", "spec.ingressRules.0.match.uri", {"exact": "/a", "prefix": "/b"}, "spec.ingressRules[0].match.uri"),
    ("lane", "spec.ingressWeight", {"weight": 150}, "spec.ingressWeight.weight"),
    ("lane", "spec.ingressRules.0.route.destination.port", 70000, "spec.ingressRules[0].route.destination.port"),
    ("lane", "spec.ingressRules.0.route", DELETE, "spec.ingressRules[0].route: Required value"),
]


@pytest.mark.parametrize(
    ("which", "path", "value", "message"),
    SCHEMA_CASES,
    ids=[f"{w}-{p.rsplit('.', 1)[-1]}-{i}" for i, (w, p, _, _) in enumerate(SCHEMA_CASES)],
)
def test_the_schema_refuses_and_names_the_field(kube_api, namespace, which, path, value, message) -> None:
    story = build_story(namespace)
    kind = SWIMLANEGROUP if which == "group" else SWIMLANE
    body = edited(story.group if which == "group" else story.lanes[0], path, value)
    with pytest.raises(client.exceptions.ApiException) as raised:
        client.CustomObjectsApi(kube_api).create_cluster_custom_object(kind.group, kind.version, kind.plural, body)
    assert raised.value.status == 422
    assert message in json.loads(raised.value.body)["message"]


def test_an_unknown_field_is_refused_under_strict_validation(kube_api, namespace) -> None:
    body = edited(build_story(namespace).group, "spec.fallbackTraget", "base")
    with pytest.raises(client.exceptions.ApiException) as raised:
        client.CustomObjectsApi(kube_api).create_cluster_custom_object(
            "lanes.dev", "v1alpha1", "swimlanegroups", body, field_validation="Strict"
        )
    assert 'unknown field "spec.fallbackTraget"' in json.loads(raised.value.body)["message"]


@pytest.fixture(scope="module")
def operator(control_plane):
    with OperatorThread(Options(kubeconfig=str(control_plane.kubeconfig), metrics_port=None)) as running:
        yield running


Edit = Callable[[client.CustomObjectsApi, Story], None]


def patch(kind: Kind, name: Callable[[Story], str], body: Callable[[Story], dict]) -> Edit:
    def apply(custom: client.CustomObjectsApi, story: Story) -> None:
        custom.patch_cluster_custom_object(kind.group, kind.version, kind.plural, name(story), body(story))

    return apply


def group_patch(body: Callable[[Story], dict]) -> Edit:
    return patch(SWIMLANEGROUP, lambda s: s.name, body)


def lane_patch(lane: str, body: Callable[[Story], dict]) -> Edit:
    return patch(SWIMLANE, lambda s: s.lane(lane), body)


def new_lane(name: str) -> Edit:
    def apply(custom: client.CustomObjectsApi, story: Story) -> None:
        lane = copy.deepcopy(story.lanes[1])
        lane["metadata"] = {"name": f"{name}.{story.suffix}", "labels": {"swimlane-group": story.name}}
        lane["spec"] = {"labelSelector": {"ASM_TRAFFIC_TAG": name}}
        custom.create_cluster_custom_object(SWIMLANE.group, SWIMLANE.version, SWIMLANE.plural, lane)
        story.lanes.append(lane)

    return apply


def weighted(story: Story) -> dict:
    return {"spec": {"ingress": {"ingressRouting": {"ingressRoutingStrategy": "weighted"}}}}


STATUS_CASES: dict[str, tuple[list[Edit], str, str]] = {
    "fallback-not-a-lane": (
        [group_patch(lambda s: {"spec": {"permissiveModeConfiguration": {"fallbackTarget": "gold"}}})],
        "group", "spec.permissiveModeConfiguration.fallbackTarget: lane 'gold' is not a lane of this group",
    ),
    "lanes-select-the-same-pods": (
        [lane_patch("canary", lambda s: {"spec": {"labelSelector": {"ASM_TRAFFIC_TAG": "base"}}})],
        "canary", "spec.labelSelector: selects the same pods as lane",
    ),
    "lane-service-not-in-group": (
        [lane_patch("base", lambda s: {"spec": {"services": [{"name": "mockz", "namespace": s.namespace}]}})],
        "base", "spec.services[0]: " ,
    ),
    "rule-host-not-in-group": (
        [lane_patch("canary", lambda s: {"spec": {"ingressRules": [{"name": "c", "route": {"destination": {"host": "nothere"}}}]}})],
        "canary", "spec.ingressRules[0].route.destination.host: nothere is not a service",
    ),
    # A strict lane that lists no services holds them all (as ASM's console writes it); one
    # that lists some must list every one.
    "strict-mode-lane-misses-services": (
        [lane_patch("canary", lambda s: {"spec": {"services": [{"name": "mocka", "namespace": s.namespace}]}}),
         group_patch(lambda s: {"spec": {"isPermissive": False, "permissiveModeConfiguration": {"fallbackTarget": None}}})],
        "canary", "spec.services: in strict mode",
    ),
    "weights-over-100": (
        [
            lane_patch("base", lambda s: {"spec": {"ingressWeight": {"weight": 60}}}),
            lane_patch("canary", lambda s: {"spec": {"ingressWeight": {"weight": 60}}}),
            group_patch(weighted),
        ],
        "group", "spec.ingress.ingressRouting: lane weights add up to 120",
    ),
    "duplicate-service": (
        [group_patch(lambda s: {"spec": {"services": [
            {"name": "mocka", "namespace": s.namespace}, {"name": "mockb", "namespace": s.namespace},
            {"name": "mockc", "namespace": s.namespace}, {"name": "mocka", "namespace": s.namespace},
        ]}})],
        "group", "is listed 2 times",
    ),
    "weight-host-not-in-group": (
        [
            lane_patch("canary", lambda s: {"spec": {"ingressWeight": {"weight": 10, "destination": {"host": "nothere"}}}}),
            group_patch(weighted),
        ],
        "canary", "spec.ingressWeight.destination.host: nothere is not a service",
    ),
    "lane-name-not-a-subset-name": (
        [new_lane("gold")],
        "gold", "metadata.name: a lane's name is its subset name and must be a DNS label",
    ),
}


def ready_condition(custom: client.CustomObjectsApi, kind: Kind, name: str) -> dict:
    body = custom.get_cluster_custom_object(kind.group, kind.version, kind.plural, name)
    found = {c["type"]: c for c in (body.get("status") or {}).get("conditions") or []}
    return {**found.get("Ready", {}), "degraded": found.get("Degraded", {}), "generation": body["metadata"]["generation"]}


@pytest.mark.parametrize("case", list(STATUS_CASES))
def test_invalid_edits_surface_in_status_and_keep_routes(operator, stories, kube_api, case: str) -> None:
    edits, where, message = STATUS_CASES[case]
    story = stories.create(state="1")
    expected = story.expected("1")
    eventually(lambda: matches(live_generated(kube_api, story.name), expected), "routes in force")
    operator.settle()
    versions = sorted((o["metadata"]["name"], o["metadata"]["resourceVersion"]) for o in live_generated(kube_api, story.name))
    custom = client.CustomObjectsApi(kube_api)
    for edit in edits:
        edit(custom, story)

    def invalid() -> dict | None:
        ready = ready_condition(custom, SWIMLANEGROUP, story.name)
        return ready if ready.get("reason") == "InvalidSpec" and ready.get("observedGeneration") == ready["generation"] else None

    ready = eventually(invalid, f"{case} in the group's status")
    assert ready["status"] == "False" and message in ready["message"]
    assert ready["degraded"]["status"] == "True" and ready["degraded"]["reason"] == "InvalidSpec"
    if where != "group":
        lane = next(l["metadata"]["name"] for l in story.lanes if l["metadata"]["name"].startswith(where))
        lane_ready = eventually(
            lambda: (lambda r: r if r.get("reason") == "InvalidSpec" else None)(ready_condition(custom, SWIMLANE, lane)),
            f"{case} in lane {lane}'s status",
        )
        assert message in lane_ready["message"] and f"SwimLane/{lane}" in lane_ready["message"]
    operator.settle()
    after = sorted((o["metadata"]["name"], o["metadata"]["resourceVersion"]) for o in live_generated(kube_api, story.name))
    assert after == versions, "no generated object may change while the spec is invalid"
    warnings = [e for e in LanesApi(kube_api).events_of(story.name, "SwimLaneGroup") if e["type"] == "Warning"]
    assert any(message in e["message"] for e in warnings)


def test_fixing_the_spec_makes_the_group_ready_again(operator, stories, kube_api) -> None:
    story = stories.create(state="1")
    custom = client.CustomObjectsApi(kube_api)
    eventually(lambda: ready_condition(custom, SWIMLANEGROUP, story.name).get("status") == "True", "Ready")
    group_patch(lambda s: {"spec": {"permissiveModeConfiguration": {"fallbackTarget": "gold"}}})(custom, story)
    eventually(lambda: ready_condition(custom, SWIMLANEGROUP, story.name).get("reason") == "InvalidSpec", "InvalidSpec")
    broken_since = ready_condition(custom, SWIMLANEGROUP, story.name)["lastTransitionTime"]
    group_patch(lambda s: {"spec": {"permissiveModeConfiguration": {"fallbackTarget": s.lane("base")}}})(custom, story)
    ready = eventually(
        lambda: (lambda r: r if r.get("status") == "True" else None)(ready_condition(custom, SWIMLANEGROUP, story.name)),
        "Ready again",
    )
    assert ready["reason"] == "RoutesInForce" and ready["degraded"]["status"] == "False"
    assert ready["lastTransitionTime"] >= broken_since
    assert matches(live_generated(kube_api, story.name), story.expected("1"))


def test_a_group_listing_services_another_group_holds_writes_nothing_until_it_lets_go(
    operator, stories, kube_api, namespace
) -> None:
    first = stories.create(state="1")
    eventually(lambda: matches(live_generated(kube_api, first.name), first.expected("1")), "routes in force")
    operator.settle()
    versions = sorted((o["metadata"]["name"], o["metadata"]["resourceVersion"]) for o in live_generated(kube_api, first.name))
    rival = build_story(namespace, suffix=f"rival-{first.suffix}")
    custom = client.CustomObjectsApi(kube_api)
    for lane in rival.lanes:
        custom.create_cluster_custom_object(SWIMLANE.group, SWIMLANE.version, SWIMLANE.plural, lane)
    custom.create_cluster_custom_object(SWIMLANEGROUP.group, SWIMLANEGROUP.version, SWIMLANEGROUP.plural, rival.group)
    try:
        ready = eventually(
            lambda: (lambda r: r if r.get("reason") == "Conflict" else None)(ready_condition(custom, SWIMLANEGROUP, rival.name)),
            "the rival group's conflict in status",
        )
        assert ready["status"] == "False" and ready["degraded"]["reason"] == "Conflict"
        assert f"spec.services[1]: service {namespace}/mocka is routed by SwimLaneGroup {first.name}" in ready["message"]
        lane = eventually(
            lambda: (lambda r: r if r.get("reason") == "Conflict" else None)(ready_condition(custom, SWIMLANE, rival.lane("canary"))),
            "the conflict in the rival's lane status",
        )
        assert lane["status"] == "False" and rival.name in lane["message"]
        eventually(
            lambda: any(
                e["type"] == "Warning" and e["reason"] == "Conflict"
                for e in LanesApi(kube_api).events_of(rival.name, "SwimLaneGroup")
            ),
            "a Conflict warning on the rival group",
        )
        operator.settle()
        writes = operator.writes
        operator.settle(quiet=2.0)
        assert operator.writes == writes, "two groups on one service do not fight over its routes"
        assert live_generated(kube_api, rival.name) == []
        after = sorted((o["metadata"]["name"], o["metadata"]["resourceVersion"]) for o in live_generated(kube_api, first.name))
        assert after == versions, "the group holding the services keeps its routes untouched"

        delete_story(kube_api, first)
        eventually(lambda: not group_exists(kube_api, first.name), "the first group to go")
        eventually(lambda: matches(live_generated(kube_api, rival.name), rival.expected("1")), "the rival's routes")
        ready = eventually(
            lambda: (lambda r: r if r.get("status") == "True" else None)(ready_condition(custom, SWIMLANEGROUP, rival.name)),
            "the rival group Ready",
        )
        assert ready["reason"] == "RoutesInForce"
    finally:
        delete_story(kube_api, rival)
        eventually(lambda: not group_exists(kube_api, rival.name), "the rival group to go")
