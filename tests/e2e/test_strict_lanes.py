"""Strict lane mode on the local mesh: each hop stays in the calling pod's lane, no header passed.

A two-service chain (mocka -> mockb) with a pod of each per lane; the apps pass nothing on
(`forward=none`), so only `sourceLabels` routing, which Istio applies to the sidecars of pods
with those labels, keeps a request in its lane. Requests go straight to a lane's mocka pod,
which calls mockb through its own sidecar.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lanes_testbed.mesh import Endpoint, LocalMesh, PodProxy
from lanes_testbed.mesh.pods import free_block, start_mock
from lanes_testbed.processes import Child, stop_all

from .chain import HOP, get

LANES = ("s1", "s2", "s3")
SERVICES = ("mocka", "mockb")
UPSTREAM = {"mocka": "http://mockb:8000/", "mockb": ""}
TAG = "ASM_TRAFFIC_TAG"


def fqdn(service: str) -> str:
    return f"{service}.default.svc.cluster.local"


@dataclass(frozen=True)
class LanePod:
    service: str
    lane: str | None
    ip: str

    def labels(self) -> dict[str, str]:
        return {"app": self.service, **({TAG: self.lane} if self.lane else {})}

    def endpoint(self) -> Endpoint:
        return Endpoint(self.ip, self.labels())


@dataclass(frozen=True)
class Pods:
    lanes: dict[tuple[str, str], LanePod]
    outsider: LanePod
    second_s1: LanePod
    outsider_proxy: PodProxy

    def endpoints(self, lanes: tuple[str, ...], *extra: LanePod) -> list[Endpoint]:
        chosen = [self.lanes[(s, lane)] for lane in lanes for s in SERVICES]
        return [p.endpoint() for p in (*chosen, self.outsider, *extra)]


def strict_objects(lanes: tuple[str, ...]) -> list[dict]:
    """Services, lane subsets and per service the strict-mode VirtualService (no default)."""
    out: list[dict] = []
    for service in SERVICES:
        host = fqdn(service)
        dest = [{"destination": {"host": host, "subset": lane}} for lane in lanes]
        http = [{"name": lane, "match": [{"sourceLabels": {TAG: lane}}], "route": [d]}
                for lane, d in zip(lanes, dest)]
        http += [{"name": f"{lane}-header",
                  "match": [{"headers": {"x-asm-prefer-tag": {"exact": lane}}}], "route": [d]}
                 for lane, d in zip(lanes, dest)]
        meta = {"name": service, "namespace": "default"}
        out += [
            {"apiVersion": "v1", "kind": "Service", "metadata": meta,
             "spec": {"selector": {"app": service}, "ports": [{"name": "http", "port": 8000}]}},
            {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": meta,
             "spec": {"host": host,
                      "subsets": [{"name": lane, "labels": {TAG: lane}} for lane in lanes]}},
            {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": meta,
             "spec": {"hosts": [host], "http": http}},
        ]
    return out


@pytest.fixture(scope="module")
def pods(mesh: LocalMesh, e2e_dir: Path) -> Iterator[Pods]:
    """A mocka and a mockb pod per lane, a lane-less mocka, and a spare mocka for lane s1."""
    block = free_block()
    children: list[Child] = []
    made: list[LanePod] = []
    proxies: list[PodProxy] = []
    wanted = [(s, lane) for lane in LANES for s in SERVICES] + [("mocka", None), ("mocka", "s1")]
    try:
        for n, (service, lane) in enumerate(wanted, start=1):
            pod = LanePod(service, lane, f"{block}.{n}")
            name = f"strict-{service}-{lane or 'none'}-{n}"
            proxies.append(mesh.add_pod(name, pod.labels(), pod.ip))
            env = {"app": service, "version": "v1", "upstream_url": UPSTREAM[service],
                   "forward": "none", **proxies[-1].env()}
            children.append(start_mock(name, pod.ip, env, e2e_dir / "strict-pods"))
            made.append(pod)
        yield Pods({(p.service, p.lane): p for p in made[:len(LANES) * 2]}, made[-2], made[-1],
                   proxies[-2])
    finally:
        stop_all(children)


def hops(body: str) -> list[tuple[str, str]]:
    return [(app, ip) for app, _, ip in HOP.findall(body)]


def through_sidecar(proxy: PodProxy, host: str, headers: dict[str, str]) -> tuple[int, str]:
    """A request into a pod's sidecar, as the pod's app would call `host`."""
    port = int(host.rpartition(":")[2])
    conn = http.client.HTTPConnection(proxy.egress, port, timeout=10)
    try:
        conn.request("GET", "/", headers={"Host": host, **headers})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def test_each_lane_entry_reaches_the_callee_of_its_own_lane(mesh: LocalMesh, pods: Pods) -> None:
    mesh.update(strict_objects(LANES), pods.endpoints(LANES))
    for lane in LANES:
        entry, callee = pods.lanes[("mocka", lane)], pods.lanes[("mockb", lane)]
        for _ in range(5):
            status, body = get(f"http://{entry.ip}:8000", "/")
            assert status == 200, body
            assert hops(body) == [("mocka", entry.ip), ("mockb", callee.ip)], body


def test_a_caller_outside_every_lane_needs_the_lane_header(mesh: LocalMesh, pods: Pods) -> None:
    mesh.update(strict_objects(LANES), pods.endpoints(LANES))
    status, body = get(f"http://{pods.outsider.ip}:8000", "/")
    assert status == 502 and hops(body) == [("mocka", pods.outsider.ip)], body
    assert through_sidecar(pods.outsider_proxy, "mockb:8000", {})[0] == 404
    status, body = through_sidecar(pods.outsider_proxy, "mockb:8000", {"x-asm-prefer-tag": "s2"})
    assert status == 200 and hops(body) == [("mockb", pods.lanes[("mockb", "s2")].ip)], body


class Load:
    """Workers sending requests into lane entry pods over kept-alive connections.

    A connection to a mocka pod is served by one of its threads, which keeps its own
    connection to the mesh listener: so these are the mesh connections a listener change
    could drop.
    """

    def __init__(self, pods: Pods, lanes: tuple[str, ...], per_lane: int = 2) -> None:
        self.pods = pods
        self.stop = threading.Event()
        self.results: list[tuple[str, int, str]] = []
        self.lock = threading.Lock()
        self.workers = [threading.Thread(target=self._send, args=(lane,))
                        for lane in lanes for _ in range(per_lane)]

    def __enter__(self) -> Load:
        for worker in self.workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for worker in self.workers:
            worker.join(timeout=30)

    def _send(self, lane: str) -> None:
        entry = self.pods.lanes[("mocka", lane)]
        conn = http.client.HTTPConnection(entry.ip, 8000, timeout=10)
        try:
            while not self.stop.is_set():
                try:
                    conn.request("GET", "/")
                    response = conn.getresponse()
                    status, body = response.status, response.read().decode()
                except (OSError, http.client.HTTPException) as error:
                    conn.close()
                    status, body = 0, repr(error)
                with self.lock:
                    self.results.append((lane, status, body))
        finally:
            conn.close()

    def check(self, minimum: int) -> None:
        """No request failed and each stayed in its lane, end to end."""
        assert len(self.results) >= minimum, f"only {len(self.results)} requests were sent"
        failed = [r for r in self.results if r[1] != 200]
        assert not failed, f"{len(failed)} of {len(self.results)} failed, e.g. {failed[:3]}"
        for lane, _, body in self.results:
            ips = [ip for _, ip in hops(body)]
            assert ips == [self.pods.lanes[("mocka", lane)].ip,
                           self.pods.lanes[("mockb", lane)].ip], body


def test_a_new_lane_joining_while_requests_flow_loses_none(mesh: LocalMesh, pods: Pods) -> None:
    old, new = LANES[:2], LANES
    mesh.update(strict_objects(old), pods.endpoints(old))
    with Load(pods, old) as load:
        for _ in range(6):
            time.sleep(0.15)
            mesh.update(strict_objects(new), pods.endpoints(new))
            time.sleep(0.15)
            mesh.update(strict_objects(old), pods.endpoints(old))
        time.sleep(0.2)
    load.check(minimum=100)
    mesh.update(strict_objects(new), pods.endpoints(new))
    entry, callee = pods.lanes[("mocka", "s3")], pods.lanes[("mockb", "s3")]
    status, body = get(f"http://{entry.ip}:8000", "/")
    assert status == 200 and hops(body) == [("mocka", entry.ip), ("mockb", callee.ip)], body


def test_a_pod_joining_a_busy_lane_loses_none(mesh: LocalMesh, pods: Pods) -> None:
    """A second s1 mocka pod joins and leaves the endpoints while both lanes are busy."""
    mesh.update(strict_objects(LANES), pods.endpoints(LANES))
    with Load(pods, ("s1", "s2")) as load:
        for _ in range(4):
            time.sleep(0.2)
            mesh.update(strict_objects(LANES), pods.endpoints(LANES, pods.second_s1))
            time.sleep(0.5)
            mesh.update(strict_objects(LANES), pods.endpoints(LANES))
        time.sleep(0.2)
    load.check(minimum=100)
    # Its sidecar carries lane s1's labels, so its calls stay in s1 whether it serves or not.
    status, body = get(f"http://{pods.second_s1.ip}:8000", "/")
    assert status == 200, body
    assert hops(body) == [("mocka", pods.second_s1.ip), ("mockb", pods.lanes[("mockb", "s1")].ip)]
