"""Invariants of the renderer for any valid group, lanes and observations (hypothesis).

The generated VirtualServices are evaluated the way Envoy does: http routes in order, the first
whose match (any of its match entries, all conditions of an entry) fits the request wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lanes.api.observations import Observations
from lanes.api.swimlane import SwimLane
from lanes.api.swimlanegroup import SwimLaneGroup
from lanes.api.topology import Topology, resolve
from lanes.render import render_service, render_topology
from tests.istio_schema import problems

NAMESPACES = ["default", "shop", "web"]
SERVICE_NAMES = ["front", "cart", "pay", "ledger"]
LANE_NAMES = ["base", "canary", "blue", "green", "x-1"]
# `.`, `+` and `*` are legal in header names and special in a regex.
ROUTE_HEADERS = ["x-lane", "x-asm-prefer-tag", "x.lane+tag*"]
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@dataclass
class Scenario:
    """A valid group with its lanes and what is observed."""

    group: SwimLaneGroup
    lanes: list[SwimLane]
    observed: Observations | None

    @property
    def topology(self) -> Topology:
        return resolve(self.group, self.lanes, self.observed)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    services = draw(
        st.lists(
            st.tuples(st.sampled_from(NAMESPACES), st.sampled_from(SERVICE_NAMES)),
            min_size=1,
            max_size=6,
            unique=True,
        )
    )
    keys = [f"{ns}/{name}" for ns, name in services]
    lanes = draw(st.lists(st.sampled_from(LANE_NAMES), min_size=1, max_size=4, unique=True))
    fallback = draw(st.sampled_from(lanes))
    header = draw(st.sampled_from(ROUTE_HEADERS))
    strategy = draw(st.sampled_from(["rule_based", "weighted"]))
    weights = draw(st.lists(st.integers(0, 60), min_size=len(lanes), max_size=len(lanes)))
    while sum(weights) > 100:
        weights = [w // 2 for w in weights]
    lane_docs = []
    for lane, weight in zip(lanes, weights, strict=True):
        rules = [
            {
                "name": f"r{i}",
                "online": draw(st.booleans()),
                "match": draw(
                    st.sampled_from(
                        [
                            {"headers": {header: {"exact": lane}}},
                            {"uri": {"prefix": f"/{lane}"}},
                            {"uri": {"exact": "/"}, "headers": {"x-user": {"regex": "t.*"}}},
                        ]
                    )
                ),
                "route": {
                    "destination": {
                        "host": _fqdn(draw(st.sampled_from(keys))),
                        **({"port": 8080} if draw(st.booleans()) else {}),
                    }
                },
            }
            for i in range(draw(st.integers(0, 2)))
        ]
        lane_docs.append(
            {
                "metadata": {"name": lane, "labels": {"swimlane-group": "g"}},
                "spec": {
                    "labelSelector": {"lane": lane},
                    "ingressRules": rules,
                    "ingressWeight": {
                        "destination": {"host": _fqdn(draw(st.sampled_from(keys)))},
                        "weight": weight,
                    },
                    "services": [
                        {"name": k.split("/")[1], "namespace": k.split("/")[0]}
                        for k in draw(st.lists(st.sampled_from(keys), unique=True))
                    ],
                },
            }
        )
    group = SwimLaneGroup.model_validate(
        {
            "metadata": {"name": "g"},
            "spec": {
                "ingress": {
                    "gateway": {"name": "gw", "namespace": "istio-system"},
                    "ingressRouting": {
                        "ingressRoutingStrategy": strategy,
                        "weightedRoutingRule": {"requestMatches": [{"uri": {"prefix": "/"}}]},
                    },
                },
                "isPermissive": True,
                "autoUpdate": draw(st.booleans()),
                "propagation": draw(st.sampled_from(["header", "baggage"])),
                "permissiveModeConfiguration": {"fallbackTarget": fallback, "routeHeader": header},
                "services": [{"name": name, "namespace": ns} for ns, name in services],
            },
        }
    )
    observed = None
    if draw(st.booleans()):
        # Lanes of other groups may have pods too; they must be ignored.
        ready = {
            key: draw(st.lists(st.sampled_from([*lanes, "elsewhere"]), unique=True))
            for key in draw(st.lists(st.sampled_from(keys), unique=True))
        }
        observed = Observations(ready=ready)
    return Scenario(group, [SwimLane.model_validate(doc) for doc in lane_docs], observed)


def _fqdn(key: str) -> str:
    namespace, name = key.split("/")
    return f"{name}.{namespace}.svc.cluster.local"


def string_matches(match: dict, value: str | None) -> bool:
    """Istio's StringMatch as Envoy applies it: exact, prefix, or an RE2 full match."""
    if value is None:
        return False
    if "exact" in match:
        return value == match["exact"]
    if "prefix" in match:
        return value.startswith(match["prefix"])
    return re.fullmatch(match["regex"], value) is not None


