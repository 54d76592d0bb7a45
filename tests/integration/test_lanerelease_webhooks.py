"""A LaneRelease's analysis webhooks, called by the operator on the real control plane.

The hooks are served by an HTTP server in the test, which records each call's payload
(Flagger's: `name`, `namespace`, `phase`, `checksum`, `metadata`) and answers with the status
the test sets. The entry weight and the members' Deployments are followed through `History`,
so a test can say what the gateway routed at every moment, not only when it looked.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from kubernetes import client

from .lane_history import History, gateway_weight, lane_gaps
from .rollout_support import image_of
from .lane_support import (  # noqa: F401 (operator and lane_story are the tests' fixtures)
    GROUP,
    SERVICES,
    V1,
    V2,
    VERSION,
    base_pods,
    lane_story,
    operator,
    release_status,
    routed,
)

pytestmark = pytest.mark.integration


class Hooks:
    """Webhook endpoints `http://127.0.0.1:PORT/<name>`: each answers `answers[name]` (200
    unless set) and records the payload of every call."""

    def __init__(self) -> None:
        self.answers: dict[str, int] = {}
        self.calls: list[tuple[str, dict]] = []
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                name = self.path.strip("/")
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hooks.calls.append((name, json.loads(body or b"{}")))
                status = hooks.answers.get(name, 200)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Hooks:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{name}"

    def payloads(self, name: str) -> list[dict]:
        return [p for n, p in list(self.calls) if n == name]


@pytest.fixture
def hooks():
    with Hooks() as served:
        yield served


def create_release(api: client.ApiClient, namespace: str, lane: str, steps: list[dict],
                   hooks: Hooks, *kinds: str) -> None:
    """A release of the lane whose analysis has one webhook of each kind, named after it."""
    webhooks = [{"name": kind, "type": kind, "url": hooks.url(kind), "timeout": "2s",
                 "metadata": {"story": "lane"}} for kind in kinds]
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "lanereleases",
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "LaneRelease", "metadata": {"name": "seed"},
         "spec": {"swimLaneRef": {"name": lane}, "steps": steps,
                  "analysis": {"interval": "1s", "threshold": 1, "webhooks": webhooks}}},
    )


def ended(api: client.ApiClient, namespace: str, cluster, phase: str) -> dict:
    return cluster.until(
        lambda: (s := release_status(api, namespace)).get("phase") == phase and s,
        f"the release {phase}", timeout=90)


def entry_weights(history: History, lane: str) -> list[tuple[int, int, set[str]]]:
    """Per moment: its revision, the entry weight, and which bases run V1 again; asserting
    that no moment lets untagged requests into the lane while a member is missing from it."""
    out, mixed = [], []
    for moment in history.moments():
        weight = gateway_weight(moment, "x-asm-prefer-tag", lane)
        restored = {s for s in SERVICES
                    if image_of(moment.of("deployments").get(f"{s}-v1")) == V1}
        if weight > 0:
            mixed += [f"revision {moment.revision}: {gap}"
                      for gap in lane_gaps(moment, SERVICES, lane)]
        out.append((moment.revision, weight, restored))
    assert not mixed, f"untagged requests could enter the lane while a member was missing: {mixed[:5]}"
    return out


def test_a_failing_pre_rollout_hook_aborts_before_any_entry_weight(
        kube_api, namespace, lane_story, hooks) -> None:
    story, cluster, bases = lane_story
    lane = story.lane("canary")
    hooks.answers["pre-rollout"] = 500
    with History(kube_api, namespace, f"lanes-{story.name}-ingress") as history:
        create_release(kube_api, namespace, lane, [{"weight": 50, "pause": {}}], hooks,
                       "pre-rollout", "post-rollout")
        final = ended(kube_api, namespace, cluster, "Failed")
        for service in SERVICES:
            cluster.wait_phase(f"rollouts-{service}", "Healthy")
    assert (final["reason"], final["weight"], final["currentStepIndex"]) == (
        "PreRolloutFailed", 0, 0)
    assert max(weight for _, weight, _ in entry_weights(history, lane)) == 0, \
        "no request may enter the lane before the pre-rollout hooks passed"
    calls = hooks.payloads("pre-rollout")
    assert 1 <= len(calls) <= 2 and all(c == calls[0] for c in calls), \
        "called once, and tried once more on its 5xx"
    called = calls[0]
    assert (called["name"], called["namespace"], called["phase"]) == ("seed", namespace,
                                                                     "Initializing")
    assert called["checksum"] and called["metadata"] == {"story": "lane"}
    assert [p["phase"] for p in hooks.payloads("post-rollout")] == ["Failed"]
    for service in SERVICES:
        assert image_of(cluster.deployment(f"{service}-v1")) == V1
        assert base_pods(cluster, service) == bases[service], f"{service}'s base restarted"


def test_a_rollback_hook_answering_2xx_rolls_the_lane_back_weight_first(
        kube_api, namespace, lane_story, hooks) -> None:
    story, cluster, bases = lane_story
    lane = story.lane("canary")
    hooks.answers["rollback"] = 404
    with History(kube_api, namespace, f"lanes-{story.name}-ingress") as history:
        create_release(kube_api, namespace, lane, [{"weight": 30, "pause": {}}], hooks,
                       "rollback")
        cluster.until(lambda: routed(kube_api, story) == 30, "entry weight 30 at the gateway")
        cluster.until(lambda: len(hooks.payloads("rollback")) >= 2, "two checks asked the hook")
        assert release_status(kube_api, namespace)["phase"] == "Progressing"
        hooks.answers["rollback"] = 200
        final = ended(kube_api, namespace, cluster, "Failed")
        for service in SERVICES:
            cluster.wait_phase(f"rollouts-{service}", "Healthy")
    assert (final["reason"], final["weight"]) == ("RolledBackByWebhook", 0)
    assert {p["phase"] for p in hooks.payloads("rollback")} == {"Progressing"}
    moments = entry_weights(history, lane)
    assert any(weight == 30 for _, weight, _ in moments)
    first_undo = next(revision for revision, _, restored in moments if restored)
    assert all(weight == 0 for revision, weight, _ in moments if revision >= first_undo), \
        "a member was undone while untagged requests still entered the lane"
    for service in SERVICES:
        assert image_of(cluster.deployment(f"{service}-v1")) == V1
        assert base_pods(cluster, service) == bases[service], f"{service}'s base restarted"


def test_a_closed_confirm_promotion_gate_holds_the_lane_until_it_opens(
        kube_api, namespace, lane_story, hooks) -> None:
    story, cluster, _ = lane_story
    lane = story.lane("canary")
    hooks.answers["confirm-promotion"] = 403
    create_release(kube_api, namespace, lane, [{"weight": 20, "pause": {"duration": 1}}], hooks,
                   "confirm-promotion")
    cluster.until(lambda: len(hooks.payloads("confirm-promotion")) >= 2,
                  "the gate asked twice")
    status = release_status(kube_api, namespace)
    assert (status["phase"], status["weight"]) == ("Progressing", 20)
    assert "confirm-promotion" in status["message"]
    assert routed(kube_api, story) == 20
    for service in SERVICES:
        assert cluster.status(f"rollouts-{service}")["phase"] == "Paused", \
            f"rollouts-{service} promoted through a closed gate"
    gate = hooks.payloads("confirm-promotion")[0]
    assert (gate["name"], gate["namespace"], gate["phase"]) == ("seed", namespace, "Progressing")
    hooks.answers["confirm-promotion"] = 200
    final = ended(kube_api, namespace, cluster, "Succeeded")
    assert final["weight"] == 0
    for service in SERVICES:
        assert image_of(cluster.deployment(f"{service}-v1")) == V2
