"""ASM's published lane scenarios, walked through lanes' routes as the local mesh translates them.

Each test renders a scenario of `tests/testdata/asm-scenarios/`, translates it with the pods of
every lane, and follows a request from the gateway through mocka, mockb and mockc: at each
hop the route Envoy would pick, the headers it sets, and the version of the pods its cluster
holds. The app between hops passes on only the headers ASM's page says it does, so a lane
that depends on a header the app drops is caught. The versions must equal ASM's hop table.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import pytest

from lanes.api.observations import Observations
from lanes_testbed.mesh import EnvoyConfig, MeshOptions, translate
from tests.asm_scenarios import (
    CHAIN,
    VERSION,
    bundle,
    documents,
    endpoint,
    hop_table,
    mesh_objects,
    pods,
)

from .mesh_helpers import added_headers, cluster, cluster_ips, pick

FLAVOURS = ["istio", "asm"]
LANES = list(VERSION)
ROUTE_HEADER = "x-asm-prefer-tag"
TRACE_HEADER = "my-request-id"
BAGGAGE = "baggage"
# What the mock app passes on in header mode: the lane header and the request id.
HEADER_APP = frozenset({ROUTE_HEADER, TRACE_HEADER})


@dataclass(frozen=True)
class Branch:
    """One way a request goes: its share of the gateway's traffic, its lane tag, its hops."""

    weight: int
    tag: str | None
    versions: list[str | None]


class Mesh:
    """A scenario's translated routes and the version of every pod they can send to."""

    def __init__(self, objects: list[dict], route_header: str = ROUTE_HEADER) -> None:
        placed = [(f"127.0.{n}.1", s, lane) for n, (s, lane) in enumerate(pods(), start=1)]
        self.version_of = {ip: VERSION[lane] for ip, _, lane in placed}
        self.config: EnvoyConfig = translate(
            objects, [endpoint(ip, s, lane) for ip, s, lane in placed],
            MeshOptions(route_header=route_header),
        )

    def walk(self, headers: Mapping[str, str], carried: Collection[str] = HEADER_APP,
             path: str = "/mock", tag_header: str = ROUTE_HEADER) -> list[Branch]:
        """Every branch of the gateway's split for a request; [] where the gateway has no route.

        Between hops the app passes on only the `carried` headers of what it received.
        """
        route = pick(self.config, "gateway", "127.0.0.1:8080", path, headers)
        if route is None:
            return []
        action = route["route"]
        shares = ([{"name": action["cluster"], "weight": 100}] if "cluster" in action
                  else action["weighted_clusters"]["clusters"])
        branches = []
        for share in shares:
            entered = {**headers, **_set_by(route), **_set_by(share)}
            versions = [self.version(share["name"])]
            if versions[0] is not None:
                versions += self.follow(entered, carried)
            branches.append(Branch(share["weight"], entered.get(tag_header), versions))
        return branches

    def follow(self, received: Mapping[str, str], carried: Collection[str]) -> list[str | None]:
        """The versions serving mockb and mockc for a request mocka received with `received`."""
        versions = []
        for service in CHAIN[1:]:
            sent = {k: v for k, v in received.items() if k in carried}
            route = pick(self.config, "mesh", f"{service}:8000", "/", sent)
            assert route is not None, f"{service}: no route for {sent}"
            assert "cluster" in route["route"], f"{service}: mesh routes do not split"
            versions.append(self.version(route["route"]["cluster"]))
            received = {**sent, **_set_by(route)}
        return versions

    def version(self, name: str) -> str | None:
        """The one version a cluster's pods run, None when it has no pods (Envoy answers 503);
        an aggregate serves from its first member with pods, as Envoy's aggregate cluster does."""
        found = cluster(self.config, name)
        if "cluster_type" in found:
            members = found["cluster_type"]["typed_config"]["clusters"]
            serving = [m for m in members if cluster_ips(self.config, m)]
            return self.version(serving[0]) if serving else None
        versions = {self.version_of[ip] for ip in cluster_ips(self.config, name)}
        assert len(versions) <= 1, f"{name} holds pods of {sorted(versions)}"
        return versions.pop() if versions else None


