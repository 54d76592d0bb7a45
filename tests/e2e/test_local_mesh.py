"""The local mesh itself: config from Istio's own code, changes under load, rejected config, stop.

What a pod's sidecar serves must be what Istio generates: its clusters are named as Istio names
them, and a VirtualService change is in force on every sidecar once the istiod's push is
acknowledged.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from lanes_testbed.mesh import Endpoint, LocalMesh
from lanes_testbed.mesh.pods import serving
from lanes_testbed.processes import free_port
from lanes_testbed.proxyconfig import cluster_rows, config_dump, route_rows

from lanes.api.observations import Observations, TrafficStep

from .chain import CHAIN, Chain, observations

V1, V2 = "v1", "v2"
GATEWAY = {"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
           "metadata": {"name": "gateway", "namespace": "istio-system"},
           "spec": {"selector": {"istio": "ingressgateway"}, "servers": [
               {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]}}


def story_configs(chain: Chain) -> list[tuple[list[dict], list[Endpoint]]]:
    """States 1-3: subsets, endpoints and whole object sets all change."""
    configs = []
    for state, base, canary in (
        ("1", (V1, V1, V1), {"mocka": True}),
        ("2", (V1, V1, V1), dict.fromkeys(CHAIN, True)),
        ("3", (V1, V2, V1), {"mocka": True, "mockc": True}),
    ):
        configs.append((chain.objects(observations(state), "istio"),
                        chain.endpoints(dict(zip(CHAIN, base)), canary)))
    return configs


def test_a_sidecars_config_is_istios_and_a_change_is_in_force_after_one_push(chain: Chain) -> None:
    objects, endpoints = story_configs(chain)[1]
    chain.apply(objects, endpoints)
    mocka = next(p for p in chain.mesh.pods() if p.ip == chain.pod("mocka", "base", V1).ip)
    admin = mocka.admin_url.removeprefix("http://")
    clusters = {name for name, _ in cluster_rows(config_dump(admin))}
    for lane in ("base", "canary"):
        assert f"outbound|8000|{lane}|mockb.default.svc.cluster.local" in clusters, clusters
    # Istio's name for a route table of outbound port 8000, and its own virtual host names.
    tables = {(table, vhost) for table, vhost, *_ in route_rows(config_dump(admin))}
    assert ("8000", "mockb.default.svc.cluster.local:8000") in tables, tables

    # mockb's canary leaves the lane in state 1: the next push takes its subset away.
    objects, endpoints = story_configs(chain)[0]
    chain.apply(objects, endpoints)
    status, body = chain.get(headers={"x-asm-prefer-tag": "canary"})
    assert status == 200 and [h.version for h in chain.hops(body)] == [V2, V1, V1], body


def test_route_changes_while_requests_flow_drop_none(chain: Chain) -> None:
    """mockb's traffic step moves between 10, 50 and 90 % while tagged requests flow: routes
    change on every sidecar, the subsets they use stay, and no request fails.

    (Istio pushes clusters before routes, so a change that removes a subset its routes still
    name fails the requests routed there in between; lanes' releases move routes away from a
    lane before its pods go, see routeSettle.)
    """
    ready = Observations(ready={f"default/{s}": ["base", "canary"] for s in CHAIN})
    endpoints = chain.endpoints(dict.fromkeys(CHAIN, V1), dict.fromkeys(CHAIN, True))
    configs = [
        (chain.objects(Observations(ready=ready.ready, traffic={
            "default/mockb": TrafficStep(lane="canary", weight=weight)}), "istio"), endpoints)
        for weight in (10, 50, 90)
    ]
    chain.apply(*configs[0])
    canary_ips = {p.ip for p in chain.pods if p.lane == "canary"}
    stop = threading.Event()
    results: list[tuple[str, int, str]] = []
    lock = threading.Lock()

    def send(worker: int) -> None:
        n = 0
        while not stop.is_set() and n < 1000:
            lane = ("base", "canary")[(worker + n) % 2]
            status, body = chain.get(headers={"x-asm-prefer-tag": lane})
            with lock:
                results.append((lane, status, body))
            n += 1

    workers = [threading.Thread(target=send, args=(w,)) for w in range(6)]
    for worker in workers:
        worker.start()
    try:
        for flip in range(15):
            chain.apply(*configs[flip % len(configs)])
            time.sleep(0.05)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
    assert len(results) >= 200, f"only {len(results)} requests were sent"
    failed = [(lane, status, body) for lane, status, body in results if status != 200]
    assert not failed, f"{len(failed)} of {len(results)} failed, e.g. {failed[:3]}"
    for lane, _, body in results:
        hops = chain.hops(body)
        assert [h.app for h in hops] == list(CHAIN), body
        if lane == "base":
            assert not canary_ips & {h.ip for h in hops}, f"base request in canary: {body}"


def test_an_object_istio_refuses_is_named_and_the_rest_keeps_serving(
    chain: Chain, capsys: pytest.CaptureFixture[str]
) -> None:
    objects, endpoints = story_configs(chain)[1]
    chain.apply(objects, endpoints)
    broken = {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "broken", "namespace": "istio-system"},
        "spec": {"hosts": ["broken.example"], "gateways": ["ingressgateway"],
                 "http": [{"match": [{"uri": {"regex": "("}}],
                           "route": [{"destination": {"host": "mocka.default.svc.cluster.local"}}]}]},
    }
    chain.apply([*objects, broken], endpoints)
    assert "skipped VirtualService istio-system/broken: configuration is invalid" in capsys.readouterr().err
    status, body = chain.get(headers={"x-asm-prefer-tag": "canary"})
    assert status == 200 and [h.version for h in chain.hops(body)] == [V2, V2, V2], body
    chain.apply(*story_configs(chain)[0])
    status, body = chain.get(headers={"x-asm-prefer-tag": "canary"})
    assert [h.version for h in chain.hops(body)] == [V2, V1, V1], body


def test_stop_leaves_no_process_and_frees_the_ports(tmp_path: Path) -> None:
    mesh = LocalMesh(tmp_path, gateway_port=free_port())
    with mesh:
        pod = mesh.add_pod("lonely", {"app": "lonely"}, "127.0.0.1")
        mesh.update([GATEWAY], [])
        pids = [int(p.read_text()) for p in tmp_path.glob("**/*.pid")]
        assert len(pids) == 3  # the istiod, the gateway and the pod's sidecar
        assert serving("127.0.0.1", mesh.gateway_port)
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
    assert not serving("127.0.0.1", mesh.gateway_port)
    assert not serving(pod.address, 15000)
    assert list(tmp_path.glob("**/*.pid")) == []
