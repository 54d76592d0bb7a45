"""Lane behaviour beyond the story table: weighted entry and fallback where a lane is absent."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from lanes.api.observations import Observations

from .chain import CHAIN, ROUTED_FLAVOURS, Chain

V1, V2 = "v1", "v2"
ALL_CANARY = dict.fromkeys(CHAIN, True)
BASE_V1 = dict.fromkeys(CHAIN, V1)


@pytest.mark.parametrize("flavour", ROUTED_FLAVOURS)
def test_weighted_entry_sends_a_fifth_into_canary_and_keeps_each_request_in_its_lane(
    chain: Chain, flavour: str
) -> None:
    observed = Observations(ready={f"default/{s}": ["base", "canary"] for s in CHAIN})
    chain.apply(chain.objects(observed, flavour, weighted=20),
                chain.endpoints(BASE_V1, ALL_CANARY))
    lanes = {
        "base": [chain.pod(s, "base", V1).ip for s in CHAIN],
        "canary": [chain.pod(s, "canary", V2).ip for s in CHAIN],
    }

    def lane_of_one(n: int) -> str:
        status, body = chain.get(headers={"my-request-id": f"w{n}"})
        assert status == 200, body
        ips = [h.ip for h in chain.hops(body)]
        found = [lane for lane, chain_ips in lanes.items() if ips == chain_ips]
        assert found, f"request {n} left its lane: {body}"
        return found[0]

    with ThreadPoolExecutor(max_workers=8) as pool:
        counts = Counter(pool.map(lane_of_one, range(1000), timeout=120))
    assert sum(counts.values()) == 1000
    assert 150 <= counts["canary"] <= 250, counts


@pytest.mark.parametrize("flavour", ROUTED_FLAVOURS)
def test_lane_without_a_version_of_a_service_uses_base_there_and_returns_after(
    chain: Chain, flavour: str
) -> None:
    present = {"mocka": True, "mockb": False, "mockc": True}
    observed = Observations(
        ready={f"default/{s}": ["base", "canary"] if on else ["base"] for s, on in present.items()}
    )
    chain.apply(chain.objects(observed, flavour), chain.endpoints(BASE_V1, present))
    status, body = chain.get(headers={"x-asm-prefer-tag": "canary"})
    assert status == 200, body
    assert [h.ip for h in chain.hops(body)] == [
        chain.pod("mocka", "canary", V2).ip,
        chain.pod("mockb", "base", V1).ip,
        chain.pod("mockc", "canary", V2).ip,
    ], body


def test_istio_subset_without_ready_pods_answers_503_as_istio_does(chain: Chain) -> None:
    observed = Observations(ready={f"default/{s}": ["base", "canary"] for s in CHAIN})
    chain.apply(chain.objects(observed, "istio"),
                chain.endpoints(BASE_V1, {"mocka": True, "mockc": True}))
    status, body = chain.get(headers={"x-asm-prefer-tag": "canary"})
    assert status == 502, body
    assert body.startswith(f"-> mocka(version: v2, ip: {chain.pod('mocka', 'canary', V2).ip})")
    assert "no healthy upstream" in body


def test_a_traffic_step_sends_its_share_of_untagged_requests_to_the_canary_only_there(
    chain: Chain,
) -> None:
    """mockb's release at 30%: about 30% of untagged requests are served by mockb's canary,
    mocka and mockc stay on base, and canary-tagged requests keep their lane."""
    from lanes.api.observations import TrafficStep

    observed = Observations(
        ready={f"default/{s}": ["base", "canary"] for s in CHAIN},
        traffic={"default/mockb": TrafficStep(lane="canary", weight=30)},
    )
    chain.apply(chain.objects(observed, "istio"), chain.endpoints(BASE_V1, ALL_CANARY))
    base = {s: chain.pod(s, "base", V1).ip for s in CHAIN}
    canary_b = chain.pod("mockb", "canary", V2).ip

    def mockb_of_one(n: int) -> str:
        status, body = chain.get(headers={"my-request-id": f"t{n}"})
        assert status == 200, body
        ips = [h.ip for h in chain.hops(body)]
        assert ips[0] == base["mocka"] and ips[2] == base["mockc"], body
        assert ips[1] in (base["mockb"], canary_b), body
        return "canary" if ips[1] == canary_b else "base"

    with ThreadPoolExecutor(max_workers=8) as pool:
        counts = Counter(pool.map(mockb_of_one, range(1000), timeout=120))
    assert 240 <= counts["canary"] <= 360, counts
    status, body = chain.get(headers={"x-asm-prefer-tag": "canary"})
    assert [h.ip for h in chain.hops(body)] == [chain.pod(s, "canary", V2).ip for s in CHAIN], body
