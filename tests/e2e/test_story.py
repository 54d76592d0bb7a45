"""Every chain of every state of the mock-chain story, through the local mesh's sidecars."""

from __future__ import annotations

import pytest

from .chain import CHAIN, ROUTED_FLAVOURS, Chain, observations

V1, V2 = "v1", "v2"
# state, base pods' version (a, b, c), services with canary pods, chain for base, for canary;
# the chains are the story table's (asm-mock-chain-story.md).
STORY = [
    ("0", (V1, V1, V1), (), (V1, V1, V1), (V1, V1, V1)),
    ("1", (V1, V1, V1), ("mocka",), (V1, V1, V1), (V2, V1, V1)),
    ("2", (V1, V1, V1), CHAIN, (V1, V1, V1), (V2, V2, V2)),
    ("3", (V1, V2, V1), ("mocka", "mockc"), (V1, V2, V1), (V2, V2, V2)),
    ("4", (V2, V2, V2), (), (V2, V2, V2), (V2, V2, V2)),
    ("U", (V1, V1, V1), ("mockb", "mockc"), (V1, V1, V1), (V1, V2, V2)),
]


@pytest.mark.parametrize("flavour", ROUTED_FLAVOURS)
@pytest.mark.parametrize(
    ("state", "base", "canaries", "base_chain", "canary_chain"), STORY, ids=[s[0] for s in STORY]
)
def test_story_chains_through_the_gateway(
    chain: Chain,
    flavour: str,
    state: str,
    base: tuple[str, ...],
    canaries: tuple[str, ...],
    base_chain: tuple[str, ...],
    canary_chain: tuple[str, ...],
) -> None:
    observed = observations(state)
    assert {s for s in CHAIN if "canary" in observed.lanes_of(f"default/{s}")} == set(canaries)
    versions = dict(zip(CHAIN, base))
    chain.apply(chain.objects(observed, flavour),
                chain.endpoints(versions, {s: True for s in canaries}))
    for lane, expected in (("base", base_chain), ("canary", canary_chain)):
        for request_id in range(3):
            status, body = chain.get(
                headers={"x-asm-prefer-tag": lane, "my-request-id": f"{state}-{lane}-{request_id}"}
            )
            assert status == 200, body
            hops = chain.hops(body)
            assert [h.app for h in hops] == list(CHAIN), body
            assert tuple(h.version for h in hops) == expected, f"{lane}: {body}"
            serving = [
                chain.pod(s, "canary", V2) if lane == "canary" and s in canaries
                else chain.pod(s, "base", versions[s])
                for s in CHAIN
            ]
            assert [h.ip for h in hops] == [p.ip for p in serving], f"{lane}: {body}"


@pytest.mark.parametrize("flavour", ROUTED_FLAVOURS)
def test_requests_outside_the_lane_rules_get_404(chain: Chain, flavour: str) -> None:
    chain.apply(chain.objects(observations("2"), flavour),
                chain.endpoints(dict.fromkeys(CHAIN, V1), dict.fromkeys(CHAIN, True)))
    assert chain.get("/other", {"x-asm-prefer-tag": "base"})[0] == 404
    assert chain.get("/other")[0] == 404
    assert chain.get("/mock", {"x-asm-prefer-tag": "dev"})[0] == 404


@pytest.mark.parametrize("flavour", ROUTED_FLAVOURS)
def test_untagged_requests_reach_base_only(chain: Chain, flavour: str) -> None:
    """The istio flavour routes untagged requests on the lanes' paths to the fallback lane and
    never into canary pods."""
    chain.apply(chain.objects(observations("2"), flavour),
                chain.endpoints(dict.fromkeys(CHAIN, V1), dict.fromkeys(CHAIN, True)))
    base = [chain.pod(s, "base", V1).ip for s in CHAIN]
    for n in range(20):
        status, body = chain.get("/mock", {"my-request-id": f"u{n}"})
        assert status == 200, body
        assert [h.ip for h in chain.hops(body)] == base, body
