"""The renderer's output, translated for Envoy, keeps every request in its lane hop by hop.

Requests are walked through the translated route tables (gateway, then each service's mesh
virtual host) with the headers each route sets, in both flavours, for every state of the
mock-chain story and for generated observations.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from lanes.api.load import load_observations
from lanes.api.observations import Observations
from lanes_testbed.mesh import Endpoint, EnvoyConfig, translate
from lanes.importers import load
from lanes.render import render_group
from tests.conftest import REFERENCE

from .mesh_helpers import added_headers, cluster, cluster_ips, pick

ROOT = Path(__file__).resolve().parents[2]
INPUTS = REFERENCE / "asm-mock-chain-inputs.yaml"
OBSERVED = ROOT / "samples" / "mock-chain" / "observed"
CHAIN = ["mocka", "mockb", "mockc"]
STATES = ["0", "1", "2", "3", "4", "U"]


def plain_objects() -> list[dict]:
    """The Services and Gateway of the inputs: what the mesh needs besides rendered routes."""
    docs = yaml.safe_load_all(INPUTS.read_text())
    return [d for d in docs if d["kind"] in {"Service", "Gateway"}]


@pytest.fixture(scope="module")
def inputs() -> tuple:
    bundle = load(INPUTS)
    return bundle.groups[0], bundle.lanes, plain_objects()


def endpoints_for(observed: Observations) -> tuple[list[Endpoint], dict[str, str]]:
    """One pod per (service, ready lane), and which lane each pod address belongs to."""
    endpoints, lane_of = [], {}
    for n, (key, lanes) in enumerate(sorted(observed.ready.items())):
        for m, lane in enumerate(lanes):
            ip = f"127.0.{n + 1}.{m + 1}"
            endpoints.append(Endpoint(ip, {"app": key.split("/")[1], "ASM_TRAFFIC_TAG": lane}))
            lane_of[ip] = lane
    return endpoints, lane_of


def walk(config: EnvoyConfig, lane_of: dict[str, str], headers: dict[str, str]) -> list[str]:
    """The lane of the pod serving each hop of /mock through the gateway and down the chain."""
    hops = []
    for i, service in enumerate(CHAIN):
        at = ("gateway", "127.0.0.1:8080", "/mock") if i == 0 else ("mesh", f"{service}:8000", "/")
        route = pick(config, *at, headers)
        assert route is not None, f"no route for {service} with {headers}"
        action = route["route"]
        headers = {**headers, **{k: v for k, (v, _) in added_headers(route).items()}}
        assert "cluster" in action, "walk() only follows single-destination routes"
        ips = serving_ips(config, action["cluster"])
        assert ips, f"{service}: {action['cluster']} has no endpoints"
        hops.append(lane_of[ips[0]])
    return hops


def serving_ips(config: EnvoyConfig, name: str) -> list[str]:
    """Endpoints a cluster sends to; an aggregate uses its first member that has any."""
    found = cluster(config, name)
    if "cluster_type" in found:
        for member in found["cluster_type"]["typed_config"]["clusters"]:
            if serving_ips(config, member):
                return serving_ips(config, member)
        return []
    return cluster_ips(config, name)


def expected(observed: Observations, lane: str) -> list[str]:
    return [lane if lane in observed.lanes_of(f"default/{s}") else "base" for s in CHAIN]


@pytest.mark.parametrize("flavour", ["istio", "asm"])
@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("lane", ["base", "canary"])
def test_story_states_keep_each_lane_on_every_hop(inputs: tuple, state: str, flavour: str,
                                                  lane: str) -> None:
    group, lanes, plain = inputs
    observed = load_observations(OBSERVED / f"state-{state}.yaml")
    endpoints, lane_of = endpoints_for(observed)
    config = translate([*plain, *render_group(group, lanes, observed, flavour)], endpoints)
    assert walk(config, lane_of, {"x-asm-prefer-tag": lane}) == expected(observed, lane)


@pytest.mark.parametrize("flavour", ["istio", "asm"])
def test_requests_outside_the_ingress_rules_get_no_route(inputs: tuple, flavour: str) -> None:
    group, lanes, plain = inputs
    observed = load_observations(OBSERVED / "state-2.yaml")
    config = translate([*plain, *render_group(group, lanes, observed, flavour)],
                       endpoints_for(observed)[0])
    assert pick(config, "gateway", "x", "/other", {"x-asm-prefer-tag": "base"}) is None
    assert pick(config, "gateway", "x", "/mock", {"x-asm-prefer-tag": "dev"}) is None


@settings(max_examples=40, deadline=None)
@given(
    canary=st.fixed_dictionaries({s: st.booleans() for s in CHAIN}),
    flavour=st.sampled_from(["istio", "asm"]),
)
def test_any_observation_serves_a_lane_where_present_and_base_elsewhere(
    canary: dict[str, bool], flavour: str
) -> None:
    bundle = load(INPUTS)
    plain = plain_objects()
    observed = Observations(
        ready={f"default/{s}": ["base", "canary"] if on else ["base"] for s, on in canary.items()}
    )
    endpoints, lane_of = endpoints_for(observed)
    config = translate([*plain, *render_group(bundle.groups[0], bundle.lanes, observed, flavour)],
                       endpoints)
    for lane in ("base", "canary"):
        assert walk(config, lane_of, {"x-asm-prefer-tag": lane}) == expected(observed, lane)
    routed = {c["name"] for c in config.clusters}
    for table in config.routes:
        for vhost in table["virtual_hosts"]:
            for route in vhost["routes"]:
                action = route["route"]
                names = [action["cluster"]] if "cluster" in action else [
                    c["name"] for c in action["weighted_clusters"]["clusters"]]
                assert set(names) <= routed
    for found in config.clusters:
        members = found.get("cluster_type", {}).get("typed_config", {}).get("clusters", [])
        assert set(members) <= routed
