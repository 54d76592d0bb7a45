"""ASM's trace-ID and baggage lane scenarios through the local mesh and real sample-service pods.

Six pods per app mode play ASM's lanes (s1: v1 of all three services, s2: v2 of mocka and
mockc, s3: v3 of mockb). Trace-mode pods pass on only the request id, as the mock app does by
default and as ASM's trace-ID mode asks (the trace-affinity module keeps the lane); baggage-mode
pods pass on only W3C `baggage` (and `traceparent`), as an app under OpenTelemetry
auto-instrumentation does. Each request's answer names the pod of every
hop, which must be the one ASM's hop table gives.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from lanes.render import TraceAffinityModule
from lanes_testbed.mesh import Endpoint, LocalMesh
from lanes_testbed.mesh.pods import free_block, start_pod
from lanes_testbed.processes import Child, stop_all
from tests.istio_schema import pruned_fields
from tests.asm_scenarios import (
    CHAIN,
    FALLBACK,
    MEMBERS,
    VERSION,
    LANE_LABEL,
    endpoint,
    hop_table,
    mesh_objects,
    pods,
)

from .chain import HOP, IMAGE, ROUTED_FLAVOURS, UPSTREAM, get

LANES = list(VERSION)
TAG = {"v1": "1.0", "v2": "2.0", "v3": "3.0"}
UNUSED = "x-lanes-not-forwarded"
# The environment that makes a pod pass on only what the mode's app passes on.
MODES: dict[str, dict[str, str]] = {
    "trace": {},
    "baggage": {"route_header": UNUSED, "trace_header": UNUSED, "forward": "context"},
}

Pods = dict[str, dict[tuple[str, str], str]]


@pytest.fixture(scope="module")
def scenario_pods(mesh: LocalMesh, e2e_dir: Path) -> Iterator[Pods]:
    """The lanes' pods in each app mode: mode -> (service, lane) -> pod address."""
    block = free_block()
    children: list[Child] = []
    placed: Pods = {mode: {} for mode in MODES}
    try:
        n = 0
        for mode, extra in MODES.items():
            for service, lane in pods():
                n += 1
                ip = f"{block}.{n}"
                env = {"app": service, "LANES_IMAGE": f"{IMAGE}:{TAG[VERSION[lane]]}",
                       "upstream_url": UPSTREAM[service], **extra}
                name = f"scenario-{mode}-{service}-{lane}"
                labels = {"app": service, LANE_LABEL: VERSION[lane]}
                children.append(start_pod(mesh, name, labels, ip, env, e2e_dir / "pods"))
                placed[mode][(service, lane)] = ip
        yield placed
    finally:
        stop_all(children)


def endpoints(placed: Mapping[tuple[str, str], str]) -> list[Endpoint]:
    return [endpoint(ip, service, lane) for (service, lane), ip in placed.items()]


def expected_ips(placed: Mapping[tuple[str, str], str], lane: str) -> list[str]:
    """The pod serving each hop for `lane`: the lane's own where it has the service, else s1's."""
    return [placed[(s, lane if s in MEMBERS[lane] else FALLBACK)] for s in CHAIN]