def _set_by(entry: Mapping) -> dict[str, str]:
    return {k: v for k, (v, _) in added_headers(entry).items()}


def one_way(branches: list[Branch]) -> list[str | None]:
    """The hops of a request the gateway does not split."""
    assert [b.weight for b in branches] == [100], branches
    return branches[0].versions


def split(branches: list[Branch]) -> dict[str | None, tuple[int, list[str | None]]]:
    """A split request's branches by the lane each is tagged with."""
    return {b.tag: (b.weight, b.versions) for b in branches}


def test_the_hop_tables_are_asms() -> None:
    """The table the tests hold lanes to, as ASM's pages give it."""
    assert hop_table("s1") == ["v1", "v1", "v1"]
    assert hop_table("s2") == ["v2", "v1", "v2"]
    assert hop_table("s3") == ["v1", "v3", "v1"]


# Scenario 1: a routing header apart from the trace header.

@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("lane", LANES)
def test_trace_id_scenario_serves_each_lane_its_hop_table(flavour: str, lane: str) -> None:
    mesh = Mesh(mesh_objects("trace-id", flavour))
    request = {ROUTE_HEADER: lane, TRACE_HEADER: f"req-{lane}"}
    assert one_way(mesh.walk(request)) == hop_table(lane)


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("request_headers", [{ROUTE_HEADER: "s4"}, {ROUTE_HEADER: "S2"}])
def test_trace_id_scenario_refuses_requests_no_lane_rule_matches(
    flavour: str, request_headers: dict[str, str]
) -> None:
    """A request tagged with a lane no rule knows, or off the lanes' paths, gets no route."""
    mesh = Mesh(mesh_objects("trace-id", flavour))
    assert mesh.walk(request_headers) == []
    assert mesh.walk({ROUTE_HEADER: "s2"}, path="/other") == []
    assert mesh.walk({}, path="/other") == []


@pytest.mark.parametrize("request_headers", [{}, {TRACE_HEADER: "req-1"}])
def test_untagged_requests_on_the_lanes_paths_are_served_by_the_fallback_lane(
    request_headers: dict[str, str]
) -> None:
    """The istio flavour gives untagged requests an explicit route: the fallback lane, s1.

    ASM generates no such route (its output is kept as it is), so there they get none.
    """
    assert one_way(Mesh(mesh_objects("trace-id", "istio")).walk(request_headers)) == hop_table("s1")
    assert Mesh(mesh_objects("trace-id", "asm")).walk(request_headers) == []


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_trace_id_scenario_lane_returns_after_a_fallback_hop(flavour: str) -> None:
    """s2 has no mockb: mockb is s1's, and mockc is s2's again because the lane header went on
    through s1's mockb."""
    mesh = Mesh(mesh_objects("trace-id", flavour))
    assert one_way(mesh.walk({ROUTE_HEADER: "s2"})) == ["v2", "v1", "v2"]
    assert one_way(mesh.walk({ROUTE_HEADER: "s3"})) == ["v1", "v3", "v1"]


def test_trace_id_scenario_needs_the_route_header_passed_on() -> None:
    """What `kubectl lane convert` notes for this group: ASM keeps the lane by trace ID, so its
    apps may pass on only my-request-id; on lanes such an app's s2 request leaves s2 after
    mocka, since every hop matches the route header."""
    mesh = Mesh(mesh_objects("trace-id", "istio"))
    request = {ROUTE_HEADER: "s2", TRACE_HEADER: "req-1"}
    assert one_way(mesh.walk(request, carried={TRACE_HEADER})) == ["v2", "v1", "v1"]
    assert one_way(mesh.walk(request, carried=HEADER_APP)) == ["v2", "v1", "v2"]


