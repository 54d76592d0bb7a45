"""A service's own traffic settings on every route and subset lanes writes for it, in both
flavours, and nowhere else."""

from __future__ import annotations

import pytest

from lanes.api.observations import Observations, TrafficStep
from lanes.importers import load
from lanes.render import render_group, render_service
from lanes.api.topology import resolve
from tests.conftest import ROOT

INPUT = ROOT / "tests" / "testdata" / "render" / "istio-service-settings" / "input.yaml"
STEP = Observations(
    ready={f"default/{s}": ["base", "canary"] for s in ("mocka", "mockb", "mockc")},
    traffic={"default/mockb": TrafficStep(lane="canary", weight=50)},
)


def rendered(flavour: str) -> list[dict]:
    bundle = load(INPUT)
    return render_group(bundle.groups[0], bundle.lanes, STEP, flavour)


def routes_to(objects: list[dict], host: str) -> list[dict]:
    return [
        route
        for obj in objects if obj["kind"] == "VirtualService"
        for route in obj["spec"]["http"]
        if {d["destination"]["host"] for d in route["route"]} == {host}
    ]


@pytest.mark.parametrize("flavour", ["istio", "asm"])
def test_every_route_to_a_service_carries_its_retries_and_timeout(flavour: str) -> None:
    routes = routes_to(rendered(flavour), "mockb.default.svc.cluster.local")
    # ASM routes every lane with one `$asm-label` route; Istio with one route per lane.
    assert len(routes) >= (3 if flavour == "istio" else 2), "lane routes and the step's split"
    assert all(r["retries"]["attempts"] == 3 and r["timeout"] == "10s" for r in routes)
    assert any(len(r["route"]) == 2 for r in routes), "the release step's split keeps them too"


@pytest.mark.parametrize("flavour", ["istio", "asm"])
def test_settings_stay_on_their_own_service(flavour: str) -> None:
    objects = rendered(flavour)
    for host in ("mocka.default.svc.cluster.local", "mockc.default.svc.cluster.local"):
        assert not any("retries" in r or "timeout" in r for r in routes_to(objects, host))
    assert all("fault" in r for r in routes_to(objects, "mockc.default.svc.cluster.local"))


@pytest.mark.parametrize("flavour", ["istio", "asm"])
def test_the_destination_rule_carries_the_traffic_policy(flavour: str) -> None:
    rules = {o["spec"]["host"]: o["spec"] for o in rendered(flavour) if o["kind"] == "DestinationRule"}
    mockc = rules["mockc.default.svc.cluster.local"]
    assert mockc["trafficPolicy"]["outlierDetection"]["consecutive5xxErrors"] == 5
    assert mockc["trafficPolicy"]["tls"] == {"mode": "ISTIO_MUTUAL"}
    assert "trafficPolicy" not in rules["mocka.default.svc.cluster.local"]


def test_one_service_rendered_alone_keeps_its_settings() -> None:
    bundle = load(INPUT)
    topology = resolve(bundle.groups[0], bundle.lanes, STEP)
    vs, dr = render_service(topology, "default/mockb")
    assert all(r["retries"]["attempts"] == 3 for r in vs["spec"]["http"])
    assert dr["spec"]["trafficPolicy"] == {"loadBalancer": {"simple": "LEAST_REQUEST"}}


def test_a_route_keeps_what_lanes_set_on_it() -> None:
    objects = rendered("istio")
    [entry] = [o for o in objects if o["metadata"]["name"].endswith("-ingress")]
    for route in entry["spec"]["http"]:
        hosts = {d["destination"]["host"] for d in route["route"]}
        if hosts == {"mocka.default.svc.cluster.local"}:
            assert route["corsPolicy"]["allowMethods"] == ["GET", "POST"]
            assert route["headers"] == {"response": {"set": {"x-served-by": "lanes"}}}
