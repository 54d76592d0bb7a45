"""ASM's trace-ID mode on plain Istio: when a group gets WasmPlugins, and what they say."""

from __future__ import annotations

import copy

import pytest

from lanes.api.swimlane import SwimLane
from lanes.api.swimlanegroup import SwimLaneGroup
from lanes.api.topology import resolve
from lanes.render import TraceAffinityModule, render_group, trace_id_mode
from tests.istio_schema import problems

GROUP = {
    "metadata": {"name": "shop"},
    "spec": {
        "ingress": {"gateway": {"name": "gw", "namespace": "edge"}},
        "isPermissive": True,
        "permissiveModeConfiguration": {
            "fallbackTarget": "base", "routeHeader": "x-lane", "traceHeader": "x-request-id"
        },
        "services": [{"name": "front", "namespace": "web"}, {"name": "cart", "namespace": "shop"}],
    },
}
MODULE = TraceAffinityModule(url="https://m.example/ta.wasm", sha256="cd" * 32,
                             max_entries=500, max_age_seconds=5)


def group(**changes) -> SwimLaneGroup:
    doc = copy.deepcopy(GROUP)
    config = doc["spec"]["permissiveModeConfiguration"]
    for key, value in changes.items():
        target = config if key in config or key == "traceHeader" else doc["spec"]
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    return SwimLaneGroup.model_validate(doc)


def lane(name: str) -> SwimLane:
    return SwimLane.model_validate({
        "metadata": {"name": name, "labels": {"swimlane-group": "shop"}},
        "spec": {"labelSelector": {"lane": name},
                 "services": [{"name": "front", "namespace": "web"}]},
    })


LANES = [lane("base"), lane("canary")]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, True),
        ({"traceHeader": None}, False),
        ({"traceHeader": "x-lane"}, False),
        ({"propagation": "baggage"}, False),
    ],
    ids=["trace-header-of-its-own", "no-trace-header", "trace-is-route-header", "baggage"],
)
def test_trace_id_mode_is_chosen_the_asm_way(changes: dict, expected: bool) -> None:
    assert trace_id_mode(resolve(group(**changes), LANES)) is expected


def test_strict_mode_is_never_trace_id_mode() -> None:
    doc = copy.deepcopy(GROUP)
    doc["spec"]["isPermissive"] = False
    del doc["spec"]["permissiveModeConfiguration"]["fallbackTarget"]
    strict_lanes = [
        SwimLane.model_validate({
            "metadata": {"name": n, "labels": {"swimlane-group": "shop"}},
            "spec": {"labelSelector": {"lane": n}, "services": [
                {"name": "front", "namespace": "web"}, {"name": "cart", "namespace": "shop"}]},
        })
        for n in ("s1", "s2")
    ]
    assert not trace_id_mode(resolve(SwimLaneGroup.model_validate(doc), strict_lanes))


def plugins(objects: list[dict]) -> list[dict]:
    return [o for o in objects if o["kind"] == "WasmPlugin"]


def test_one_plugin_per_lane_and_namespace_and_one_for_the_gateway() -> None:
    found = plugins(render_group(group(), LANES, trace_affinity=MODULE))
    assert [(p["metadata"]["namespace"], p["metadata"]["name"],
             p["spec"]["selector"]["matchLabels"]) for p in found] == [
        ("edge", "lanes-shop-trace-gateway", {"istio": "ingressgateway"}),
        ("shop", "lanes-shop-trace-base", {"lane": "base"}),
        ("shop", "lanes-shop-trace-canary", {"lane": "canary"}),
        ("web", "lanes-shop-trace-base", {"lane": "base"}),
        ("web", "lanes-shop-trace-canary", {"lane": "canary"}),
    ]
    for plugin in found:
        assert plugin["spec"]["pluginConfig"] == {
            "routeHeader": "x-lane", "traceHeader": "x-request-id",
            "maxEntries": 500, "maxAgeSeconds": 5,
        }
        assert plugin["spec"]["url"] == MODULE.url and plugin["spec"]["sha256"] == MODULE.sha256
        assert plugin["spec"]["failStrategy"] == "FAIL_OPEN"
        assert plugin["metadata"]["labels"]["lanes.dev/group"] == "shop"
        assert problems(plugin) == []


def test_without_a_digest_the_plugin_names_none() -> None:
    module = TraceAffinityModule(url="https://m.example/ta.wasm")
    assert all("sha256" not in p["spec"]
               for p in plugins(render_group(group(), LANES, trace_affinity=module)))


@pytest.mark.parametrize("flavour", ["istio", "asm"])
def test_no_module_given_or_the_asm_flavour_means_no_plugin(flavour: str) -> None:
    assert plugins(render_group(group(), LANES, flavour=flavour)) == []
    assert plugins(render_group(group(), LANES, flavour="asm", trace_affinity=MODULE)) == []


def test_a_group_outside_trace_id_mode_gets_no_plugin() -> None:
    assert plugins(render_group(group(traceHeader=None), LANES, trace_affinity=MODULE)) == []