def test_trace_id_scenario_keeps_the_lane_once_a_lane_loses_its_pods() -> None:
    """s2's mockc pods gone: lanes drops s2's route at mockc, and s2 falls back to s1 there."""
    state = Observations(ready={"default/mocka": ["s1", "s2"], "default/mockb": ["s1", "s3"],
                                "default/mockc": ["s1"]})
    objects = mesh_objects("trace-id", "istio", state)
    mesh = Mesh(objects)
    assert one_way(mesh.walk({ROUTE_HEADER: "s2"})) == ["v2", "v1", "v1"]
    assert one_way(mesh.walk({ROUTE_HEADER: "s3"})) == ["v1", "v3", "v1"]


# Scenario 2: one header routes and is passed on.

@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("lane", LANES)
def test_one_header_scenario_serves_each_lane_its_hop_table(flavour: str, lane: str) -> None:
    """routeHeader == traceHeader == my-request-id; the app passes on only that header."""
    mesh = Mesh(mesh_objects("one-header", flavour), route_header=TRACE_HEADER)
    branches = mesh.walk({TRACE_HEADER: lane}, carried={TRACE_HEADER}, tag_header=TRACE_HEADER)
    assert one_way(branches) == hop_table(lane)
    assert branches[0].tag == lane


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_one_header_scenario_routes_on_that_header_alone(flavour: str) -> None:
    """x-asm-prefer-tag means nothing here: only my-request-id chooses a lane."""
    objects = mesh_objects("one-header", flavour)
    mesh = Mesh(objects, route_header=TRACE_HEADER)
    served = mesh.walk({ROUTE_HEADER: "s2"}, carried={TRACE_HEADER})
    if flavour == "istio":
        assert one_way(served) == hop_table("s1"), "untagged: the fallback lane"
    else:
        assert served == []
    assert ROUTE_HEADER not in str(objects)
    assert TRACE_HEADER in str(objects)


# Scenario 3: weighted entry, 60/20/20.

@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("request_headers", [{}, {ROUTE_HEADER: "s2"}, {TRACE_HEADER: "r"}])
def test_weighted_scenario_splits_60_20_20_and_keeps_each_share_in_its_lane(
    flavour: str, request_headers: dict[str, str]
) -> None:
    """Whatever the request carries, the gateway's weights alone choose its lane."""
    mesh = Mesh(mesh_objects("weighted", flavour))
    assert split(mesh.walk(request_headers)) == {
        "s1": (60, hop_table("s1")),
        "s2": (20, hop_table("s2")),
        "s3": (20, hop_table("s3")),
    }


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_weighted_scenario_enters_only_the_weighted_rules_requests(flavour: str) -> None:
    mesh = Mesh(mesh_objects("weighted", flavour))
    assert mesh.walk({}, path="/other") == []


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("lane", LANES)
def test_weighted_scenario_mesh_routes_serve_a_tagged_request_its_lane(
    flavour: str, lane: str
) -> None:
    """Past the gateway, a request tagged by the split keeps its lane at every hop."""
    mesh = Mesh(mesh_objects("weighted", flavour))
    assert mesh.follow({ROUTE_HEADER: lane}, HEADER_APP) == hop_table(lane)[1:]


# Scenario 4: the user's own gateway VirtualService over the lanes' subsets.

@pytest.mark.parametrize("flavour", FLAVOURS)
def test_custom_virtualservice_scenario_lanes_render_no_gateway_route(flavour: str) -> None:
    objects = mesh_objects("custom-virtualservice", flavour)
    bound = [o["metadata"]["name"] for o in objects
             if o["kind"] == "VirtualService" and o["spec"].get("gateways")]
    assert bound == ["swimlane-ingress-vs-custom"]


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_custom_virtualservice_scenario_splits_dev_between_s2_and_s3(flavour: str) -> None:
    """`env: dev` half to s2, half to s3; s3 has no mocka, so its half starts on s1's mocka
    (the route's fallback) and is s3's again at mockb.

    The user's route is ASM's, with `fallback`; the local mesh serves that extension whichever
    flavour rendered the lanes (plain Istio drops it: see the test after the next).
    """
    mesh = Mesh(mesh_objects("custom-virtualservice", flavour))
    assert split(mesh.walk({"env": "dev"}, path="/anything")) == {
        "s2": (50, ["v2", "v1", "v2"]),
        "s3": (50, ["v1", "v3", "v1"]),
    }


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("request_headers", [{}, {"env": "prod"}, {ROUTE_HEADER: "s2"}])
def test_custom_virtualservice_scenario_sends_everything_else_to_s1(
    flavour: str, request_headers: dict[str, str]
) -> None:
    """Other requests go to s1, whatever lane header they came with (the route sets s1)."""
    mesh = Mesh(mesh_objects("custom-virtualservice", flavour))
    branches = mesh.walk(request_headers)
    assert one_way(branches) == hop_table("s1")
    assert branches[0].tag == "s1"


