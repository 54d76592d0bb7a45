"""A blue-green lane on the real stack: preview, switch at once, switch back, no failed request.

A LaneRelease with `blueGreen: {autoPromotionEnabled: false, scaleDownDelaySeconds: 600}` puts
mocka, mockb and mockc 2.0 in the canary lane. Load runs the whole time: untagged,
base-tagged and canary-tagged (the preview) requests through the gateway, every answer's chain
read. While previewed, untagged answers are all 1.0 end to end and the preview's all 2.0;
`kubectl lane approve` switches: from then every untagged answer is 2.0 end to end; within the
delay `kubectl lane undo` switches back: every untagged answer is 1.0 again. No untagged or
base-tagged request fails at any time, no untagged chain mixes versions, and no preview request
fails until the switch back (which then takes the lane's pods away). The times from approve and
from undo to the gateway serving the other side are printed.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from lanes.cli.intents import request
from lanes_testbed.cli.analysisstory import Load as GatewayLoad
from lanes_testbed.cli.lanestory import LaneStory, change_commands, chain_versions
from lanes_testbed.cli.livestory import NAMESPACE
from lanes_testbed.stack import Stack

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "mock-chain"
RELEASE = "blue-green"
WINDOW_S = 3.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("bluegreen") / "stack", gateway_port=0) as running:
        yield running


class Load(GatewayLoad):
    """Every answer kept as (when, lane, status, the chain's versions)."""

    LANES = ("untagged", "base", "canary")

    def __init__(self, gateway_url: str) -> None:
        super().__init__(gateway_url)
        self.answers: list[tuple[float, str, int, frozenset[str]]] = []

    def run(self) -> None:
        while not self.stop.is_set():
            for lane in self.LANES:
                status, body = self.ask(lane)
                self.answers.append((time.monotonic(), lane, status,
                                     frozenset(chain_versions(body))))
            time.sleep(0.01)

    def between(self, start: float, end: float, lane: str) -> set[frozenset[str]]:
        return {v for t, l, s, v in self.answers if start <= t <= end and l == lane and s == 200}

    def first(self, since: float, lane: str, versions: frozenset[str]) -> float | None:
        return next((t for t, l, s, v in self.answers if t >= since and l == lane and v == versions),
                    None)


V1, V2 = frozenset({"v1"}), frozenset({"v2"})


def _release() -> dict:
    return {
        "apiVersion": "lanes.dev/v1alpha1", "kind": "LaneRelease",
        "metadata": {"name": RELEASE, "namespace": NAMESPACE},
        "spec": {"swimLaneRef": {"name": "canary"}, "routeSettle": "1s",
                 "blueGreen": {"autoPromotionEnabled": False, "scaleDownDelaySeconds": 600}},
    }


def test_a_lane_switches_at_once_and_back_with_no_failed_request(stack: Stack) -> None:
    story = LaneStory(stack.kubeconfig, stack.plane.binaries.kubectl, stack.gateway_url, SAMPLE,
                      Console(file=io.StringIO(), width=200), timeout=180)

    def status() -> dict:
        return story.release_body(RELEASE).get("status") or {}

    def serving(lane: str, versions: frozenset[str]) -> bool:
        answered = load.answers[-6:]
        return any(l == lane for _, l, _, _ in answered) and all(
            v == versions for _, l, s, v in answered if l == lane)

    try:
        story.setup()
        with Load(stack.gateway_url) as load:
            story.run_kubectl("apply", "--server-side", "--field-manager=kubectl", "-f", "-",
                              input=yaml.safe_dump(_release()))
            for command in change_commands("2.0"):
                story.run_kubectl(*command.removeprefix("kubectl ").split(), "-n", NAMESPACE)
            story.wait(lambda: status().get("currentStepIndex") == 1
                       and "waiting for approve" in (status().get("message") or ""),
                       "the preview at entry 0")
            story.wait(lambda: serving("canary", V2), "the preview to answer from the new chain")
            start = time.monotonic()
            time.sleep(WINDOW_S)
            preview = (start, time.monotonic())

            approved = time.monotonic()
            request("approve", f"lanerelease/{RELEASE}", NAMESPACE, str(stack.kubeconfig), None)
            story.wait(lambda: serving("untagged", V2), "the switch")
            switched = load.first(approved, "untagged", V2)
            assert status().get("weight") == 100 and status().get("currentStepIndex") == 2
            time.sleep(1.0)
            start = time.monotonic()
            time.sleep(WINDOW_S)
            after_switch = (start, time.monotonic())

            undone = time.monotonic()
            request("undo", f"lanerelease/{RELEASE}", NAMESPACE, str(stack.kubeconfig), None)
            story.wait(lambda: serving("untagged", V1), "the switch back")
            back = load.first(undone, "untagged", V1)
            time.sleep(1.0)
            start = time.monotonic()
            time.sleep(WINDOW_S)
            after_back = (start, time.monotonic())
            story.wait(lambda: status().get("phase") == "Failed", "the release to end rolled back")
            story.wait(lambda: not story.canaries(), "every canary to be gone")
        answers = load.answers
    finally:
        story.close()

    failed = [(lane, code) for t, lane, code, _ in answers
              if code != 200 and (lane != "canary" or t < undone)]
    assert failed == [], f"{len(failed)} failed requests of {len(answers)}: {failed[:5]}"
    mixed = [v for _, lane, _, v in answers if lane == "untagged" and len(v) > 1]
    assert mixed == [], f"untagged chains mixing versions: {mixed[:5]}"
    assert load.between(*preview, "untagged") == {V1}
    assert load.between(*preview, "canary") == {V2}
    assert load.between(*after_switch, "untagged") == {V2}
    assert load.between(*after_back, "untagged") == {V1}
    assert load.between(preview[0], after_back[1], "base") == {V1}
    assert switched is not None and back is not None
    print(f"\n{len(answers)} requests, none failed; approve -> every untagged request on the new "
          f"chain: {switched - approved:.2f} s; undo -> back on the old: {back - undone:.2f} s")