def route_for(vs: dict, headers: dict[str, str], path: str = "/") -> dict | None:
    """The http route of `vs` a request takes, or None when no route matches."""
    for http in vs["spec"]["http"]:
        matches = http.get("match") or [{}]
        for match in matches:
            uri = match.get("uri")
            if uri is not None and not string_matches(uri, path):
                continue
            conditions = (match.get("headers") or {}).items()
            if all(string_matches(m, headers.get(h)) for h, m in conditions):
                return http
    return None


def tagged(topology: Topology, lane: str) -> dict[str, str]:
    """The headers of a request in `lane`, as the gateway leaves them for the next hops."""
    header = topology.group.spec.route_header
    if topology.group.spec.propagation == "baggage":
        # Other members around the lane's, with a property, as tracing libraries send them.
        return {"baggage": f"sampled=1, {header} = {lane};ttl=3, user=u1"}
    return {header: lane}


def mesh_objects(objects: list[dict]) -> tuple[dict[str, list[dict]], dict[str, list[dict]]]:
    """Mesh VirtualServices and DestinationRules by host."""
    services: dict[str, list[dict]] = {}
    rules: dict[str, list[dict]] = {}
    for obj in objects:
        if obj["kind"] == "VirtualService" and not obj["spec"].get("gateways"):
            services.setdefault(obj["spec"]["hosts"][0], []).append(obj)
        elif obj["kind"] == "DestinationRule":
            rules.setdefault(obj["spec"]["host"], []).append(obj)
    return services, rules


def subsets_of(rule: dict) -> list[str]:
    return [s["name"] for s in rule["spec"]["subsets"]]


@SETTINGS
@given(scenarios(), st.sampled_from(["istio", "asm"]))
def test_every_service_gets_one_virtual_service_and_one_destination_rule(
    scenario: Scenario, flavour: str
) -> None:
    topology = scenario.topology
    services, rules = mesh_objects(render_topology(topology, flavour))
    hosts = {_fqdn(key) for key in topology.members}
    assert set(services) == hosts
    assert set(rules) == hosts
    assert all(len(v) == 1 for v in services.values())
    assert all(len(v) == 1 for v in rules.values())


@SETTINGS
@given(scenarios(), st.sampled_from(["istio", "asm"]))
def test_the_fallback_subset_always_exists(scenario: Scenario, flavour: str) -> None:
    topology = scenario.topology
    _, rules = mesh_objects(render_topology(topology, flavour))
    for [rule] in rules.values():
        assert subsets_of(rule)[0] == topology.fallback


@SETTINGS
@given(scenarios(), st.sampled_from(["istio", "asm"]))
def test_every_routed_subset_is_defined(scenario: Scenario, flavour: str) -> None:
    objects = render_topology(scenario.topology, flavour)
    _, rules = mesh_objects(objects)
    for vs in (o for o in objects if o["kind"] == "VirtualService"):
        for http in vs["spec"]["http"]:
            for route in http["route"]:
                # ASM routes to the lane's subset (or `$asm-label`) and relies on its fallback.
                target = route["fallback"]["target"] if flavour == "asm" else route["destination"]
                [rule] = rules[target["host"]]
                assert target["subset"] in subsets_of(rule), (vs["metadata"]["name"], http["name"])