def test_custom_virtualservice_without_asms_fallback_leaves_the_s3_half_without_mocka() -> None:
    """What ASM's `fallback` is for: plain Istio drops it, and s3 has no mocka subset, so that
    half of `env: dev` would find no pods while the s2 half is served as before."""
    objects = mesh_objects("custom-virtualservice", "istio")
    for obj in objects:
        if obj["metadata"]["name"] == "swimlane-ingress-vs-custom":
            for route in obj["spec"]["http"]:
                for target in route["route"]:
                    target.pop("fallback", None)
    branches = split(Mesh(objects).walk({"env": "dev"}))
    assert branches == {"s2": (50, ["v2", "v1", "v2"]), "s3": (50, [None])}


def test_custom_virtualservice_is_the_users_and_names_lanes_subsets() -> None:
    """The user's VirtualService routes to subsets named after the lanes, which lanes defines
    on mocka's DestinationRule (s3 has no mocka pods, so no s3 subset: hence the fallback)."""
    [custom] = [d for d in documents("custom-virtualservice") if d["kind"] == "VirtualService"]
    named = {r["destination"]["subset"] for h in custom["spec"]["http"] for r in h["route"]}
    assert named == {"s1", "s2", "s3"}
    rules = [o for o in mesh_objects("custom-virtualservice", "istio")
             if o["kind"] == "DestinationRule" and o["spec"]["host"].startswith("mocka.")]
    assert [s["name"] for s in rules[0]["spec"]["subsets"]] == ["s1", "s2"]


# Scenario 5: baggage mode.

def test_baggage_scenario_converts_to_baggage_propagation() -> None:
    [group] = bundle("baggage").groups
    assert group.spec.propagation == "baggage"


@pytest.mark.parametrize("request_headers", [{}, {BAGGAGE: "userId=alice"}])
def test_baggage_scenario_keeps_each_share_in_its_lane_on_baggage_alone(
    request_headers: dict[str, str]
) -> None:
    """The apps pass on only `baggage`: every hop still serves the request's lane.

    ASM's `$asm-label` routes read the lane header, which these apps drop, so only the istio
    flavour's baggage matches can serve this on the local mesh.
    """
    mesh = Mesh(mesh_objects("baggage", "istio"))
    assert split(mesh.walk(request_headers, carried={BAGGAGE})) == {
        "s1": (60, hop_table("s1")),
        "s2": (20, hop_table("s2")),
        "s3": (20, hop_table("s3")),
    }


@pytest.mark.parametrize("lane", LANES)
def test_baggage_scenario_mesh_routes_find_the_lane_among_other_members(lane: str) -> None:
    """A lane member among a tracer's other members still picks the lane's version."""
    mesh = Mesh(mesh_objects("baggage", "istio"))
    received = {BAGGAGE: f"userId=alice, {ROUTE_HEADER}={lane};p=1,serverNode=DF%2028"}
    assert mesh.follow(received, {BAGGAGE}) == hop_table(lane)[1:]


def test_baggage_scenario_would_lose_the_lane_in_header_mode() -> None:
    """The same group spelled with a trace header instead of baggage: an app passing on only
    baggage loses s2 after mocka, which is why the conversion matters."""
    header_mode = Mesh(mesh_objects("weighted", "istio"))
    s2 = split(header_mode.walk({}, carried={BAGGAGE}))["s2"]
    assert s2 == (20, ["v2", "v1", "v1"])
