"""Fixtures for end-to-end tests: the local mesh (Istio's own xDS generation, a gateway and a
sidecar per pod) and real sample-service processes on loopback.

Per service there are three pods, the ones any story state needs: a base pod on image 1.0
(v1), a base pod on image 2.0 (v2, after a promotion) and a canary pod on 2.0, each an app
process with its own sidecar Envoy. A state picks which of them are the service's endpoints;
the others idle. Everything listens on 127.N.M.x in blocks no other listener uses, and
nothing outlives the session.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lanes_testbed.mesh import LocalMesh
from lanes_testbed.mesh.pods import free_block, start_mock
from lanes_testbed.processes import Child, free_port, stop_all
from lanes_testbed.wasm import ensure_trace_affinity
from lanes.operator.modules import ModuleServer, load_module, served_url
from lanes.render import TraceAffinityModule

from .chain import CHAIN, IMAGE, UPSTREAM, Chain, Pod

PODS = (("base", "1.0"), ("base", "2.0"), ("canary", "2.0"))
HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: runs the local istiod, Envoy and sample-service processes")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here runs real processes, so `-m 'not e2e'` leaves them out."""
    for item in items:
        if HERE in Path(item.fspath).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def e2e_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def mesh(e2e_dir: Path) -> Iterator[LocalMesh]:
    """One local mesh for the session, fed by `update`; its gateway on a port nobody else uses."""
    with LocalMesh(e2e_dir / "mesh", gateway_port=free_port()) as local:
        yield local


@pytest.fixture(scope="session")
def module() -> Iterator[TraceAffinityModule]:
    """The trace-affinity module served as the operator serves it, named by url and sha256.

    The sample group is in ASM's trace-ID mode, so every state's WasmPlugins name it; the local
    istiod fetches it from there and checks its digest, as istio-agent does.
    """
    loaded = load_module(ensure_trace_affinity(progress=None), free_port(), "127.0.0.1")
    server = ModuleServer(loaded).start()
    try:
        yield TraceAffinityModule(url=served_url("127.0.0.1", server.port), sha256=loaded.sha256)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def chain(mesh: LocalMesh, module: TraceAffinityModule, e2e_dir: Path) -> Iterator[Chain]:
    """The nine sample-service pods of the story, calling each other through their sidecars."""
    yield from _chain(mesh, module, e2e_dir / "pods", {})


@pytest.fixture(scope="session")
def trace_chain(mesh: LocalMesh, module: TraceAffinityModule, e2e_dir: Path) -> Iterator[Chain]:
    """The story's pods as an ASM application in trace-ID mode: they pass on only the trace."""
    yield from _chain(mesh, module, e2e_dir / "trace-pods", {"forward": "trace"})


def _chain(mesh: LocalMesh, module: TraceAffinityModule, pods_dir: Path,
           extra: dict[str, str]) -> Iterator[Chain]:
    block = free_block()
    children: list[Child] = []
    pods: list[Pod] = []
    try:
        for n, (service, (lane, tag)) in enumerate(
            ((s, p) for s in CHAIN for p in PODS), start=1
        ):
            pod = Pod(service, lane, "v1" if tag == "1.0" else "v2", f"{block}.{n}")
            name = f"{service}-{lane}-{pod.version}-{pods_dir.name}"
            proxy = mesh.add_pod(name, pod.labels(), pod.ip)
            env = {"app": service, "version": "v1", "LANES_IMAGE": f"{IMAGE}:{tag}",
                   "upstream_url": UPSTREAM[service], **proxy.env(), **extra}
            children.append(start_mock(name, pod.ip, env, pods_dir))
            pods.append(pod)
        yield Chain(pods, mesh, module)
    finally:
        stop_all(children)
