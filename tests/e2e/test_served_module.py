"""The module the operator serves, fetched from the WasmPlugins' url and loaded into the
sidecars Istio's WasmPlugin handling (ECDS) selects, only when its bytes have the sha256 the
WasmPlugins name.

As Istio's agent does for a sidecar, the local istiod fetches an http(s) module with a sha256,
checks it and hands Envoy a local file.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

from lanes.render import TraceAffinityModule
from lanes_testbed.proxyconfig import config_dump
from lanes_testbed.wasm import STAT_PREFIX

from .chain import CHAIN, Chain, observations
from .test_story import V1


def _hits(chain: Chain) -> int:
    found = chain.mesh.stats(STAT_PREFIX.replace(".", r"\.") + "hits")
    return int(found.get(STAT_PREFIX + "hits", 0))


def _loaded_modules(chain: Chain) -> set[str]:
    """The files the Wasm filters of every proxy load, read from their config dumps."""
    found: set[str] = set()
    for admin in [chain.mesh.gateway_admin_url, *(p.admin_url for p in chain.mesh.pods())]:
        _walk(config_dump(admin.removeprefix("http://")), found)
    return found


def _walk(node: object, found: set[str]) -> None:
    if isinstance(node, dict):
        local = (node.get("code") or {}).get("local") if "code" in node else None
        if isinstance(local, dict) and "filename" in local:
            found.add(local["filename"])
        for value in node.values():
            _walk(value, found)
    elif isinstance(node, list):
        for value in node:
            _walk(value, found)


def test_the_served_module_is_fetched_checked_and_keeps_the_lanes(
    trace_chain: Chain, module: TraceAffinityModule
) -> None:
    chain = trace_chain
    chain.apply(chain.objects(observations("2"), "istio"),
                chain.endpoints(dict.fromkeys(CHAIN, V1), dict.fromkeys(CHAIN, True)))
    [loaded] = _loaded_modules(chain)
    assert hashlib.sha256(Path(loaded).read_bytes()).hexdigest() == module.sha256

    before = _hits(chain)
    canary = [chain.pod(s, "canary", "v2").ip for s in CHAIN]
    for _ in range(3):
        status, body = chain.get(headers={"x-asm-prefer-tag": "canary",
                                          "my-request-id": uuid.uuid4().hex})
        assert status == 200, body
        assert [h.ip for h in chain.hops(body)] == canary, body
    # The apps pass on only the trace: the module restored the lane on both calls each time.
    assert _hits(chain) - before == 2 * 3


def test_a_module_without_the_named_sha256_is_not_loaded(
    trace_chain: Chain, module: TraceAffinityModule
) -> None:
    """The WasmPlugins fail open, as lanes renders them: requests go on, without the module, so
    the lane is lost past the first hop as with no module at all."""
    chain = trace_chain
    wrong = TraceAffinityModule(url=module.url, sha256="0" * 64)
    chain.apply(chain.objects(observations("2"), "istio", trace_affinity=wrong),
                chain.endpoints(dict.fromkeys(CHAIN, V1), dict.fromkeys(CHAIN, True)))
    before = _hits(chain)
    for n in range(3):
        status, body = chain.get(headers={"x-asm-prefer-tag": "canary", "my-request-id": f"wrong-{n}"})
        assert status == 200, body
        assert [h.version for h in chain.hops(body)] == ["v2", "v1", "v1"], body
    assert _hits(chain) == before
