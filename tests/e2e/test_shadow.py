"""A lane's shadow step through real Envoys: the gateway copies untagged requests into the lane,
every hop of a copy stays in the lane, and the client only ever sees base's answers.

Requests are counted per pod by each pod's sidecar (its inbound cluster's requests), so a copy
reaching a base pod would show as a base count above the number of requests sent.
"""

from __future__ import annotations

import pytest

from lanes.api.observations import Observations, TrafficStep

from .chain import CHAIN, Chain, served, until

V1, V2 = "v1", "v2"
BASE_V1 = dict.fromkeys(CHAIN, V1)
SENT = 60
# The lane has new pods of mocka and mockb, none of mockc: a copy's call to mockc is where
# a chain-wide shadow must stop (or, when the release allows it, fall back to base).
IN_LANE = {"mocka": True, "mockb": True, "mockc": False}


def _served(chain: Chain) -> dict[tuple[str, str], int]:
    """Requests each pod's app was handed by its sidecar, by (service, lane)."""
    pods = {p.ip: p for p in chain.mesh.pods()}
    counts = {}
    for service in CHAIN:
        for lane, version in (("base", V1), ("canary", V2)):
            proxy = pods[chain.pod(service, lane, version).ip]
            counts[(service, lane)] = served(chain.mesh, proxy.admin_url)
    return counts


def _shadow(chain: Chain, fallback_to_base: bool) -> dict[tuple[str, str], int]:
    """Apply the shadow step, send SENT untagged requests; what each pod served meanwhile.

    Every answer must be base's chain end to end: the client never sees a copy's answer.
    """
    observed = Observations(
        ready={f"default/{s}": ["base", "canary"] if on else ["base"] for s, on in IN_LANE.items()},
        traffic={"default/mocka": TrafficStep(lane="canary", enter=True, mirror=100,
                                              fallback_to_base=fallback_to_base)},
    )
    chain.apply(chain.objects(observed, "istio"), chain.endpoints(BASE_V1, IN_LANE))
    base = [chain.pod(s, "base", V1).ip for s in CHAIN]
    before = _served(chain)
    for n in range(SENT):
        status, body = chain.get()
        assert status == 200, body
        assert [h.ip for h in chain.hops(body)] == base, f"request {n}: {body}"
    # A copy is sent beside its original, so it may still be in flight when the client has
    # its answer: wait for the lane's first hop to have served every copy.
    until(lambda: _served(chain)[("mocka", "canary")] - before[("mocka", "canary")] >= SENT,
          "every copy to reach the lane", timeout=30)
    after = _served(chain)
    return {pod: after[pod] - before[pod] for pod in after}


def test_copies_stay_in_the_lane_and_stop_where_it_has_no_pod(chain: Chain) -> None:
    counts = _shadow(chain, fallback_to_base=False)
    assert counts == {
        ("mocka", "base"): SENT, ("mockb", "base"): SENT, ("mockc", "base"): SENT,
        ("mocka", "canary"): SENT, ("mockb", "canary"): SENT, ("mockc", "canary"): 0,
    }, counts


def test_copies_may_fall_back_to_base_where_the_release_allows(chain: Chain) -> None:
    counts = _shadow(chain, fallback_to_base=True)
    assert counts[("mocka", "base")] == SENT and counts[("mockb", "base")] == SENT, counts
    assert counts[("mocka", "canary")] == SENT and counts[("mockb", "canary")] == SENT, counts
    assert counts[("mockc", "base")] == 2 * SENT, counts
    assert counts[("mockc", "canary")] == 0, counts


@pytest.fixture(autouse=True)
def _no_shadow_after(chain: Chain):
    """Leave the session's mesh with no shadow routes for the tests after these."""
    yield
    observed = Observations(ready={f"default/{s}": ["base"] for s in CHAIN})
    chain.apply(chain.objects(observed, "istio"), chain.endpoints(BASE_V1, {}))