@SETTINGS
@given(scenarios())
def test_a_request_reaches_its_lane_only_where_the_lane_has_pods(scenario: Scenario) -> None:
    topology = scenario.topology
    services, _ = mesh_objects(render_topology(topology, "istio"))
    for key, serving in topology.members.items():
        [vs] = services[_fqdn(key)]
        for lane in [lane.name for lane in topology.lanes]:
            route = route_for(vs, tagged(topology, lane))
            assert route is not None
            [destination] = [r["destination"] for r in route["route"]]
            expected = lane if lane in serving else topology.fallback
            assert destination["subset"] == expected, (key, lane)
        untagged = route_for(vs, {})
        assert untagged["route"][0]["destination"]["subset"] == topology.fallback


@SETTINGS
@given(scenarios())
def test_a_fallback_request_never_leaves_the_fallback_subset(scenario: Scenario) -> None:
    topology = scenario.topology
    fallback = topology.fallback
    services, _ = mesh_objects(render_topology(topology, "istio"))
    for [vs] in services.values():
        for headers in (tagged(topology, fallback), {topology.group.spec.route_header: fallback}):
            route = route_for(vs, headers)
            assert [r["destination"]["subset"] for r in route["route"]] == [fallback]


@SETTINGS
@given(scenarios())
def test_gateway_routes_enter_a_lane_only_where_it_has_pods(scenario: Scenario) -> None:
    topology = scenario.topology
    header = topology.group.spec.route_header
    for vs in render_topology(topology, "istio"):
        if not vs["spec"].get("gateways"):
            continue
        for http in vs["spec"]["http"]:
            weights = [r.get("weight", 100) for r in http["route"]]
            assert sum(weights) == 100
            if http["name"] == "untagged":
                assert [r["destination"]["subset"] for r in http["route"]] == [topology.fallback]
                assert http["match"] and all(m["withoutHeaders"] == {header: {}}
                                             for m in http["match"])
                assert "headers" not in http["route"][0]
                continue
            for route in http["route"]:
                lane = route["headers"]["request"]["set"][header]
                host = route["destination"]["host"]
                key = "/".join(reversed(host.split(".")[:2]))
                assert route["destination"]["subset"] == topology.serving(key, lane)


@SETTINGS
@given(scenarios(), st.sampled_from(["istio", "asm"]), st.randoms(use_true_random=False))
def test_the_same_input_gives_byte_identical_output(scenario: Scenario, flavour: str, rnd) -> None:
    first = yaml.safe_dump_all(render_topology(scenario.topology, flavour), sort_keys=False)
    # The order lanes and observed lanes arrive in must not matter either.
    lanes = list(scenario.lanes)
    rnd.shuffle(lanes)
    observed = scenario.observed
    if observed is not None:
        ready = {k: rnd.sample(v, len(v)) for k, v in observed.ready.items()}
        observed = Observations(ready=dict(rnd.sample(list(ready.items()), len(ready))))
    again = yaml.safe_dump_all(
        render_topology(resolve(scenario.group, lanes, observed), flavour), sort_keys=False
    )
    assert again == first


@SETTINGS
@given(scenarios(), st.sampled_from(["istio", "asm"]))
def test_output_passes_the_istio_schema(scenario: Scenario, flavour: str) -> None:
    allowed = ("fallback",) if flavour == "asm" else ()
    found = [
        f"{obj['kind']}/{obj['metadata']['name']}: {problem}"
        for obj in render_topology(scenario.topology, flavour)
        for problem in problems(obj, allow_pruned=allowed)
    ]
    assert found == []


@SETTINGS
@given(scenarios(), st.sampled_from(["istio", "asm"]))
def test_one_service_renders_as_in_the_full_render(scenario: Scenario, flavour: str) -> None:
    topology = scenario.topology
    objects = render_topology(topology, flavour)
    for key in topology.members:
        vs, dr = render_service(topology, key, flavour)
        assert vs in objects
        assert dr in objects
