"""Faults injected into a `kubectl lane dev up` stack while a WorkloadRollout is under analysis.

The stack's supervisor restarts whatever exits, as kubelet restarts a container, so each fault
here is a real SIGKILL of a process and the recovery is the stack's own:

- Prometheus killed mid-analysis: the release holds while it is down (no advance, no failed
  check), then goes on and is promoted once the restarted Prometheus answers; the outage
  (the supervisor's back-off and a Prometheus start) is well inside threshold x interval.
- kube-apiserver killed mid-step: the operator's watches and writes retry until the restarted
  API server answers, and the release completes with the one canary Deployment it started.

Canary- and base-tagged requests flow through the gateway all along; the sidecars and the
gateway keep their last config while a part is away, so no base-tagged request may fail.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from lanes_testbed import stackd
from lanes_testbed.binaries import ensure_binaries

from .chain import get, until
from .test_live_analysis import SAMPLE, Cluster, Load

NAME, DEPLOYMENT, APP = "rollouts-mockb", "mockb-v1", "mockb"
STEPS = [{"replicas": 1, "traffic": "20%"}, {"replicas": 1, "traffic": "50%"}, {"replicas": 1}]
# A check every second, so some fall inside the seconds Prometheus is away (the supervisor's
# 1 s back-off, then its start); a 30 s window, so the first check after it still finds the
# samples from before; a deadline (threshold x interval, 30 s) far beyond the outage.
ANALYSIS = {
    "interval": "1s",
    "threshold": 30,
    "metrics": [{"name": "request-success-rate", "interval": "30s", "thresholdRange": {"min": 99}}],
}


class DevCluster(Cluster):
    """The analysis tests' views of rollouts, on a `dev up` stack known by its kubeconfig."""

    def __init__(self, kubeconfig: Path) -> None:
        self.stack = SimpleNamespace(kubeconfig=kubeconfig)
        self.kubectl_bin = str(ensure_binaries(None).kubectl)

    def answers(self) -> bool:
        """Whether the API server is ready; False while it is away."""
        result = subprocess.run([self.kubectl_bin, f"--kubeconfig={self.stack.kubeconfig}",
                                 "get", "--raw", "/readyz"], capture_output=True, timeout=30)
        return result.returncode == 0

    def canaries(self) -> set[str]:
        """The uids of the Deployments beside the base's, the canaries."""
        found = json.loads(self.kubectl("get", "deployments", "-l", f"app={APP}", "-o", "json"))
        return {d["metadata"]["uid"] for d in found["items"] if d["metadata"]["name"] != DEPLOYMENT}


class CanaryMonitor:
    """Polls the canary Deployments on its own connection, through any outage, collecting
    every uid it sees: one release, one canary Deployment, never re-created."""

    def __init__(self, cluster: DevCluster) -> None:
        self.cluster = cluster
        self.seen: set[str] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.wait(0.5):
            try:
                self.seen |= self.cluster.canaries()
            except (AssertionError, subprocess.TimeoutExpired):
                pass  # the API server is away

    def __enter__(self) -> CanaryMonitor:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def _pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    return pid


def _ready(url: str) -> bool:
    try:
        return get(url, "/-/ready", timeout=2)[0] == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def dev_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    """A `kubectl lane dev up` stack: its supervisor restarts any part that exits."""
    state_dir = tmp_path_factory.mktemp("faults") / "dev"
    try:
        yield state_dir, stackd.up(state_dir, gateway_port=0, progress=None)
    finally:
        stackd.down(state_dir)


@pytest.fixture(scope="module")
def cluster(dev_stack: tuple[Path, dict[str, Any]]) -> DevCluster:
    """The mock chain applied, mockb's rollout analysed by its metrics, the base answering."""
    _, info = dev_stack
    ours = DevCluster(Path(info["kubeconfig"]))
    for name in ("app.yaml", "lanes.yaml", "rollouts.yaml"):
        ours.kubectl("apply", "-f", str(SAMPLE / name))
    until(lambda: ours.status(NAME).get("phase") == "Healthy", f"{NAME} Healthy", timeout=180)
    until(lambda: get(info["gateway_url"], "/mock", {"x-asm-prefer-tag": "base"})[0] == 200,
          "base served", timeout=120)
    ours.analyse(NAME, STEPS, ANALYSIS)
    return ours


