"""ASM's trace-ID mode on plain Istio: the story's chains with apps that pass on only the trace.

The sample pods here forward `my-request-id` and nothing else; the lane survives every hop only
because the trace-affinity module, loaded by the WasmPlugins the istio flavour renders, remembers
each trace's lane and restores it on the calls that carry the trace.
"""

from __future__ import annotations

import dataclasses
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from lanes_testbed.wasm import STAT_PREFIX

from .chain import CHAIN, Chain, observations
from .test_story import STORY, V1

def _stats(chain: Chain) -> dict[str, int]:
    found = chain.mesh.stats(STAT_PREFIX.replace(".", r"\."))
    return {k[len(STAT_PREFIX):]: int(v) for k, v in found.items() if k.startswith(STAT_PREFIX)}


def _serving(chain: Chain, lane: str, canaries: tuple[str, ...], versions: dict) -> list[str]:
    return [
        chain.pod(s, "canary", "v2").ip if lane == "canary" and s in canaries
        else chain.pod(s, "base", versions[s]).ip
        for s in CHAIN
    ]


@pytest.mark.parametrize(
    ("state", "base", "canaries", "base_chain", "canary_chain"), STORY, ids=[s[0] for s in STORY]
)
def test_story_chains_with_apps_forwarding_only_the_trace_header(
    trace_chain: Chain,
    state: str,
    base: tuple[str, ...],
    canaries: tuple[str, ...],
    base_chain: tuple[str, ...],
    canary_chain: tuple[str, ...],
) -> None:
    chain = trace_chain
    versions = dict(zip(CHAIN, base))
    chain.apply(chain.objects(observations(state), "istio"),
                chain.endpoints(versions, {s: True for s in canaries}))
    before = _stats(chain)
    for lane, expected in (("base", base_chain), ("canary", canary_chain)):
        for _ in range(3):
            trace = f"{state}-{lane}-{uuid.uuid4().hex}"
            status, body = chain.get(headers={"x-asm-prefer-tag": lane, "my-request-id": trace})
            assert status == 200, body
            hops = chain.hops(body)
            assert [h.app for h in hops] == list(CHAIN), body
            assert tuple(h.version for h in hops) == expected, f"{lane}: {body}"
            assert [h.ip for h in hops] == _serving(chain, lane, canaries, versions), body
    # Two calls per request (mocka -> mockb, mockb -> mockc) had their lane restored.
    assert _stats(chain)["hits"] - before["hits"] == 2 * 6


def test_unknown_and_missing_traces_are_misses_served_by_the_fallback(trace_chain: Chain) -> None:
    chain = trace_chain
    chain.apply(chain.objects(observations("2"), "istio"),
                chain.endpoints(dict.fromkeys(CHAIN, V1), dict.fromkeys(CHAIN, True)))
    base = [chain.pod(s, "base", V1).ip for s in CHAIN]
    before = _stats(chain)
    for headers in ({"my-request-id": f"unknown-{uuid.uuid4().hex}"}, {}):
        status, body = chain.get(headers=headers, trace=False)
        assert status == 200, body
        assert [h.ip for h in chain.hops(body)] == base, body
    # Each request misses wherever the module runs: at the gateway, and in each pod's sidecar on
    # its inbound request and (but mockc's) on its outbound call: 6 per request.
    assert _stats(chain)["misses"] - before["misses"] == 12


def test_concurrent_traces_in_several_lanes_stay_in_their_lane(trace_chain: Chain) -> None:
    """1,200 requests, each with its own trace, canary and base interleaved, 16 at a time."""
    chain = trace_chain
    canaries = CHAIN
    versions = dict.fromkeys(CHAIN, V1)
    chain.apply(chain.objects(observations("2"), "istio"),
                chain.endpoints(versions, dict.fromkeys(canaries, True)))
    expected = {lane: _serving(chain, lane, canaries, versions) for lane in ("base", "canary")}

    def one(n: int) -> tuple[str, list[str], int, str]:
        lane = ("base", "canary")[n % 2]
        trace = f"c{n}-{uuid.uuid4().hex}"
        # A generous timeout: the machine's load, not the mesh, decides how long a burst takes.
        status, body = chain.get(headers={"x-asm-prefer-tag": lane, "my-request-id": trace},
                                 timeout=60)
        return lane, [h.ip for h in chain.hops(body)], status, trace

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(1200)))
    assert [r for r in results if r[2] != 200] == []
    outside = [r for r in results if r[1] != expected[r[0]]]
    assert outside == [], f"{len(outside)} of {len(results)} served outside their lane; {_stats(chain)}"


def test_with_a_low_entry_limit_evictions_are_counted_and_base_is_never_disturbed(
    trace_chain: Chain,
) -> None:
    """16 entries, 16 traces in flight at once: some canary requests lose their lane past
    the first hop (served by the fallback), base requests never leave base, Envoy stays up."""
    chain = trace_chain
    versions = dict.fromkeys(CHAIN, V1)
    tight = dataclasses.replace(chain.module, max_entries=16)
    chain.apply(chain.objects(observations("2"), "istio", trace_affinity=tight),
                chain.endpoints(versions, dict.fromkeys(CHAIN, True)))
    base = _serving(chain, "base", CHAIN, versions)
    before = _stats(chain)

    def one(n: int) -> tuple[str, list[str], int]:
        lane = ("base", "canary")[n % 2]
        status, body = chain.get(headers={"x-asm-prefer-tag": lane,
                                          "my-request-id": f"e{n}-{uuid.uuid4().hex}"},
                                 timeout=60)
        return lane, [h.ip for h in chain.hops(body)], status

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(600)))
    after = _stats(chain)
    assert [r for r in results if r[2] != 200] == []
    assert [r for r in results if r[0] == "base" and r[1] != base] == []
    assert after["evictions"] - before["evictions"] >= 600 - 16
    assert after["remembered"] - before["remembered"] >= 600
    status, body = chain.get(headers={"x-asm-prefer-tag": "canary"})
    assert status == 200 and [h.ip for h in chain.hops(body)] == _serving(
        chain, "canary", CHAIN, versions), body


def test_without_the_module_the_lane_is_lost_after_the_first_hop(trace_chain: Chain) -> None:
    """What the module fixes: with the same apps and no WasmPlugin, later hops fall to base.

    """
    chain = trace_chain
    chain.apply(chain.objects(observations("2"), "istio", trace_affinity=None),
                chain.endpoints(dict.fromkeys(CHAIN, V1), dict.fromkeys(CHAIN, True)))
    status, body = chain.get(headers={"x-asm-prefer-tag": "canary", "my-request-id": "lost-1"})
    assert status == 200, body
    assert [h.version for h in chain.hops(body)] == ["v2", "v1", "v1"], body
