"""EnvoyMesh itself: updates under load, refused config, loopback only, clean stop."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from lanes_testbed.mesh import Endpoint, EnvoyMesh, MeshConfigError
from lanes_testbed.mesh.pods import serving
from lanes_testbed.processes import free_port

from .chain import CHAIN, Chain, observations

V1, V2 = "v1", "v2"


def story_configs(chain: Chain) -> list[tuple[list[dict], list[Endpoint]]]:
    """States 1-3 in both flavours: subsets, endpoints and whole object sets all change."""
    configs = []
    for flavour in ("istio", "asm"):
        for state, base, canary in (
            ("1", (V1, V1, V1), {"mocka": True}),
            ("2", (V1, V1, V1), dict.fromkeys(CHAIN, True)),
            ("3", (V1, V2, V1), {"mocka": True, "mockc": True}),
        ):
            configs.append((chain.objects(observations(state), flavour),
                            chain.endpoints(dict(zip(CHAIN, base)), canary)))
    return configs


def test_route_changes_while_requests_flow_drop_none(chain: Chain) -> None:
    configs = story_configs(chain)
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
        for flip in range(30):
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


def test_untranslatable_objects_are_refused_and_the_mesh_keeps_serving(chain: Chain) -> None:
    objects, endpoints = story_configs(chain)[1]
    chain.apply(objects, endpoints)
    bad = [dict(o) for o in objects]
    vs = next(i for i, o in enumerate(bad) if o["kind"] == "VirtualService")
    bad[vs] = {**bad[vs], "spec": {**bad[vs]["spec"], "http": [
        {**bad[vs]["spec"]["http"][0], "mirror": {"host": "mockc"}}]}}
    with pytest.raises(MeshConfigError, match="mirror not supported"):
        chain.apply(bad, endpoints)
    assert chain.get(headers={"x-asm-prefer-tag": "canary"})[0] == 200


def test_config_envoy_rejects_is_reported_and_the_old_config_stays(chain: Chain) -> None:
    objects, endpoints = story_configs(chain)[1]
    chain.apply(objects, endpoints)
    broken = {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "broken", "namespace": "istio-system"},
        "spec": {"hosts": ["broken.example"], "gateways": ["ingressgateway"],
                 "http": [{"match": [{"uri": {"regex": "("}}],
                           "route": [{"destination": {"host": "mocka"}}]}]},
    }
    with pytest.raises(MeshConfigError, match="Envoy rejected rds-gateway.json"):
        chain.apply([*objects, broken], endpoints)
    status, body = chain.get(headers={"x-asm-prefer-tag": "canary"})
    assert status == 200 and [h.version for h in chain.hops(body)] == [V2, V2, V2], body
    chain.apply(*story_configs(chain)[0])
    status, body = chain.get(headers={"x-asm-prefer-tag": "canary"})
    assert [h.version for h in chain.hops(body)] == [V2, V1, V1], body


def test_only_loopback_endpoints_are_served(chain: Chain) -> None:
    objects, _ = story_configs(chain)[0]
    with pytest.raises(ValueError, match="not loopback"):
        chain.apply(objects, [Endpoint("10.0.0.5", {"app": "mocka", "ASM_TRAFFIC_TAG": "base"})])
    with pytest.raises(ValueError, match="not loopback"):
        EnvoyMesh(Path("unused"), address="0.0.0.0")


def test_stop_leaves_no_process_and_frees_the_ports(tmp_path: Path) -> None:
    mesh = EnvoyMesh(tmp_path, gateway_port=free_port(), mesh_port=free_port())
    with mesh:
        pid = int((tmp_path / "envoy.pid").read_text())
        assert serving("127.0.0.1", mesh.options.gateway_port)
    assert not Path(f"/proc/{pid}").exists()
    assert not serving("127.0.0.1", mesh.options.gateway_port)
    assert not serving("127.0.0.1", mesh.options.mesh_port)
    assert not serving("127.0.0.1", mesh.admin_port)
    assert not (tmp_path / "envoy.pid").exists()
