"""Release notices posted to a chat webhook: a local HTTP receiver stands in for Slack and
Discord, the operator runs on the real API server, and a receiver that fails never holds the
release back."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from .rollout_support import (
    GROUP,
    IMAGE,
    VERSION,
    Cluster,
    Operator,
    PodReadier,
    deployment,
    image_of,
    wait_for_webhook,
    workload_rollout,
)

pytestmark = pytest.mark.integration

V1, V2 = f"{IMAGE}:1.0", f"{IMAGE}:2.0"


class Receiver:
    """An HTTP server that records every JSON body POSTed to it and answers `status`."""

    def __init__(self, status: int = 200):
        self.bodies: list[tuple[str, dict]] = []
        received = self.bodies
        self.status = status
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                received.append((self.path, json.loads(self.rfile.read(length))))
                self.send_response(owner.status)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def operator(control_plane, kube_api):
    with Operator(control_plane.kubeconfig, f"alerts-{uuid.uuid4().hex[:6]}.lanes.dev") as running:
        wait_for_webhook(kube_api, running.webhook.config_name, running.webhook.port)
        yield running


@pytest.fixture
def cluster(operator, kube_api, namespace):
    made = Cluster(kube_api, namespace)
    with PodReadier(kube_api, namespace):
        yield made
        made.delete_rollouts()


def provider(cluster: Cluster, name: str, spec: dict) -> None:
    cluster.custom.create_namespaced_custom_object(
        GROUP, VERSION, cluster.namespace, "alertproviders",
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "AlertProvider", "metadata": {"name": name},
         "spec": spec})


def ready_of(cluster: Cluster, name: str) -> dict:
    body = cluster.custom.get_namespaced_custom_object(GROUP, VERSION, cluster.namespace,
                                                       "alertproviders", name)
    return next((c for c in (body.get("status") or {}).get("conditions") or []
                 if c["type"] == "Ready"), {})


def with_alerts(alerts: list[dict]) -> dict:
    body = workload_rollout("rollouts-mocka", "mocka-v1")
    body["spec"]["alerts"] = alerts
    return body


def test_a_release_is_told_to_slack_and_discord_as_it_moves(cluster) -> None:
    with Receiver() as chat:
        provider(cluster, "slack", {"type": "slack", "address": f"{chat.url}/slack",
                                    "channel": "#releases", "username": "lanes"})
        secret = {"metadata": {"name": "discord-url"},
                  "data": {"address": base64.b64encode(f"{chat.url}/discord".encode()).decode()}}
        cluster.core.create_namespaced_secret(cluster.namespace, secret)
        provider(cluster, "discord", {"type": "discord", "secretRef": {"name": "discord-url"}})
        cluster.create_deployment(deployment("mocka-v1", "mocka", V1))
        cluster.create_rollout(with_alerts([
            {"name": "team", "severity": "info", "providerRef": {"name": "slack"}},
            {"name": "on-call", "severity": "error", "providerRef": {"name": "discord"}},
        ]))
        cluster.wait_phase("rollouts-mocka", "Healthy")
        cluster.set_image("mocka-v1", V2)
        cluster.wait_phase("rollouts-mocka", "Paused", "StepPaused")

        def slack_titles() -> list[str]:
            return [body["text"] for path, body in chat.bodies if path == "/slack"]

        subject = f"*workloadrollout/rollouts-mocka.{cluster.namespace}*"
        cluster.until(lambda: f"{subject}: waiting for approval" in slack_titles(),
                      "the approval wait told to Slack")
        assert f"{subject}: release started" in slack_titles()
        first = next(body for path, body in chat.bodies if path == "/slack")
        assert first["channel"] == "#releases" and first["username"] == "lanes"
        assert not [p for p, _ in chat.bodies if p == "/discord"], "on-call takes errors only"

        cluster.request("rollouts-mocka", {"lanes.dev/abort": "now"})
        cluster.wait_phase("rollouts-mocka", "Healthy")
        cluster.until(lambda: [b for p, b in chat.bodies if p == "/discord"], "the roll back told to Discord")
        discord = [b for p, b in chat.bodies if p == "/discord"]
        assert discord[0]["content"].startswith(
            f"workloadrollout/rollouts-mocka.{cluster.namespace}: rolling back. abort requested")
        cluster.until(lambda: ready_of(cluster, "slack").get("status") == "True", "slack Ready")


def test_a_failing_webhook_is_an_event_not_a_failed_release(cluster) -> None:
    with Receiver(status=500) as broken:
        provider(cluster, "broken", {"type": "generic", "address": f"{broken.url}/hook"})
        cluster.create_deployment(deployment("mocka-v1", "mocka", V1))
        cluster.create_rollout(with_alerts([
            {"name": "team", "providerRef": {"name": "broken"}},
            {"name": "gone", "providerRef": {"name": "nowhere"}},
        ]))
        cluster.wait_phase("rollouts-mocka", "Healthy")
        cluster.set_image("mocka-v1", V2)
        cluster.wait_phase("rollouts-mocka", "Paused", "StepPaused")
        cluster.request("rollouts-mocka", {"lanes.dev/promote-full": "now"})
        cluster.wait_phase("rollouts-mocka", "Healthy")
        assert image_of(cluster.deployment("mocka-v1")) == V2

        def failures() -> list[str]:
            return [e["message"] for e in cluster.rollouts.events_of(cluster.namespace, "rollouts-mocka")
                    if e["reason"] == "AlertFailed"]

        cluster.until(lambda: any("answered 500" in m for m in failures()), "the 500 as an event")
        cluster.until(lambda: any("alertprovider/nowhere" in m and "not found" in m for m in failures()),
                      "the missing provider as an event")
        assert broken.bodies and broken.bodies[0][1]["kind"] == "workloadrollout"
        ready = cluster.until(lambda: ready_of(cluster, "broken") or None, "broken's Ready")
        assert ready["status"] == "False" and ready["reason"] == "DeliveryFailed"
