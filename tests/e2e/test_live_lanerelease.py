"""A whole lane released as one unit on the real stack: real Envoy, real Prometheus.

Steady untagged, base- and canary-tagged load runs through the gateway for both releases, and
every untagged answer's chain is classified (`lanes_testbed.cli.lanestory.Tally`): one version end to
end or mixed, and, per entry weight in force, whether it came from the lane. The healthy
change (2.0) must be promoted together, the failing one (3.0, mockc failing) rolled back
together; no untagged answer may mix versions, no request base served may fail, and the share
of untagged answers from the lane must match each step's weight (binomial, `share_ok`).
"""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from lanes_testbed.cli.lanestory import PROMOTED, ROLLED_BACK, WEIGHTS, LaneStory, share_ok
from lanes_testbed.stack import Stack

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "mock-chain"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("lanerelease") / "stack", gateway_port=0) as running:
        yield running


def test_a_lane_is_promoted_and_rolled_back_as_one_with_no_mixed_chain(stack: Stack) -> None:
    out = io.StringIO()
    story = LaneStory(stack.kubeconfig, stack.plane.binaries.kubectl, stack.gateway_url, SAMPLE,
                      Console(file=out, width=200), timeout=120)
    try:
        healthy, failing, tally = story.run()
    finally:
        story.close()
    printed = out.getvalue()
    assert healthy == PROMOTED, printed
    assert failing == ROLLED_BACK, printed
    assert tally.mixed == [], printed
    assert tally.base_errors == [], printed
    for weight in WEIGHTS:
        lane, total = tally.by_weight.get(weight, [0, 0])
        assert total >= 30, f"only {total} untagged answers at entry {weight}%: {printed}"
        ok, share = share_ok(weight, lane, total)
        assert ok, f"entry {weight}%: {share:.0%} of {total} untagged answers from the lane"
    lane, total = tally.by_weight.get(100, [0, 0])
    assert total and lane == total, f"promotion: {lane}/{total} untagged answers from the lane"
    assert tally.lane_errors > 0, "the failing canary was never reached"

    kubectl = [str(stack.plane.binaries.kubectl), f"--kubeconfig={stack.kubeconfig}"]
    events = json.loads(subprocess.run(
        [*kubectl, "get", "events", "-n", "default", "--field-selector",
         "involvedObject.name=lane-v3", "-o", "json"],
        capture_output=True, text=True, check=True).stdout)["items"]
    halts = [e["message"] for e in events if e["reason"] == "HaltAdvancement"]
    assert any("mockc" in m and "request-success-rate" in m and ">= 99" in m for m in halts), halts
    for release, reason in (("lane-v2", "Promoted"), ("lane-v3", "AnalysisFailed")):
        waited = subprocess.run(
            [*kubectl, "wait", f"lanerelease/{release}", "-n", "default", "--timeout=5s",
             f"--for=condition=Succeeded={'true' if reason == 'Promoted' else 'false'}"],
            capture_output=True, text=True)
        assert waited.returncode == 0, waited.stderr