@pytest.fixture
def load(dev_stack: tuple[Path, dict[str, Any]], cluster: DevCluster) -> Iterator[Load]:
    with Load(dev_stack[1]["gateway_url"]) as running:
        yield running
    assert running.base_errors == [], running.base_errors[:5]


def _restarted(state_dir: Path, part: str) -> None:
    log = state_dir / "logs" / "stack.log"
    until(lambda: f"{part} restarted (restart 1)" in log.read_text(), f"the supervisor to restart {part}")


def test_prometheus_killed_mid_analysis_holds_the_release_then_promotes_it(
    dev_stack: tuple[Path, dict[str, Any]], cluster: DevCluster, load: Load
) -> None:
    state_dir, info = dev_stack
    announced = len(cluster.events(NAME))
    cluster.release(DEPLOYMENT, "release=prometheus-killed")
    cluster.wait_for(lambda: cluster.analysis(NAME).get("phase") == "Passed"
                     and cluster.status(NAME).get("phase") == "Progressing", "a first check passed",
                     timeout=180)

    pid_file = state_dir / "prometheus" / "prometheus.pid"
    killed = _pid(pid_file)
    assert killed is not None
    os.kill(killed, signal.SIGKILL)
    started = time.monotonic()
    held: list[dict] = []
    while not (_pid(pid_file) not in (None, killed) and _ready(info["prometheus_url"])):
        assert time.monotonic() - started < 120, "Prometheus was not restarted"
        analysis = cluster.analysis(NAME)
        if analysis.get("phase") == "Holding":
            held.append(analysis)
        time.sleep(0.2)
    outage = time.monotonic() - started
    _restarted(state_dir, "prometheus")

    cluster.wait_for(lambda: cluster.outcome(NAME), "the release went on and was decided", timeout=240)
    status = cluster.status(NAME)
    assert cluster.outcome(NAME) == ("True", "Promoted"), (outage, status)
    assert status["analysis"]["failedChecks"] == 0, (outage, status["analysis"])
    assert all(h["failedChecks"] == 0 for h in held), held
    holds = [r for r, _ in cluster.events(NAME)[announced:] if r in ("MetricsUnavailable", "NoData")]
    print(f"Prometheus away {outage:.1f}s; holds seen {len(held)}, announced {holds}")
    assert held or holds, f"no check held during the {outage:.1f}s outage"
    assert cluster.conditions(NAME)["MetricsAvailable"] == ("True", "PrometheusAnswered")
    until(lambda: len(cluster.base_pods(APP)) == 1, "one base pod, the promoted one")


def test_an_apiserver_killed_mid_step_leaves_one_canary_and_the_release_completes(
    dev_stack: tuple[Path, dict[str, Any]], cluster: DevCluster, load: Load
) -> None:
    state_dir, _ = dev_stack
    until(lambda: cluster.canaries() == set(), "no canary left from before")
    with CanaryMonitor(cluster) as monitor:
        cluster.release(DEPLOYMENT, "release=apiserver-killed")
        cluster.wait_for(lambda: cluster.analysis(NAME).get("phase") == "Passed"
                         and cluster.status(NAME).get("phase") == "Progressing"
                         and cluster.canaries(), "a step under analysis", timeout=180)
        pid_file = state_dir / "run" / "kube-apiserver.pid"
        killed = _pid(pid_file)
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        until(lambda: _pid(pid_file) not in (None, killed) and cluster.answers(),
              "the API server restarted", timeout=120)
        _restarted(state_dir, "kube-apiserver")
        cluster.wait_for(lambda: cluster.outcome(NAME), "the release completed", timeout=240)
    assert cluster.outcome(NAME) == ("True", "Promoted"), cluster.status(NAME)
    assert len(monitor.seen) == 1, f"canary Deployments seen: {monitor.seen}"
