"""Sticky lane entry: the LaneRelease field, the gateway's WasmPlugin that decides per user, the
gateway route that stops splitting, and the weight read back from the plugin."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from lanes.api.lanerelease import LaneReleaseSpec
from lanes.api.sessionaffinity import SessionAffinity
from lanes.importers import load
from lanes.operator.plan import Inputs, plan_group
from lanes.render import TraceAffinityModule, sticky
from lanes.render.observe import PodView
from lanes.render.steps import entered_weight
from lanes.rollout.canary import CANARY_LABEL

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "mock-chain" / "lanes.yaml"
SERVICES = ("mocka", "mockb", "mockc")
MODULE = TraceAffinityModule(url="http://modules.example/traceaffinity.wasm", sha256="ab" * 32)
HEADER = "x-asm-prefer-tag"


def _release(weight: int, affinity: dict | None, phase: str = "Progressing") -> dict:
    spec: dict = {"swimLaneRef": {"name": "canary"}, "steps": [{"weight": 10}, {"weight": 50}]}
    if affinity is not None:
        spec["sessionAffinity"] = affinity
    return {
        "apiVersion": "lanes.dev/v1alpha1", "kind": "LaneRelease",
        "metadata": {"name": "seed", "namespace": "default"},
        "spec": spec,
        "status": {"phase": phase, "weight": weight,
                   "rollouts": [{"name": f"rollouts-{s}"} for s in SERVICES]},
    }


def _desired(releases: list[dict], module: TraceAffinityModule | None = MODULE,
             lane_rules: bool = True) -> list[dict]:
    bundle = load(SAMPLE)
    lanes = [lane.to_wire() for lane in bundle.lanes]
    if not lane_rules:
        for lane in lanes:
            if lane["metadata"]["name"] == "canary":
                lane["spec"].pop("ingressRules", None)
    pods = [PodView("default", f"{s}-{lane}",
                    {"app": s, "ASM_TRAFFIC_TAG": lane,
                     **({CANARY_LABEL: f"{s}-v1"} if lane == "canary" else {})}, True)
            for s in SERVICES for lane in ("base", "canary")]
    plan = plan_group(Inputs(bundle.groups[0].to_wire(), lanes,
                             {f"default/{s}": {"app": s} for s in SERVICES}, pods,
                             releases=releases, trace_affinity=module))
    assert plan.valid, plan.errors
    return plan.desired


def _gateway(desired: list[dict]) -> dict:
    return next(o for o in desired if o["kind"] == "VirtualService"
                and o["metadata"]["namespace"] == "istio-system")


def _entry_plugin(desired: list[dict]) -> dict | None:
    return next((o for o in desired if o["kind"] == "WasmPlugin"
                 and o["metadata"]["labels"]["lanes.dev/extension"] == "sticky-entry"), None)


@pytest.mark.parametrize("affinity, config", [
    ({"headerName": "x-user-id"}, {"userHeader": "x-user-id", "withoutUser": "split"}),
    ({"cookieName": "session", "withoutKey": "Base"},
     {"userCookie": "session", "withoutUser": "base"}),
    ({"headerName": "x-user-id", "cookieName": "SID"},
     {"userHeader": "x-user-id", "userCookie": "SID", "withoutUser": "split"}),
], ids=["header", "cookie-base", "header-then-cookie"])
def test_the_gateway_module_gets_the_lane_weight_and_key(affinity: dict, config: dict) -> None:
    desired = _desired([_release(25, affinity)])
    plugin = _entry_plugin(desired)
    assert plugin is not None
    assert plugin["metadata"] == {
        "name": "lanes-rollout-entry", "namespace": "istio-system",
        "labels": {"app.kubernetes.io/managed-by": "lanes", "lanes.dev/group": "rollout",
                   "lanes.dev/extension": "sticky-entry"}}
    assert plugin["spec"]["selector"] == {"matchLabels": {"istio": "ingressgateway"}}
    assert (plugin["spec"]["url"], plugin["spec"]["sha256"]) == (MODULE.url, MODULE.sha256)
    assert plugin["spec"]["pluginConfig"] == {
        "routeHeader": HEADER, "entryLane": "canary", "entryWeight": 25, **config}
    assert sticky.enters(plugin, "canary") and not sticky.enters(plugin, "blue")
    assert sticky.plugin_weight(plugin, "canary") == 25
    assert sticky.plugin_weight(plugin, "blue") == 0


def _routes(gateway: dict) -> dict[str, dict]:
    return {r["name"]: r for r in gateway["spec"]["http"]}


def test_under_sticky_entry_the_gateway_route_splits_nothing() -> None:
    gateway = _gateway(_desired([_release(25, {"headerName": "x-user-id"})]))
    assert entered_weight(gateway, HEADER, "canary") == 0
    routes = _routes(gateway)
    assert [d["destination"]["subset"] for d in routes["untagged"]["route"]] == ["base"]
    # The canary lane's own header rule routes what the module tags: no route of its own.
    assert "canary/sticky" not in routes
    assert routes["canary"]["match"] == [
        {"headers": {HEADER: {"exact": "canary"}}, "uri": {"exact": "/mock"}}]


def test_a_lane_without_a_header_rule_gets_a_route_for_what_the_module_tags() -> None:
    gateway = _gateway(_desired([_release(25, {"headerName": "x-user-id"})], lane_rules=False))
    names = [r["name"] for r in gateway["spec"]["http"]]
    assert names.index("canary/sticky") == names.index("untagged") - 1
    route = _routes(gateway)["canary/sticky"]
    assert route["match"] == [{"uri": {"exact": "/mock"}, "headers": {HEADER: {"exact": "canary"}}}]
    assert route["route"] == [{
        "destination": {"host": "mocka.default.svc.cluster.local", "subset": "canary"},
        "headers": {"request": {"set": {HEADER: "canary"}}}}]


@pytest.mark.parametrize("weight", [10, 50, 100])
def test_each_step_rewrites_only_the_plugin_weight(weight: int) -> None:
    desired = _desired([_release(weight, {"headerName": "x-user-id"})])
    plugin = _entry_plugin(desired)
    assert plugin is not None and sticky.plugin_weight(plugin, "canary") == weight
    first = _desired([_release(10, {"headerName": "x-user-id"})])
    assert _gateway(desired) == _gateway(first)


def test_without_a_module_the_entry_stays_per_request() -> None:
    desired = _desired([_release(25, {"headerName": "x-user-id"})], module=None)
    assert _entry_plugin(desired) is None
    assert entered_weight(_gateway(desired), HEADER, "canary") == 25


@pytest.mark.parametrize("release", [
    _release(0, {"headerName": "x-user-id"}, phase="RollingBack"),
    _release(0, {"headerName": "x-user-id"}, phase="Succeeded"),
    _release(25, None),
], ids=["rolling-back", "ended", "per-request"])
def test_no_entry_plugin_when_no_entry_is_decided_per_user(release: dict) -> None:
    desired = _desired([release], lane_rules=False)
    assert _entry_plugin(desired) is None
    assert "canary/sticky" not in _routes(_gateway(desired))


@pytest.mark.parametrize("given, error", [
    ({}, "give headerName or cookieName"),
    ({"headerName": "X-User"}, "not a valid HTTP header name"),
    ({"cookieName": "a b"}, "not a valid cookie name"),
    ({"headerName": "x-user-id", "withoutKey": "Random"}, "withoutKey"),
], ids=["no-key", "header-case", "cookie-space", "without-key"])
def test_session_affinity_refused_naming_the_field(given: dict, error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        LaneReleaseSpec.model_validate({"swimLaneRef": {"name": "canary"}, "stepWeight": 10,
                                        "sessionAffinity": given})


def test_session_affinity_defaults_to_per_request_for_keyless_requests() -> None:
    spec = LaneReleaseSpec.model_validate({"swimLaneRef": {"name": "canary"}, "stepWeight": 10,
                                           "sessionAffinity": {"cookieName": "SESSION_ID"}})
    assert spec.session_affinity == SessionAffinity(cookie_name="SESSION_ID")
    assert spec.session_affinity.without_key == "PerRequest"
