"""ASM's `fallback` on a user's gateway route, honoured on plain Istio by `fallbackSubsets`.

The conversion drops a `fallback` whose target is the fallback lane's subset of the same
service and turns the group's `fallbackSubsets` on; any other target is only noted. The
renderers then give every lane a subset of every service, a lane without pods of it selecting
the fallback's, and `kubectl lane status` still says which lane's pods serve.
"""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lanes.api.observations import Observations
from lanes.api.topology import resolve
from lanes.cli.status import group_view
from lanes.importers import conversion_notes, convert, parse_documents
from lanes.api.load import Document
from lanes.render import render_group, render_topology
from lanes.render.names import fqdn
from tests.asm_scenarios import documents

from .test_render_properties import SETTINGS, Scenario, mesh_objects, scenarios

SCENARIO = "custom-virtualservice"
READY = {"default/mocka": ["s1", "s2"], "default/mockb": ["s1", "s3"], "default/mockc": ["s1", "s2"]}


def custom_route(docs: list[dict]) -> dict:
    return next(d for d in docs if d["kind"] == "VirtualService")


def converted(docs: list[dict]) -> list[dict]:
    return [body for doc in docs for body in convert(doc, docs)]


def subsets(objects: list[dict]) -> dict[str, dict[str, str]]:
    """Per service, each subset's name and the lane label value it selects."""
    return {
        o["spec"]["host"].split(".")[0]: {s["name"]: s["labels"]["ASM_TRAFFIC_TAG"] for s in o["spec"]["subsets"]}
        for o in objects if o["kind"] == "DestinationRule"
    }


def rendered(docs: list[dict], ready: dict, flavour: str = "istio") -> list[dict]:
    bundle = parse_documents([Document(f"#{i}", d) for i, d in enumerate(docs)])
    return render_group(bundle.groups[0], bundle.lanes, Observations(ready=ready), flavour)


def test_the_guides_fallback_turns_the_groups_fallback_subsets_on_and_is_dropped() -> None:
    docs = converted(documents(SCENARIO))
    group = next(d for d in docs if d["kind"] == "SwimLaneGroup")
    assert group["spec"]["fallbackSubsets"] is True
    route = custom_route(docs)
    assert not any("fallback" in d for http in route["spec"]["http"] for d in http["route"])
    assert route["spec"]["http"][0]["route"][1]["destination"] == {
        "host": "mocka.default.svc.cluster.local", "subset": "s3"}
    [note] = conversion_notes(custom_route(documents(SCENARIO)), documents(SCENARIO))
    assert note.startswith("spec.http[0].route[1].fallback: ") and "fallbackSubsets" in note


@pytest.mark.parametrize(
    "target",
    [
        pytest.param({"host": "mockb.default.svc.cluster.local", "subset": "s1"}, id="another-service"),
        pytest.param({"host": "mocka.default.svc.cluster.local", "subset": "s2"}, id="not-the-fallback-lane"),
        pytest.param({"host": "mocka.default.svc.cluster.local", "subset": "s1", "port": {"number": 9}},
                     id="another-port"),
    ],
)
def test_a_fallback_the_subsets_cannot_honour_is_kept_and_noted(target: dict) -> None:
    docs = documents(SCENARIO)
    custom_route(docs)["spec"]["http"][0]["route"][1]["fallback"] = {"target": target}
    out = converted(docs)
    assert "fallbackSubsets" not in next(d for d in out if d["kind"] == "SwimLaneGroup")["spec"]
    assert custom_route(out)["spec"]["http"][0]["route"][1]["fallback"] == {"target": target}
    [note] = conversion_notes(custom_route(docs), docs)
    assert "ingressRules" in note


def test_a_lanes_group_among_the_inputs_is_told_to_turn_fallback_subsets_on() -> None:
    docs = converted(documents(SCENARIO))
    group = next(d for d in docs if d["kind"] == "SwimLaneGroup")
    del group["spec"]["fallbackSubsets"]
    as_written = [*[d for d in docs if d["kind"] != "VirtualService"], custom_route(documents(SCENARIO))]
    [note] = conversion_notes(custom_route(as_written), as_written)
    assert "set spec.fallbackSubsets: true on SwimLaneGroup test" in note


@pytest.mark.parametrize("flavour", ["istio", "asm"])
def test_every_lane_gets_a_subset_selecting_its_own_pods_or_the_fallbacks(flavour: str) -> None:
    docs = converted(documents(SCENARIO))
    assert subsets(rendered(docs, READY, flavour)) == {
        "mocka": {"s1": "v1", "s2": "v2", "s3": "v1"},
        "mockb": {"s1": "v1", "s2": "v1", "s3": "v3"},
        "mockc": {"s1": "v1", "s2": "v2", "s3": "v1"},
    }
    # s3's mocka pods become ready: its subset selects them, the route unchanged.
    ready = {**READY, "default/mocka": ["s1", "s2", "s3"]}
    assert subsets(rendered(docs, ready, flavour))["mocka"] == {"s1": "v1", "s2": "v2", "s3": "v3"}


def test_without_fallback_subsets_only_the_serving_lanes_have_subsets() -> None:
    docs = converted(documents(SCENARIO))
    next(d for d in docs if d["kind"] == "SwimLaneGroup")["spec"]["fallbackSubsets"] = False
    assert subsets(rendered(docs, READY))["mocka"] == {"s1": "v1", "s2": "v2"}


def test_lanes_own_routes_never_use_a_fallback_subset() -> None:
    docs = converted(documents(SCENARIO))
    without = copy.deepcopy(docs)
    next(d for d in without if d["kind"] == "SwimLaneGroup")["spec"]["fallbackSubsets"] = False

    def routes(objects: list[dict]) -> list[dict]:
        return [o for o in objects if o["kind"] == "VirtualService"]

    assert routes(rendered(docs, READY)) == routes(rendered(without, READY))


def test_status_says_a_fallback_subset_is_served_by_the_fallback() -> None:
    docs = converted(documents(SCENARIO))
    group = next(d for d in docs if d["kind"] == "SwimLaneGroup")
    lanes = [d for d in docs if d["kind"] == "SwimLane"]
    view = group_view(group, lanes, rendered(docs, READY))
    served = {lane.name: {r.service: r.served_by for r in lane.services} for lane in view.lanes}
    assert served["s3"] == {"default/mocka": "s1", "default/mockb": "s3", "default/mockc": "s1"}
    assert served["s2"] == {"default/mocka": "s2", "default/mockb": "s1", "default/mockc": "s2"}


@SETTINGS
@given(scenarios(), st.sampled_from(["istio", "asm"]))
def test_with_fallback_subsets_every_lane_has_a_subset_of_its_own_pods_or_the_fallbacks(
    scenario: Scenario, flavour: str
) -> None:
    spec = scenario.group.spec.model_copy(update={"fallback_subsets": True})
    topology = resolve(scenario.group.model_copy(update={"spec": spec}), scenario.lanes, scenario.observed)
    selectors = {lane.name: dict(lane.spec.label_selector) for lane in topology.lanes}
    _, rules = mesh_objects(render_topology(topology, flavour))
    for key, serving in topology.members.items():
        [rule] = rules[fqdn(key)]
        assert [s["name"] for s in rule["spec"]["subsets"]] == [lane.name for lane in topology.lanes]
        for subset in rule["spec"]["subsets"]:
            lane = subset["name"]
            assert subset["labels"] == selectors[lane if lane in serving else topology.fallback]
