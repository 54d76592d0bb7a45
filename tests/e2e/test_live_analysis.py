"""Releases decided by metrics on the real stack: a real Prometheus scrapes the mesh's Envoy,
and the operator reads the canary's success rate from it every interval.

A healthy mockb release advances and promotes by itself; one whose canary answers 500 to every
request (the sample app's `fail_percent`) rolls back by itself, base never restarted.
Canary-tagged requests flow through the gateway the whole time, so the canary subset has traffic.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lanes.dev.stack import Stack

from .chain import TRACE_HEADER, get, until

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "mock-chain"
ANALYSIS = {
    "interval": "2s",
    "threshold": 4,
    "metrics": [{"name": "request-success-rate", "interval": "10s", "thresholdRange": {"min": 99}}],
}



@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("analysis") / "stack", gateway_port=0) as running:
        yield running


class Load:
    """Canary- and base-tagged requests through the gateway, counting base errors."""

    def __init__(self, gateway: str) -> None:
        self.gateway = gateway
        self.stop = threading.Event()
        self.base_errors: list[str] = []
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            for lane in ("canary", "base"):
                try:
                    # A trace value per request, which the sample app passes on (trace-ID mode).
                    headers = {"x-asm-prefer-tag": lane, TRACE_HEADER: uuid.uuid4().hex}
                    status, body = get(self.gateway, "/mock", headers, timeout=5)
                except OSError as error:
                    status, body = 0, str(error)
                if lane == "base" and status != 200:
                    self.base_errors.append(f"{status} {body[:120]}")
            time.sleep(0.02)

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def test_metrics_promote_a_healthy_release_and_roll_back_a_failing_one(stack: Stack) -> None:
    kubectl_bin = str(stack.plane.binaries.kubectl)

    def kubectl(*args: str) -> str:
        result = subprocess.run([kubectl_bin, f"--kubeconfig={stack.kubeconfig}", *args],
                                capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
        return result.stdout

    def rollout() -> dict:
        return json.loads(kubectl("get", "workloadrollout/rollouts-mockb", "-o", "json"))

    def base_pods() -> set[str]:
        pods = json.loads(kubectl("get", "pods", "-l", "app=mockb", "-o", "json"))["items"]
        return {p["metadata"]["uid"] for p in pods
                if "lanes.dev/canary" not in p["metadata"]["labels"]
                and not p["metadata"].get("deletionTimestamp")}

    for name in ("app.yaml", "lanes.yaml", "rollouts.yaml"):
        kubectl("apply", "-f", str(SAMPLE / name))
    patch = {"spec": {"strategy": {"canary": {
        "steps": [{"replicas": 1, "traffic": "20%"}, {"replicas": 1}],
        "analysis": ANALYSIS,
    }}}}
    kubectl("patch", "workloadrollout/rollouts-mockb", "--type=merge", "-p", json.dumps(patch))
    until(lambda: rollout().get("status", {}).get("phase") == "Healthy", "rollouts-mockb Healthy")
    until(lambda: get(stack.gateway_url, "/mock", {"x-asm-prefer-tag": "base"})[0] == 200, "base served")

    with Load(stack.gateway_url) as load:
        kubectl("set", "image", "deployment/mockb-v1",
                "default=registry.cn-beijing.aliyuncs.com/aliacs-app-catalog/go-http-sample:2.0")

        def outcome() -> tuple[str, str] | None:
            status = rollout()["status"]
            if status.get("phase") != "Healthy" or not status.get("analysis"):
                return None
            return next(((c["status"], c["reason"]) for c in status.get("conditions", [])
                         if c["type"] == "Succeeded"), None)

        until(outcome, "the healthy release decided by its metrics", 120)
        done = rollout()["status"]
        assert outcome() == ("True", "Promoted"), done
        # The first check may find no values yet (the canary subset's first seconds of traffic).
        assert done["analysis"]["checks"] >= 2, done["analysis"]
        assert done["analysis"]["failedChecks"] < ANALYSIS["threshold"], done["analysis"]
        until(lambda: len(base_pods()) == 1, "one base pod, the promoted one")
        uids = base_pods()

        kubectl("set", "env", "deployment/mockb-v1", "fail_percent=100")
        until(lambda: rollout()["status"].get("phase") == "Progressing"
              or rollout()["status"].get("phase") == "Paused", "the failing release starts")
        until(lambda: {c["type"]: (c["status"], c["reason"])
                       for c in rollout()["status"].get("conditions", [])}.get("Succeeded")
              == ("False", "AnalysisFailed"), "the failing release rolled back by its metrics", 120)
        status = rollout()["status"]
        assert "request-success-rate" in status["message"], status["message"]
        until(lambda: json.loads(kubectl("get", "deployment/mockb-v1", "-o", "json"))["spec"]
              .get("paused") is not True, "base unpaused")
        assert base_pods() == uids, "base was never restarted"
    assert load.base_errors == [], load.base_errors[:5]