def answer(mesh: LocalMesh, headers: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """One request through the gateway: the versions and pod addresses of its hops."""
    status, body = get(mesh.gateway_url, "/mock", headers)
    assert status == 200, body
    hops = HOP.findall(body)
    assert [h[0] for h in hops] == list(CHAIN), body
    return [h[1] for h in hops], [h[2] for h in hops]


@pytest.mark.parametrize("flavour", ROUTED_FLAVOURS)
def test_trace_id_scenario_serves_each_lane_its_hop_table(
    mesh: LocalMesh, scenario_pods: Pods, module: TraceAffinityModule, flavour: str
) -> None:
    placed = scenario_pods["trace"]
    mesh.update(mesh_objects("trace-id", flavour, trace_affinity=module), endpoints(placed))
    for n, lane in enumerate(LANES):
        versions, ips = answer(mesh, {"x-asm-prefer-tag": lane, "my-request-id": f"e2e-{n}"})
        assert versions == hop_table(lane), lane
        assert ips == expected_ips(placed, lane), lane
    assert answer(mesh, {"my-request-id": "untagged"}) == (
        hop_table("s1"), expected_ips(placed, "s1")), "untagged requests go to the fallback"


def test_baggage_scenario_keeps_every_weighted_share_in_its_lane(
    mesh: LocalMesh, scenario_pods: Pods
) -> None:
    """60/20/20 at the gateway; past it only `baggage` carries the lane, and every hop of every
    request is its lane's pod."""
    placed = scenario_pods["baggage"]
    mesh.update(mesh_objects("baggage", "istio"), endpoints(placed))
    chains = {lane: expected_ips(placed, lane) for lane in LANES}
    counts: Counter[str] = Counter()
    for n in range(100):
        _, ips = answer(mesh, {"my-request-id": f"b{n}"})
        lanes = [lane for lane, want in chains.items() if ips == want]
        assert lanes, f"request {n} left its lane: {ips}"
        counts[lanes[0]] += 1
    assert set(counts) == set(LANES), counts
    assert 40 <= counts["s1"] <= 80, counts


def test_baggage_pods_lose_the_lane_under_header_routes(
    mesh: LocalMesh, scenario_pods: Pods
) -> None:
    """The same pods under header-mode routes: mocka is s2's but mockc never is, since the
    apps drop the lane header. This is what the baggage conversion prevents."""
    placed = scenario_pods["baggage"]
    mesh.update(mesh_objects("weighted", "istio"), endpoints(placed))
    seen = Counter(tuple(answer(mesh, {})[0]) for _ in range(60))
    assert ("v2", "v1", "v2") not in seen, seen
    assert ("v2", "v1", "v1") in seen, seen


def without_pruned(obj: dict) -> dict:
    """`obj` as plain Istio's API server stores it: the fields its CRD schema prunes dropped."""
    kept = copy.deepcopy(obj)
    for path in pruned_fields(obj):
        parts = re.findall(r"\[(\d+)\]|([^.\[\]]+)", path)
        *parents, last = [int(index) if index else name for index, name in parts]
        node = kept
        for part in parents:
            node = node[part]
        del node[last]
    return kept


def dev_answers(mesh: LocalMesh, count: int) -> list[tuple[int, str]]:
    """`count` requests of the guide's `env: dev` through the gateway: status and body."""
    return [get(mesh.gateway_url, "/mock", {"env": "dev", "my-request-id": f"dev-{n}"})
            for n in range(count)]


def test_custom_virtualservice_fallback_reaches_the_fallback_on_plain_istio(
    mesh: LocalMesh, scenario_pods: Pods, module: TraceAffinityModule
) -> None:
    """ASM's custom-VirtualService guide: `env: dev` goes half to s2, half to s3, and s3 has no
    mocka, so ASM's `fallback` sends that half to s1's mocka. Plain Istio prunes the field:
    that half fails. Converted, the group's fallbackSubsets give s3 a subset of mocka holding
    s1's pods, and every request is served, s3's keeping its lane after mocka."""
    placed = scenario_pods["trace"]
    as_written = mesh_objects("custom-virtualservice", "istio", trace_affinity=module)
    custom = next(o for o in as_written if o["metadata"]["name"] == "swimlane-ingress-vs-custom")
    assert pruned_fields(custom) == ["spec.http[0].route[1].fallback"]
    stored = [without_pruned(o) if o is custom else o for o in as_written]
    mesh.update(stored, endpoints(placed))
    statuses = Counter(status for status, _ in dev_answers(mesh, 40))
    assert statuses[200] and statuses[503], f"plain Istio without the fallback: {statuses}"

    mesh.update(mesh_objects("custom-virtualservice", "istio", trace_affinity=module,
                             as_converted=True), endpoints(placed))
    chains = {lane: expected_ips(placed, lane) for lane in ("s2", "s3")}
    seen: Counter[str] = Counter()
    for status, body in dev_answers(mesh, 40):
        assert status == 200, body
        ips = [hop[2] for hop in HOP.findall(body)]
        lanes = [lane for lane, want in chains.items() if ips == want]
        assert lanes, f"left its lane: {body}"
        seen[lanes[0]] += 1
    assert set(seen) == {"s2", "s3"}, seen
    print(f"env: dev, fallback pruned: {dict(statuses)}; converted: all 200, by lane {dict(seen)}")
