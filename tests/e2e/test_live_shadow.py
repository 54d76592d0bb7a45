"""A lane release's shadow step on the real stack: real operator, Envoys and Prometheus.

The sample's three services get a new version in the canary lane, released by a LaneRelease
whose `mirror` copies every untagged request into the lane before any user enters it. Only
untagged requests are sent, so everything the lane's pods serve is a copy. While the release
waits at its shadow step: every answer the client gets is base's chain end to end, no base
pod has served more requests than were sent (a copy reaching base would add to them), each
canary pod has served one copy per request, and the lane's analysis has judged every service
on those copies.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from rich.console import Console

from lanes_testbed.cli.lanestory import LANE, LaneStory, change_commands, chain_versions, lane_release
from lanes_testbed.cli.analysisstory import Load
from lanes_testbed.stack import Stack

from .chain import served, until

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "mock-chain"
SERVICES = ("mocka", "mockb", "mockc")
RELEASE = "lane-shadow"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("shadow") / "stack", gateway_port=0) as running:
        yield running


def _pod_lanes(stack: Stack) -> dict[str, tuple[str, str]]:
    """Each running pod of the sample by name: (service, lane)."""
    pods = client.CoreV1Api(stack.api).list_namespaced_pod("default").items
    return {p.metadata.name: (p.metadata.labels.get("app", ""),
                              p.metadata.labels.get("ASM_TRAFFIC_TAG", ""))
            for p in pods if (p.metadata.labels or {}).get("app") in SERVICES}


def _counts(stack: Stack) -> dict[tuple[str, str], int]:
    """Requests the pods of each (service, lane) have been handed by their sidecars."""
    lanes = _pod_lanes(stack)
    counts: dict[tuple[str, str], int] = {}
    for target in json.loads(stack.sidecar_targets.read_text()):
        key = lanes.get(target["labels"]["pod"])
        if key is not None:
            admin = f"http://{target['targets'][0]}"
            counts[key] = counts.get(key, 0) + served(stack.mesh, admin)
    return counts


def _judged(release: dict) -> bool:
    """Whether the last check read a value for every service and found it in range."""
    services = (release.get("status") or {}).get("services") or []
    return len(services) == len(SERVICES) and all(
        s.get("ok") and all(m.get("value") is not None for m in s.get("metrics") or [])
        for s in services)


def test_the_lane_is_judged_on_copies_no_base_pod_and_no_client_sees(stack: Stack) -> None:
    out = io.StringIO()
    story = LaneStory(stack.kubeconfig, stack.plane.binaries.kubectl, stack.gateway_url, SAMPLE,
                      Console(file=out, width=200), timeout=120)
    try:
        story.setup()
        body = lane_release(RELEASE)
        body["spec"]["mirror"] = {"percent": 100, "pause": {}}
        story.run_kubectl("apply", "--server-side", "--field-manager=kubectl", "-f", "-",
                          input=json.dumps(body))
        for command in change_commands("2.0"):
            words = command.removeprefix("kubectl ").split()
            story.run_kubectl(*words, "-n", "default")
        until(lambda: (story.release_body(RELEASE).get("status") or {}).get("phase")
              == "Progressing", "the release to start at its shadow step", timeout=180)
        canaries = {(s, LANE) for s in SERVICES}
        until(lambda: canaries <= set(_pod_lanes(stack).values()), "the canary pods")
        # The mirror is in the gateway's route once a copy reaches the lane.
        load = Load(stack.gateway_url)
        until(lambda: load.ask("untagged") and _counts(stack).get(("mocka", LANE), 0) > 0,
              "the gateway to mirror into the lane", timeout=60)
        time.sleep(1.0)
        before = _counts(stack)
        sent, answers = 0, []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status, text = load.ask("untagged")
            sent += 1
            answers.append((status, text))
            release = story.release_body(RELEASE) if sent % 20 == 0 else {}
            if release and _judged(release) and sent >= 100 and \
                    release["status"].get("checkStep") == 1:
                break
        status = story.release_body(RELEASE)["status"]
        assert _judged({"status": status}), status
        assert (status["phase"], status["currentStepIndex"], status["weight"]) == (
            "Progressing", 1, 0), status
        wrong = [(s, t) for s, t in answers if s != 200 or set(chain_versions(t)) != {"v1"}]
        assert wrong == [], f"{len(wrong)} of {sent} answers were not base's: {wrong[:3]}"
        until(lambda: all(_counts(stack).get((s, LANE), 0) - before.get((s, LANE), 0) >= sent
                          for s in SERVICES), "every copy to reach the lane", timeout=30)
        after = _counts(stack)
        grew = {key: after.get(key, 0) - before.get(key, 0) for key in after}
        for service in SERVICES:
            assert grew[(service, "base")] == sent, grew
            assert grew[(service, LANE)] == sent, grew
    finally:
        story.close()
