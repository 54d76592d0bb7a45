"""The module the operator serves, fetched by the local mesh from the WasmPlugins' url and
loaded into its real Envoy only when the bytes have the sha256 the WasmPlugins name.

As Istio's agent does for a sidecar, the mesh fetches an http(s) module with a sha256, checks
it and hands Envoy the file; Envoy's own remote fetch is not used, since it lets only the first
of several filters that share a module wait for the fetch and fails the others.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lanes_testbed.mesh import MeshConfigError
from lanes_testbed.processes import free_port
from lanes_testbed.wasm import STAT_PREFIX, ensure_trace_affinity
from lanes.operator.modules import ModuleServer, load_module, served_url
from lanes.render import TraceAffinityModule

from .chain import CHAIN, Chain, observations
from .test_story import V1


@pytest.fixture(scope="module")
def served() -> Iterator[TraceAffinityModule]:
    """The built module served as the operator serves it, and the WasmPlugins' url for it."""
    module = load_module(ensure_trace_affinity(progress=None), free_port(), "127.0.0.1")
    server = ModuleServer(module).start()
    try:
        yield TraceAffinityModule(url=served_url("127.0.0.1", server.port), sha256=module.sha256)
    finally:
        server.stop()


def _hits(chain: Chain) -> int:
    found = chain.mesh.stats(STAT_PREFIX.replace(".", r"\.") + "hits")
    return int(found[STAT_PREFIX + "hits"])


def _loaded_modules(chain: Chain) -> set[str]:
    """The files the Wasm filters the mesh last applied load."""
    return {f["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"]
            for listener in chain.mesh._applied["lds.json"]
            for filter_chain in listener["filter_chains"]
            for hcm in filter_chain["filters"]
            for f in hcm["typed_config"]["http_filters"] if f["name"] == "envoy.filters.http.wasm"}


def test_the_served_module_is_fetched_checked_and_keeps_the_lanes(trace_chain: Chain, served) -> None:
    chain = trace_chain
    chain.apply(chain.objects(observations("2"), "istio", trace_affinity=served),
                chain.endpoints(dict.fromkeys(CHAIN, V1), dict.fromkeys(CHAIN, True)))
    [loaded] = _loaded_modules(chain)
    assert Path(loaded).parent.name == "modules"  # the fetched copy, not the build
    assert hashlib.sha256(Path(loaded).read_bytes()).hexdigest() == served.sha256

    before = _hits(chain)
    canary = [chain.pod(s, "canary", "v2").ip for s in CHAIN]
    for _ in range(3):
        status, body = chain.get(headers={"x-asm-prefer-tag": "canary",
                                          "my-request-id": uuid.uuid4().hex})
        assert status == 200, body
        assert [h.ip for h in chain.hops(body)] == canary, body
    # The apps pass on only the trace: the module restored the lane on both calls each time.
    assert _hits(chain) - before == 2 * 3


def test_a_module_without_the_named_sha256_is_not_loaded(trace_chain: Chain, served) -> None:
    chain = trace_chain
    wrong = TraceAffinityModule(url=served.url, sha256="0" * 64)
    applied = chain.mesh._applied["lds.json"]
    with pytest.raises(MeshConfigError, match=f"has sha256 {served.sha256}, not {'0' * 64}"):
        chain.apply(chain.objects(observations("2"), "istio", trace_affinity=wrong),
                    chain.endpoints(dict.fromkeys(CHAIN, V1), dict.fromkeys(CHAIN, True)))
    assert chain.mesh._applied["lds.json"] == applied  # what was in force stays
