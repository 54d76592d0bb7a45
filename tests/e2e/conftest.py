"""Fixtures for end-to-end tests: one real Envoy and real sample-service processes on loopback.

Per service there are three processes, the pods any story state needs: a base pod on image
1.0 (v1), a base pod on image 2.0 (v2, after a promotion) and a canary pod on 2.0. A state
picks which of them are the service's endpoints; the others idle. Everything listens on
127.0.N.x in a block no other listener uses, and nothing outlives the session.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lanes_testbed.mesh import EnvoyMesh
from lanes_testbed.mesh.pods import free_block, start_mock
from lanes_testbed.processes import Child, free_port, stop

from .chain import CHAIN, IMAGE, UPSTREAM, Chain, Pod

PODS = (("base", "1.0"), ("base", "2.0"), ("canary", "2.0"))
HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: runs real Envoy and sample-service processes")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here runs real processes, so `-m 'not e2e'` leaves them out."""
    for item in items:
        if HERE in Path(item.fspath).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def e2e_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def mesh(e2e_dir: Path) -> Iterator[EnvoyMesh]:
    """One Envoy for the session, on ports nobody else uses."""
    envoy = EnvoyMesh(e2e_dir / "mesh", gateway_port=free_port(), mesh_port=free_port())
    envoy.start()
    try:
        yield envoy
    finally:
        envoy.stop()


@pytest.fixture(scope="session")
def chain(mesh: EnvoyMesh, e2e_dir: Path) -> Iterator[Chain]:
    """The nine sample-service processes of the story, calling each other through the mesh."""
    yield from _chain(mesh, e2e_dir / "pods", {})


@pytest.fixture(scope="session")
def trace_chain(mesh: EnvoyMesh, e2e_dir: Path) -> Iterator[Chain]:
    """The story's pods as an ASM application in trace-ID mode: they pass on only the trace."""
    yield from _chain(mesh, e2e_dir / "trace-pods", {"forward": "trace"})


def _chain(mesh: EnvoyMesh, pods_dir: Path, extra: dict[str, str]) -> Iterator[Chain]:
    block = free_block()
    children: list[Child] = []
    pods: list[Pod] = []
    try:
        for n, (service, (lane, tag)) in enumerate(
            ((s, p) for s in CHAIN for p in PODS), start=1
        ):
            ip = f"{block}.{n}"
            env = {"app": service, "version": "v1", "LANES_IMAGE": f"{IMAGE}:{tag}",
                   "upstream_url": UPSTREAM[service], "HTTP_PROXY": mesh.proxy_url, **extra}
            children.append(start_mock(f"{service}-{lane}-{tag}", ip, env, pods_dir))
            pods.append(Pod(service, lane, "v1" if tag == "1.0" else "v2", ip))
        yield Chain(pods, mesh)
    finally:
        for child in children:
            stop(child)
