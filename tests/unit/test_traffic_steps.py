"""A release's traffic step: a share of a service's untagged requests (and those its matches
select) reach the canary subset; requests that carry a lane keep it; nothing else changes.

Rendered from the reference inputs, translated for Envoy and walked with `pick`.
"""

from __future__ import annotations

import pytest

from lanes.api.observations import Observations, TrafficStep
from lanes_testbed.mesh import EnvoyConfig, translate
from lanes.render import render_group

from .mesh_helpers import destination, pick
from .test_mesh_story import CHAIN, endpoints_for

READY = {f"default/{s}": ["base", "canary"] for s in CHAIN}


def cluster_of(service: str, subset: str) -> str:
    return f"outbound|8000|{subset}|{service}.default.svc.cluster.local"


def config(inputs: tuple, traffic: dict[str, TrafficStep], flavour: str = "istio",
           ready: dict | None = None) -> EnvoyConfig:
    group, lanes, plain = inputs
    observed = Observations(ready=ready or READY, traffic=traffic)
    return translate([*plain, *render_group(group, lanes, observed, flavour)],
                     endpoints_for(observed)[0])


def at_mockb(cfg: EnvoyConfig, headers: dict[str, str]) -> object:
    return destination(pick(cfg, "mesh", "mockb:8000", "/", headers))


@pytest.fixture(scope="module")
def inputs() -> tuple:
    from .test_mesh_story import inputs as build
    return build.__wrapped__()


STEP = {"default/mockb": TrafficStep(lane="canary", weight=30,
                                     matches=[{"headers": {"x-canary": {"exact": "1"}}}])}


@pytest.mark.parametrize("flavour", ["istio", "asm"])
def test_untagged_requests_split_by_the_step_weight(inputs: tuple, flavour: str) -> None:
    cfg = config(inputs, STEP, flavour)
    assert at_mockb(cfg, {}) == {cluster_of("mockb", "base"): 70, cluster_of("mockb", "canary"): 30}


@pytest.mark.parametrize("flavour", ["istio", "asm"])
def test_requests_the_steps_matches_select_go_to_the_canary(inputs: tuple, flavour: str) -> None:
    cfg = config(inputs, STEP, flavour)
    assert at_mockb(cfg, {"x-canary": "1"}) == cluster_of("mockb", "canary")
    assert at_mockb(cfg, {"x-canary": "2"}) == {cluster_of("mockb", "base"): 70,
                                                cluster_of("mockb", "canary"): 30}


def test_tagged_requests_keep_their_lane_whatever_the_step(inputs: tuple) -> None:
    cfg = config(inputs, STEP)
    for headers in ({"x-asm-prefer-tag": "base"}, {"x-asm-prefer-tag": "base", "x-canary": "1"}):
        assert at_mockb(cfg, headers) == cluster_of("mockb", "base"), headers
    assert at_mockb(cfg, {"x-asm-prefer-tag": "canary"}) == cluster_of("mockb", "canary")
    assert at_mockb(cfg, {"x-asm-prefer-tag": "dev"}) == cluster_of("mockb", "base")


def test_other_services_are_untouched(inputs: tuple) -> None:
    cfg = config(inputs, STEP)
    plain = config(inputs, {})
    for service in ("mocka", "mockc"):
        for headers in ({}, {"x-canary": "1"}, {"x-asm-prefer-tag": "canary"}):
            assert destination(pick(cfg, "mesh", f"{service}:8000", "/", headers)) == destination(
                pick(plain, "mesh", f"{service}:8000", "/", headers))


def test_without_a_step_untagged_requests_never_reach_a_canary_pod(inputs: tuple) -> None:
    cfg = config(inputs, {})
    for service in CHAIN:
        assert destination(pick(cfg, "mesh", f"{service}:8000", "/", {})) == cluster_of(service, "base")
    assert destination(pick(cfg, "gateway", "x", "/mock", {})) == cluster_of("mocka", "base")


def test_a_step_of_the_entry_service_splits_untagged_requests_at_the_gateway(inputs: tuple) -> None:
    cfg = config(inputs, {"default/mocka": TrafficStep(lane="canary", weight=20)})
    route = pick(cfg, "gateway", "x", "/mock", {})
    assert destination(route) == {cluster_of("mocka", "base"): 80, cluster_of("mocka", "canary"): 20}
    assert "request_headers_to_add" not in route, "untagged requests stay untagged"
    tagged = pick(cfg, "gateway", "x", "/mock", {"x-asm-prefer-tag": "base"})
    assert destination(tagged) == cluster_of("mocka", "base")


def test_asm_output_gets_no_gateway_route_for_untagged_requests(inputs: tuple) -> None:
    cfg = config(inputs, {"default/mocka": TrafficStep(lane="canary", weight=20)}, "asm")
    assert pick(cfg, "gateway", "x", "/mock", {}) is None


def test_a_step_whose_lane_has_no_ready_pods_changes_nothing(inputs: tuple) -> None:
    ready = {**READY, "default/mockb": ["base"]}
    assert config(inputs, STEP, ready=ready) == config(inputs, {}, ready=ready)


def test_weight_0_without_matches_changes_nothing(inputs: tuple) -> None:
    step = {"default/mockb": TrafficStep(lane="canary", weight=0)}
    assert config(inputs, step) == config(inputs, {})


def test_a_step_naming_the_fallback_lane_is_ignored(inputs: tuple) -> None:
    step = {"default/mockb": TrafficStep(lane="base", weight=50)}
    assert config(inputs, step) == config(inputs, {})
