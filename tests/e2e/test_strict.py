"""Strict lane mode through the local mesh: lanes s1, s2, s3 hold v1, v2, v3 of the whole chain.

The pods pass on no header at all (`forward=none`), so every hop after the gateway stays in its
lane only because Istio routes by the calling pod's lane labels (`sourceLabels`), which each
pod's sidecar carries.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from lanes.api.load import Document, read_documents
from lanes_testbed.mesh import Endpoint, LocalMesh
from lanes_testbed.mesh.pods import free_block, start_pod
from lanes_testbed.processes import Child, stop_all
from lanes.importers import parse_documents
from lanes.render import render_group

from .chain import CHAIN, HOP, IMAGE, ROUTED_FLAVOURS, UPSTREAM, get

ROOT = Path(__file__).resolve().parents[2]
STRICT = ROOT / "samples" / "strict"
LANES = {"s1": "v1", "s2": "v2", "s3": "v3"}


class StrictChain:
    """Nine pods (three versions of mocka -> mockb -> mockc) and the strict sample's objects."""

    def __init__(self, mesh: LocalMesh, pods: dict[tuple[str, str], str]) -> None:
        self.mesh = mesh
        self.pods = pods
        self.plain = [d.body for d in read_documents(STRICT / "app.yaml")
                      if d.body["kind"] in {"Service", "Gateway"}]

    def endpoints(self, without: set[tuple[str, str]] = frozenset()) -> list[Endpoint]:
        return [
            Endpoint(ip, labels(service, version))
            for (service, version), ip in sorted(self.pods.items())
            if (service, version) not in without
        ]

    def objects(self, flavour: str, weights: dict[str, int] | None = None) -> list[dict]:
        documents = read_documents(STRICT / "lanes.yaml")
        if weights is not None:
            documents = [_weighted(d, weights) for d in documents]
        bundle = parse_documents(documents)
        return [*self.plain, *render_group(bundle.groups[0], bundle.lanes, None, flavour)]

    def apply(self, flavour: str, weights: dict[str, int] | None = None,
              without: set[tuple[str, str]] = frozenset()) -> None:
        self.mesh.update(self.objects(flavour, weights), self.endpoints(without))

    def chain_of(self, headers: dict[str, str] | None = None) -> tuple[int, list[tuple[str, str]]]:
        """Status and the (app, version) of every hop that answered."""
        status, body = get(self.mesh.gateway_url, "/mock", headers)
        hops = [(app, version) for app, version, ip in HOP.findall(body)]
        for (app, version), ip in zip(hops, (ip for *_, ip in HOP.findall(body))):
            assert self.pods[(app, version)] == ip, body
        return status, hops


def labels(service: str, version: str) -> dict[str, str]:
    return {"app": service, "version": version, "ASM_TRAFFIC_TAG": version}


def _weighted(document: Document, weights: dict[str, int]) -> Document:
    body = yaml.safe_load(yaml.safe_dump(document.body))
    if body["kind"] == "SwimLaneGroup":
        body["spec"]["ingress"]["ingressRouting"] = {"ingressRoutingStrategy": "weighted"}
    else:
        body["spec"]["ingressWeight"] = {
            "weight": weights[body["metadata"]["name"]],
            "destination": {"host": "mocka.default.svc.cluster.local"},
        }
    return Document(document.source, body)


@pytest.fixture(scope="module")
def strict(mesh: LocalMesh, e2e_dir: Path) -> Iterator[StrictChain]:
    block = free_block()
    children: list[Child] = []
    pods: dict[tuple[str, str], str] = {}
    try:
        for n, (service, version) in enumerate(
            ((s, v) for v in LANES.values() for s in CHAIN), start=1
        ):
            ip = f"{block}.{n}"
            env = {"app": service, "LANES_IMAGE": f"{IMAGE}:{version[1:]}.0",
                   "upstream_url": UPSTREAM[service], "forward": "none"}
            children.append(start_pod(mesh, f"strict-{service}-{version}", labels(service, version),
                                      ip, env, e2e_dir / "strict"))
            pods[(service, version)] = ip
        yield StrictChain(mesh, pods)
    finally:
        stop_all(children)


@pytest.mark.parametrize("flavour", ROUTED_FLAVOURS)
def test_each_lane_is_served_by_its_own_version_on_every_hop(
    strict: StrictChain, flavour: str
) -> None:
    strict.apply(flavour)
    for lane, version in LANES.items():
        status, hops = strict.chain_of({"x-asm-prefer-tag": lane})
        assert status == 200, (lane, hops)
        assert hops == [(service, version) for service in CHAIN], lane


@pytest.mark.parametrize("flavour", ROUTED_FLAVOURS)
def test_a_request_no_lane_rule_matches_gets_no_route(strict: StrictChain, flavour: str) -> None:
    strict.apply(flavour)
    assert strict.chain_of()[0] == 404
    assert strict.chain_of({"x-asm-prefer-tag": "s4"})[0] == 404


@pytest.mark.parametrize("flavour", ROUTED_FLAVOURS)
def test_weighted_entry_60_20_20_keeps_every_request_in_one_version(
    strict: StrictChain, flavour: str
) -> None:
    strict.apply(flavour, weights={"s1": 60, "s2": 20, "s3": 20})

    def version_of_one(n: int) -> str:
        status, hops = strict.chain_of({"my-request-id": f"w{n}"})
        assert status == 200, hops
        versions = {version for _, version in hops}
        assert len(hops) == 3 and len(versions) == 1, f"request {n} mixed versions: {hops}"
        return versions.pop()

    with ThreadPoolExecutor(max_workers=8) as pool:
        counts = Counter(pool.map(version_of_one, range(1000), timeout=120))
    assert sum(counts.values()) == 1000
    assert 540 <= counts["v1"] <= 660, counts
    assert 150 <= counts["v2"] <= 250, counts
    assert 150 <= counts["v3"] <= 250, counts


@pytest.mark.parametrize("flavour", ROUTED_FLAVOURS)
def test_a_lane_without_a_ready_pod_answers_503_there_and_never_uses_another_lane(
    strict: StrictChain, flavour: str
) -> None:
    strict.apply(flavour, without={("mockb", "v2")})
    status, hops = strict.chain_of({"x-asm-prefer-tag": "s2"})
    assert status == 502
    assert hops == [("mocka", "v2")]
    _, body = get(strict.mesh.gateway_url, "/mock", {"x-asm-prefer-tag": "s2"})
    assert "no healthy upstream" in body
    for lane in ("s1", "s3"):
        status, hops = strict.chain_of({"x-asm-prefer-tag": lane})
        assert status == 200
        assert hops == [(service, LANES[lane]) for service in CHAIN]
