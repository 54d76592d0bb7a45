"""Webhook calls against a real local HTTP server: 2xx, 5xx, 4xx, timeouts, refused connections;
and the operator's reconcile calling each type of hook the plan asks for."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lanes.api.analysis import Webhook
from lanes.kube.rollouts import Workloads
from lanes.operator.checks import AnalysisSettings
from lanes.operator.rollouts import RolloutController
from lanes.operator.webhooks import MAX_ATTEMPTS, call_webhook, webhook_payload

from .rollout_fixtures import LONG_AGO, NOW, REV, V2, base, canary, held, replica_set, status
from .rollout_sim import rollout


@dataclass
class Hooks:
    """A local server: `/ok` 200, `/fail` 500, `/denied` 403, `/flaky` 503 once then 200,
    `/slow` answers after `slow_s`; every request's path and JSON body is kept."""

    url: str
    slow_s: float = 2.0
    received: list[tuple[str, dict, str]] = field(default_factory=list)
    flaky_left: int = 1

    def paths(self) -> list[str]:
        return [path for path, _, _ in self.received]


def _handler(hooks: Hooks) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            hooks.received.append((self.path, body, self.headers.get("content-type", "")))
            if self.path == "/slow":
                time.sleep(hooks.slow_s)
            status = {"/ok": 200, "/fail": 500, "/denied": 403}.get(self.path, 200)
            if self.path == "/flaky" and hooks.flaky_left > 0:
                hooks.flaky_left -= 1
                status = 503
            text = b"load test failed: 12 errors" if status >= 400 else b"done"
            try:
                self.send_response(status)
                self.send_header("content-length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the caller gave up (a timeout test)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    state = Hooks(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def hook(url: str, timeout: str = "5s", **extra) -> Webhook:
    return Webhook.model_validate({"name": "load-test", "url": url, "timeout": timeout, **extra})


def payload(h: Webhook) -> dict:
    return webhook_payload(h, "rollouts-mockb", "default", "Progressing", "5d8f9c")


def test_the_payload_is_flaggers_with_the_hook_metadata() -> None:
    h = hook("http://x/", metadata={"cmd": "hey -z 1m http://mockb:8000/", "type": "cmd"})
    assert payload(h) == {
        "name": "rollouts-mockb", "namespace": "default", "phase": "Progressing",
        "checksum": "5d8f9c", "metadata": {"cmd": "hey -z 1m http://mockb:8000/", "type": "cmd"},
    }


def test_a_2xx_answer_is_ok_and_the_payload_arrives_as_json_and_is_not_run(
    hooks: Hooks, tmp_path: Path
) -> None:
    ran = tmp_path / "ran"
    h = hook(f"{hooks.url}/ok", metadata={"type": "cmd", "cmd": f"touch {ran}"})
    result = call_webhook(h, payload(h))
    assert result.ok and result.name == "load-test"
    assert result.message == f"POST {hooks.url}/ok answered 200"
    [(path, body, content_type)] = hooks.received
    assert (path, body, content_type) == ("/ok", payload(h), "application/json")
    assert not ran.exists(), "the operator ran a command from the hook's metadata"


def test_a_500_is_retried_once_and_fails_naming_the_status_and_body(hooks: Hooks) -> None:
    h = hook(f"{hooks.url}/fail")
    result = call_webhook(h, payload(h))
    assert not result.ok
    assert result.message == (
        f"POST {hooks.url}/fail answered 500: load test failed: 12 errors (attempt 2 of 2)")
    assert hooks.paths() == ["/fail"] * MAX_ATTEMPTS


def test_a_server_error_that_clears_on_the_retry_is_ok(hooks: Hooks) -> None:
    h = hook(f"{hooks.url}/flaky")
    result = call_webhook(h, payload(h))
    assert result.ok, result.message
    assert hooks.paths() == ["/flaky", "/flaky"]


def test_a_4xx_is_final_and_not_retried(hooks: Hooks) -> None:
    h = hook(f"{hooks.url}/denied")
    result = call_webhook(h, payload(h))
    assert not result.ok
    assert result.message == f"POST {hooks.url}/denied answered 403: load test failed: 12 errors"
    assert hooks.paths() == ["/denied"]


def test_a_hook_slower_than_its_timeout_fails_within_the_timeout(hooks: Hooks) -> None:
    h = hook(f"{hooks.url}/slow", timeout="500ms")
    started = time.monotonic()
    result = call_webhook(h, payload(h))
    elapsed = time.monotonic() - started
    assert not result.ok
    assert result.message == f"POST {hooks.url}/slow did not answer within 500ms"
    assert elapsed < 1.0, f"took {elapsed:.2f}s for a 500ms timeout"
    assert hooks.paths() == ["/slow"]


def test_a_server_that_accepts_and_never_answers_times_out() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
        h = hook(url, timeout="300ms")
        started = time.monotonic()
        result = call_webhook(h, payload(h))
        assert time.monotonic() - started < 1.0
    assert not result.ok and result.message == f"POST {url} did not answer within 300ms"


def test_a_refused_connection_is_retried_within_the_timeout_and_fails_naming_the_url() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: connections are refused
        h = hook(f"http://127.0.0.1:{port}/hook", timeout="2s")
        started = time.monotonic()
        result = call_webhook(h, payload(h))
        assert time.monotonic() - started < 2.0
    assert not result.ok
    assert result.message.startswith(f"POST http://127.0.0.1:{port}/hook cannot be reached: ")
    assert result.message.endswith("(attempt 2 of 2)")


def test_no_second_attempt_when_the_timeout_has_no_room_for_it(hooks: Hooks) -> None:
    hooks.slow_s = 0.45
    h = hook(f"{hooks.url}/slow", timeout="500ms")
    # The slow path answers 200 within the timeout: one attempt, ok.
    assert call_webhook(h, payload(h)).ok
    assert hooks.paths() == ["/slow"]


class FakeRollouts:
    """The parts of `RolloutsApi` one reconcile uses, over one rollout and fixed workloads."""

    def __init__(self, body: dict, seen: Workloads):
        self.body, self.seen = body, seen
        self.changes: list = []
        self.events: list = []
        self.status: dict | None = None

    def get(self, namespace: str, name: str) -> dict | None:
        return self.body if name == self.body["metadata"]["name"] else None

    def add_finalizer(self, body: dict) -> dict:
        return body

    def workloads(self, namespace: str, workload: str, autoscaler: str | None = None) -> Workloads:
        return self.seen

    def label_base(self, *args, **kwargs) -> None:
        pass

    def labelled_bases(self, namespace: str, rollout: str) -> list[str]:
        return []

    def carry_out(self, namespace: str, rollout: str, change) -> None:
        self.changes.append(change)

    def write_status(self, body: dict, status: dict) -> dict:
        self.status = status
        return body

    def annotate(self, *args, **kwargs) -> None:
        pass

    def post_event(self, body: dict, event) -> None:
        self.events.append(event)

    def metric_template(self, namespace: str, name: str) -> dict | None:
        return None

    def services(self, namespace: str) -> list[dict]:
        return []

    def swimlanes(self) -> list[dict]:
        return []


def _reconciled(
    hooks: Hooks, webhooks: list[dict], before, canary_obj: dict | None,
    steps: list[dict] | None = None,
) -> FakeRollouts:
    """One operator reconcile of a rollout whose analysis has no metrics and these webhooks."""
    ro = rollout(steps=steps, analysis={"interval": "30s", "threshold": 2, "webhooks": [
        {**h, "url": f"{hooks.url}{h['url']}"} for h in webhooks]})
    body = ro.model_copy(update={"status": before}).to_wire()
    body["metadata"]["generation"] = body["status"]["observedGeneration"] = 1
    base_obj = held(base(V2))
    base_obj["metadata"]["resourceVersion"] = "7"
    seen = Workloads(base_obj, [replica_set()], canary_obj)
    api = FakeRollouts(body, seen)
    controller = RolloutController(api, settings=AnalysisSettings(), clock=lambda: NOW)  # type: ignore[arg-type]
    controller.run(f"default/{ro.metadata.name}", False)
    return api


def test_the_operator_calls_a_confirm_rollout_gate_then_sends_each_event_to_event_hooks(
    hooks: Hooks,
) -> None:
    api = _reconciled(hooks, [
        {"name": "gate", "type": "confirm-rollout", "url": "/ok"},
        {"name": "slack", "type": "event", "url": "/events", "metadata": {"channel": "#rel"}},
    ], status("Progressing", "StepUpgrade", last=LONG_AGO), None)
    assert hooks.paths()[0] == "/ok"
    gate = hooks.received[0][1]
    assert (gate["phase"], gate["checksum"], gate["name"]) == ("Waiting", REV[V2], "rollouts-mocka")
    assert [type(c).__name__ for c in api.changes] == ["ApplyCanary"]
    assert api.status["analysis"]["hooksDone"] == ["confirm-rollout"]
    [event] = api.events
    [(path, sent, _)] = hooks.received[1:]
    assert path == "/events" and sent["phase"] == "Progressing"
    assert sent["metadata"] == {"channel": "#rel", "eventMessage": event.message,
                                "eventType": "Normal"}


def test_the_operator_calls_pre_rollout_and_rollback_hooks_with_the_check(hooks: Hooks) -> None:
    api = _reconciled(hooks, [
        {"name": "smoke", "type": "pre-rollout", "url": "/ok"},
        {"name": "abort", "type": "rollback", "url": "/denied"},
        {"name": "load", "type": "rollout", "url": "/load"},
    ], status("Progressing", "StepPaused", last=LONG_AGO), canary())
    assert hooks.paths() == ["/ok", "/denied", "/load"], "the plan's hooks, then the check's"
    assert {body["phase"] for _, body, _ in hooks.received} == {"Progressing"}
    analysis = api.status["analysis"]
    assert analysis["hooksDone"] == ["pre-rollout"] and analysis["phase"] == "Passed"
    assert api.status["canaryStatus"]["currentStepState"] == "StepReady"


def test_the_operator_rolls_back_when_a_rollback_hook_answers_2xx(hooks: Hooks) -> None:
    api = _reconciled(hooks, [{"name": "abort", "type": "rollback", "url": "/ok"}],
                      status("Progressing", "StepPaused", last=LONG_AGO), canary())
    assert api.status["phase"] == "RollingBack"
    assert api.status["analysis"]["reason"] == "RolledBackByWebhook"
    assert "abort" in api.status["analysis"]["message"]


@pytest.mark.parametrize(("path", "moves"), [("/ok", True), ("/denied", False)],
                         ids=["answers-2xx", "refuses"])
def test_the_operator_asks_confirm_traffic_increase_before_a_higher_weight(
    hooks: Hooks, path: str, moves: bool
) -> None:
    steps = [{"replicas": 1, "traffic": "10%"}, {"replicas": 1, "traffic": "50%"}]
    api = _reconciled(hooks, [{"name": "weights", "type": "confirm-traffic-increase", "url": path}],
                      status("Progressing", "StepReady", last=LONG_AGO), canary(), steps)
    [(called, sent, _)] = hooks.received
    assert called == path and sent["phase"] == "Progressing" and sent["name"] == "rollouts-mocka"
    index = api.status["canaryStatus"]["currentStepIndex"]
    assert index == (2 if moves else 1)
    if moves:
        assert api.status["canaryStatus"]["currentStepState"] == "StepUpgrade"
        assert "TrafficIncreaseConfirmed" in [e.reason for e in api.events]
    else:
        assert "waits for confirm-traffic-increase webhook(s) weights" in api.status["message"]
        assert api.status["analysis"]["lastGateTime"] is not None
