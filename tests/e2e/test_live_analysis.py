"""Releases decided by metrics on the real stack: a real Prometheus scrapes the mesh's proxies,
and the operator (its own process) reads the canary's success rate from it every interval.

One stack serves every test here, each starting its own releases on the mock chain:

- a healthy mockb release advances and promotes by itself; one whose canary answers 500 to
  every request (the sample app's `fail_percent`) rolls back by itself, base never restarted;
- Prometheus stopped mid-analysis: the release holds (no advance, no failed check, a condition
  saying so) and resumes once Prometheus is back; left down past the deadline
  (threshold x interval) it rolls back, reason AnalysisUnavailable;
- the operator SIGKILLed mid-analysis resumes from status: failed checks neither forgotten nor
  doubled;
- a Flagger `Canary` and an Argo `Rollout` converted by `kubectl lane convert`, applied and run
  to their outcome;
- a release failed by its metrics whose manifest a GitOps tool re-applies: nothing starts until
  `kubectl lane retry`.

Canary- and base-tagged requests flow through the gateway the whole time, so the canary subsets
have traffic; no base-tagged request may fail.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lanes_testbed.stack import Stack

from .chain import TRACE_HEADER, get, until

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "mock-chain"
IMAGE = "registry.cn-beijing.aliyuncs.com/aliacs-app-catalog/go-http-sample"
# The interval leaves room for what a canary's first seconds need before Prometheus has a rate
# for its subset: the routes naming the subset, Envoy's new cluster, two scrapes a second apart.
ANALYSIS = {
    "interval": "4s",
    "threshold": 4,
    "metrics": [{"name": "request-success-rate", "interval": "10s", "thresholdRange": {"min": 99}}],
}
# A window long enough to span a Prometheus outage of a few seconds, so the first check after
# it still finds the samples from before.
OUTAGE_ANALYSIS = {
    "interval": "3s",
    "threshold": 6,
    "metrics": [{"name": "request-success-rate", "interval": "30s", "thresholdRange": {"min": 99}}],
}
# The canary subset's cluster, as the local mesh's Envoy tags it (`cluster_name`, Istio's tag).
ENVOY_SUBSET = (
    'cluster_name=~"outbound\\\\|[0-9]+\\\\|{{ lane }}\\\\|'
    '{{ service }}\\\\.{{ namespace }}\\\\.svc\\\\.cluster\\\\.local"'
)


class Load:
    """Requests through the gateway, one per lane in `lanes` in turn (None: untagged), counting
    the errors of the `base` lane's; by default the sample's canary- and base-tagged ones."""

    def __init__(self, gateway: str, lanes: tuple[str | None, ...] = ("canary", "base"),
                 base: str = "base", path: str = "/mock") -> None:
        self.gateway = gateway
        self.lanes = lanes
        self.base = base
        self.path = path
        self.stop = threading.Event()
        self.base_errors: list[str] = []
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            for lane in self.lanes:
                try:
                    # A trace value per request, which the sample app passes on (trace-ID mode).
                    headers = {TRACE_HEADER: uuid.uuid4().hex}
                    if lane is not None:
                        headers["x-asm-prefer-tag"] = lane
                    status, body = get(self.gateway, self.path, headers, timeout=5)
                except OSError as error:
                    status, body = 0, str(error)
                if lane == self.base and status != 200:
                    self.base_errors.append(f"{status} {body[:120]}")
            time.sleep(0.02)

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


class Cluster:
    """kubectl and the views of rollouts the tests read, on the shared stack."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.kubectl_bin = str(stack.plane.binaries.kubectl)

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run([self.kubectl_bin, f"--kubeconfig={self.stack.kubeconfig}", *args],
                                input=stdin, capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
        return result.stdout

    def rollout(self, name: str) -> dict:
        return json.loads(self.kubectl("get", f"workloadrollout/{name}", "-o", "json"))

    def status(self, name: str) -> dict:
        return self.rollout(name).get("status") or {}

    def conditions(self, name: str) -> dict[str, tuple[str, str]]:
        return {c["type"]: (c["status"], c["reason"]) for c in self.status(name).get("conditions", [])}

    def condition_message(self, name: str, kind: str) -> str:
        return next(c["message"] for c in self.status(name)["conditions"] if c["type"] == kind)

    def analysis(self, name: str) -> dict:
        return self.status(name).get("analysis") or {}

    def step(self, name: str) -> int:
        return (self.status(name).get("canaryStatus") or {}).get("currentStepIndex", 0)

    def outcome(self, name: str) -> tuple[str, str] | None:
        """How the rollout's last release ended, once it is Healthy again after analysis."""
        status = self.status(name)
        if status.get("phase") != "Healthy" or not status.get("analysis"):
            return None
        return self.conditions(name).get("Succeeded")

    def base_pods(self, app: str) -> set[str]:
        pods = json.loads(self.kubectl("get", "pods", "-l", f"app={app}", "-o", "json"))["items"]
        return {p["metadata"]["uid"] for p in pods
                if "lanes.dev/canary" not in p["metadata"]["labels"]
                and not p["metadata"].get("deletionTimestamp")}

    def events(self, name: str) -> list[tuple[str, str]]:
        """The (reason, message) of the Events about one rollout, oldest first."""
        items = json.loads(self.kubectl(
            "get", "events", "--field-selector",
            f"involvedObject.kind=WorkloadRollout,involvedObject.name={name}", "-o", "json",
        ))["items"]
        items.sort(key=lambda e: (e.get("eventTime") or e.get("firstTimestamp") or "",
                                  e["metadata"]["creationTimestamp"]))
        return [(e["reason"], e["message"]) for e in items]

    def analyse(self, name: str, steps: list[dict], analysis: dict) -> None:
        """Give a rollout these steps and analysis, and wait until it is settled."""
        patch = {"spec": {"strategy": {"canary": {"steps": steps, "analysis": analysis}}}}
        self.kubectl("patch", f"workloadrollout/{name}", "--type=merge", "-p", json.dumps(patch))
        until(lambda: self.status(name).get("phase") == "Healthy", f"{name} Healthy")

    def release(self, deployment: str, *env: str) -> None:
        """Start a release: a new pod template, by its environment."""
        self.kubectl("set", "env", f"deployment/{deployment}", *env)

    def paused(self, deployment: str) -> bool:
        obj = json.loads(self.kubectl("get", f"deployment/{deployment}", "-o", "json"))
        return obj["spec"].get("paused") is True

    def wait_for(self, check: Callable[[], object], what: str, timeout: float = 120) -> None:
        until(check, what, timeout)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("analysis") / "stack", gateway_port=0) as running:
        yield running


@pytest.fixture(scope="module")
def cluster(stack: Stack) -> Cluster:
    """The mock chain applied, every rollout Healthy, the base answering."""
    ours = Cluster(stack)
    for name in ("app.yaml", "lanes.yaml", "rollouts.yaml"):
        ours.kubectl("apply", "-f", str(SAMPLE / name))
    for name in ("rollouts-mocka", "rollouts-mockb", "rollouts-mockc"):
        until(lambda n=name: ours.status(n).get("phase") == "Healthy", f"{name} Healthy")
    until(lambda: get(stack.gateway_url, "/mock", {"x-asm-prefer-tag": "base"})[0] == 200,
          "base served")
    return ours


@pytest.fixture
def load(stack: Stack, cluster: Cluster) -> Iterator[Load]:
    with Load(stack.gateway_url) as running:
        yield running
    assert running.base_errors == [], running.base_errors[:5]


@pytest.fixture
def prometheus_back(stack: Stack) -> Iterator[None]:
    """Whatever a test did to Prometheus, it runs again afterwards."""
    yield
    assert stack.prometheus is not None
    if not stack.prometheus.alive():
        stack.prometheus.stop()
        stack.prometheus.start()


@pytest.fixture
def operator_back(stack: Stack) -> Iterator[None]:
    """Whatever a test did to the operator, it runs again afterwards."""
    yield
    if "operator" not in [c.name for c in stack._children]:
        stack.start_operator()


def test_metrics_promote_a_healthy_release_and_roll_back_a_failing_one(
    cluster: Cluster, load: Load
) -> None:
    name = "rollouts-mockb"
    cluster.analyse(name, [{"replicas": 1, "traffic": "20%"}, {"replicas": 1}], ANALYSIS)

    cluster.kubectl("set", "image", "deployment/mockb-v1", f"default={IMAGE}:2.0")
    cluster.wait_for(lambda: cluster.outcome(name), "the healthy release decided by its metrics")
    done = cluster.status(name)
    assert cluster.outcome(name) == ("True", "Promoted"), done
    # Each step's first check waits an interval from the step's start, so it finds the
    # canary's traffic rather than no values: no spurious failed check.
    assert done["analysis"]["checks"] >= 2, done["analysis"]
    assert done["analysis"]["failedChecks"] == 0, done["analysis"]
    until(lambda: len(cluster.base_pods("mockb")) == 1, "one base pod, the promoted one")
    uids = cluster.base_pods("mockb")

    cluster.release("mockb-v1", "fail_percent=100")
    cluster.wait_for(lambda: cluster.status(name).get("phase") in ("Progressing", "Paused"),
                     "the failing release starts")
    cluster.wait_for(lambda: cluster.conditions(name).get("Succeeded") == ("False", "AnalysisFailed"),
                     "the failing release rolled back by its metrics")
    assert "request-success-rate" in cluster.status(name)["message"]
    cluster.wait_for(lambda: not cluster.paused("mockb-v1"), "base unpaused")
    assert cluster.base_pods("mockb") == uids, "base was never restarted"


def test_prometheus_down_holds_the_release_and_past_the_deadline_rolls_it_back(
    stack: Stack, cluster: Cluster, load: Load, prometheus_back: None
) -> None:
    # mockc's canary has not run yet: the long window holds no other release's samples.
    name = "rollouts-mockc"
    steps = [{"replicas": 1, "traffic": "20%"}, {"replicas": 1, "traffic": "50%"}, {"replicas": 1}]
    cluster.analyse(name, steps, OUTAGE_ANALYSIS)
    prometheus = stack.prometheus
    assert prometheus is not None

    announced = len(cluster.events(name))
    cluster.release("mockc-v1", "release=outage-held")
    cluster.wait_for(lambda: cluster.analysis(name).get("phase") == "Passed"
                     and cluster.status(name).get("phase") == "Progressing", "a first check passed")
    prometheus.stop()
    cluster.wait_for(lambda: cluster.analysis(name).get("phase") == "Holding", "the release holds")
    held_at, held = cluster.step(name), cluster.analysis(name)
    assert held["failedChecks"] == 0, held
    assert cluster.conditions(name)["MetricsAvailable"] == ("False", "PrometheusUnavailable")
    assert "Prometheus unavailable" in cluster.condition_message(name, "MetricsAvailable")
    time.sleep(2 * 3)  # two more checks while Prometheus is down, within the 18 s deadline
    during = cluster.analysis(name)
    assert during["phase"] == "Holding" and during["failedChecks"] == 0, during
    assert during["checks"] == held["checks"], "a check held is not counted as made"
    assert cluster.step(name) == held_at, "no advance while Prometheus is down"
    assert cluster.status(name)["phase"] == "Progressing"

    prometheus.start()
    cluster.wait_for(lambda: cluster.outcome(name), "the release resumed and decided")
    assert cluster.outcome(name) == ("True", "Promoted"), cluster.status(name)
    assert cluster.analysis(name)["failedChecks"] == 0, cluster.analysis(name)
    assert cluster.conditions(name)["MetricsAvailable"] == ("True", "PrometheusAnswered")
    assert [r for r, _ in cluster.events(name)[announced:]].count("MetricsUnavailable") == 1, (
        "the hold is announced once")

    # threshold 2 x interval 3s: 6 s of Prometheus down rolls the release back.
    short = {**OUTAGE_ANALYSIS, "threshold": 2}
    cluster.analyse(name, steps, short)
    until(lambda: len(cluster.base_pods("mockc")) == 1, "one base pod")
    uids = cluster.base_pods("mockc")
    cluster.release("mockc-v1", "release=outage-deadline")
    cluster.wait_for(lambda: cluster.analysis(name).get("phase") == "Passed"
                     and cluster.status(name).get("phase") == "Progressing", "a first check passed")
    prometheus.stop()
    cluster.wait_for(lambda: cluster.conditions(name).get("Succeeded")
                     == ("False", "AnalysisUnavailable"), "rolled back past the deadline", 60)
    status = cluster.status(name)
    assert status["analysis"]["failedChecks"] == 0, "an outage is no failed check"
    assert "past the 6s deadline" in status["message"], status["message"]
    assert cluster.conditions(name)["MetricsAvailable"] == ("False", "PrometheusUnavailable")
    cluster.wait_for(lambda: not cluster.paused("mockc-v1"), "base unpaused")
    assert cluster.base_pods("mockc") == uids, "base was never restarted"
    prometheus.start()


def _failed_counts(events: list[tuple[str, str]]) -> list[int]:
    """The failed-check counts the HaltAdvancement and AnalysisFailed events announce, in order."""
    counts = []
    for reason, message in events:
        found = (re.search(r"\(failed checks (\d+)/\d+\)$", message) if reason == "HaltAdvancement"
                 else re.search(r"failed checks threshold reached (\d+)", message)
                 if reason == "AnalysisFailed" else None)
        if found:
            counts.append(int(found.group(1)))
    return counts


def test_an_operator_killed_mid_analysis_resumes_from_status(
    stack: Stack, cluster: Cluster, load: Load, operator_back: None
) -> None:
    name = "rollouts-mockb"
    analysis = {**OUTAGE_ANALYSIS, "threshold": 4, "metrics": [
        {"name": "request-success-rate", "interval": "10s", "thresholdRange": {"min": 99}}]}
    cluster.analyse(name, [{"replicas": 1, "traffic": "20%"}, {"replicas": 1}], analysis)
    until(lambda: len(cluster.base_pods("mockb")) == 1, "one base pod")
    uids = cluster.base_pods("mockb")
    before = len(cluster.events(name))

    cluster.release("mockb-v1", "fail_percent=100", "release=killed")
    cluster.wait_for(lambda: (cluster.analysis(name).get("failedChecks") or 0) >= 2, "two failed checks")
    stack.kill_operator()
    killed = cluster.analysis(name)
    assert 2 <= killed["failedChecks"] < 4, killed
    time.sleep(2 * 3)  # two intervals with no operator: nothing checks, nothing moves
    assert cluster.analysis(name) == killed
    stack.start_operator()

    cluster.wait_for(lambda: cluster.conditions(name).get("Succeeded") == ("False", "AnalysisFailed"),
                     "rolled back at the threshold after the restart")
    ended = cluster.analysis(name)
    assert ended["failedChecks"] == 4, ended
    assert ended["checks"] == 4, "those before the kill and those after: none repeated or lost"
    assert _failed_counts(cluster.events(name)[before:]) == [1, 2, 3, 4]
    cluster.wait_for(lambda: not cluster.paused("mockb-v1"), "base unpaused")
    assert cluster.base_pods("mockb") == uids, "base was never restarted"


def _convert(cluster: Cluster, tmp_path: Path, manifest: str) -> str:
    """`kubectl lane convert` of a manifest, as the user runs it; its output applied."""
    source = tmp_path / "manifest.yaml"
    source.write_text(manifest)
    plugin = Path(sys.executable).with_name("kubectl-lane")
    converted = subprocess.run([str(plugin), "convert", "-f", str(source)],
                               capture_output=True, text=True, timeout=60)
    assert converted.returncode == 0, converted.stderr
    cluster.kubectl("apply", "-f", "-", stdin=converted.stdout)
    return converted.stdout


FLAGGER = """\
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: mockc
  namespace: default
  annotations:
    lanes.dev/canary-labels: ASM_TRAFFIC_TAG=canary
spec:
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: mockc-v1
  service:
    port: 8000
  analysis:
    interval: 3s
    threshold: 3
    stepWeights: [20, 50]
    metrics:
    - name: request-success-rate
      interval: 10s
      thresholdRange:
        min: 99
    - name: latency
      templateRef:
        name: latency
      interval: 10s
      thresholdRange:
        max: 5000
---
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata:
  name: latency
  namespace: default
spec:
  provider:
    type: prometheus
    address: {prometheus}
  query: |
    histogram_quantile(0.99, sum by (le) (rate({{__name__="envoy_cluster_upstream_rq_time_bucket", {subset}}}[{{{{ interval }}}}])))
"""

ARGO = """\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: mocka
  namespace: default
spec:
  workloadRef:
    apiVersion: apps/v1
    kind: Deployment
    name: mocka-v1
  strategy:
    canary:
      canaryMetadata:
        labels:
          ASM_TRAFFIC_TAG: canary
      trafficRouting:
        istio:
          virtualService:
            name: mocka
      steps:
      - setWeight: 20
      - setWeight: 50
      analysis:
        templates:
        - templateName: success-rate
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: success-rate
  namespace: default
spec:
  metrics:
  - name: success-rate
    interval: 3s
    failureLimit: 2
    successCondition: result[0] >= 0.99
    provider:
      prometheus:
        address: {prometheus}
        query: |
          sum(rate({{__name__="envoy_cluster_upstream_rq_xx", {subset}, envoy_response_code_class!="5"}}[10s]))
          /
          sum(rate({{__name__="envoy_cluster_upstream_rq_xx", {subset}}}[10s]))
"""


def test_a_flagger_canary_and_an_argo_rollout_converted_and_run(
    stack: Stack, cluster: Cluster, load: Load, tmp_path: Path
) -> None:
    address = stack.prometheus_url
    for sample in ("rollouts-mocka", "rollouts-mockc"):
        cluster.kubectl("delete", f"workloadrollout/{sample}", "--wait=true")

    flagger = _convert(cluster, tmp_path, FLAGGER.format(prometheus=address, subset=ENVOY_SUBSET))
    assert "kind: WorkloadRollout" in flagger and "kind: MetricTemplate" in flagger
    cluster.wait_for(lambda: cluster.status("mockc").get("phase") == "Healthy", "mockc Healthy")
    cluster.release("mockc-v1", "release=flagger")
    cluster.wait_for(lambda: cluster.outcome("mockc"), "the Flagger canary decided")
    done = cluster.status("mockc")
    assert cluster.outcome("mockc") == ("True", "Promoted"), done
    assert [m["name"] for m in done["analysis"]["metrics"]] == ["request-success-rate", "latency"]
    assert all(m["ok"] for m in done["analysis"]["metrics"]), done["analysis"]
    assert done["analysis"]["checks"] >= 2, "one check per weight: 20%, then 50%"

    argo = _convert(cluster, tmp_path, ARGO.format(prometheus=address, subset=ENVOY_SUBSET))
    assert "templateRef" in argo
    cluster.wait_for(lambda: cluster.status("mocka").get("phase") == "Healthy", "mocka Healthy")
    until(lambda: len(cluster.base_pods("mocka")) == 1, "one mocka base pod")
    uids = cluster.base_pods("mocka")
    cluster.release("mocka-v1", "fail_percent=100")
    cluster.wait_for(lambda: cluster.conditions("mocka").get("Succeeded")
                     == ("False", "AnalysisFailed"), "the Argo canary rolled back by its metrics")
    status = cluster.status("mocka")
    assert status["analysis"]["failedChecks"] == 3, "Argo's failureLimit 2: the third failure"
    assert "success-rate" in status["message"] and "0.99" in status["message"], status["message"]
    cluster.wait_for(lambda: not cluster.paused("mocka-v1"), "mocka base unpaused")
    assert cluster.base_pods("mocka") == uids, "base was never restarted"


def _from_git(deployment: str, **env: str) -> str:
    """The sample's Deployment as a repository holds it, with `env` added to its container."""
    import yaml

    docs = yaml.safe_load_all((SAMPLE / "app.yaml").read_text())
    [body] = [d for d in docs if d and d["kind"] == "Deployment" and d["metadata"]["name"] == deployment]
    body["spec"]["template"]["spec"]["containers"][0]["env"] += [
        {"name": k, "value": v} for k, v in env.items()]
    return json.dumps(body)


def test_a_failed_revision_reapplied_as_gitops_does_starts_nothing_until_retried(
    cluster: Cluster, load: Load
) -> None:
    """Argo CD's or Flux's self-heal re-applies the manifest whose release failed, every 10 s for
    a minute: no canary starts, nothing writes the Deployment's template, base requests never
    fail; `kubectl lane retry` then releases it again.

    On mockb, whose rollout the tests before left in place (mocka's and mockc's were replaced by
    the converted ones); the manifest's own `release` value makes it a revision of its own.
    """
    name, deployment = "rollouts-mockb", "mockb-v1"
    cluster.analyse(name, [{"replicas": 1, "traffic": "20%"}, {"replicas": 1}], ANALYSIS)
    manifest = _from_git(deployment, fail_percent="100", release="gitops")
    before = cluster.status(name).get("failedRevision")
    cluster.kubectl("apply", "-f", "-", stdin=manifest)
    cluster.wait_for(lambda: cluster.status(name).get("failedRevision") not in (None, before),
                     "the new revision rolled back by its metrics")
    cluster.wait_for(lambda: cluster.status(name).get("phase") == "Healthy", "settled")
    failed = cluster.status(name)["failedRevision"]
    assert failed["reason"] == "AnalysisFailed", failed
    uids = cluster.base_pods("mockb")

    def canaries() -> int:
        found = json.loads(cluster.kubectl("get", "deployments", "-l", "app=mockb", "-o", "json"))
        return sum(d["metadata"]["name"] != deployment for d in found["items"])

    cluster.kubectl("apply", "-f", "-", stdin=manifest)
    generation = json.loads(cluster.kubectl("get", f"deployment/{deployment}", "-o", "json"))[
        "metadata"]["generation"]
    seen = 0
    for _ in range(6):
        cluster.kubectl("apply", "-f", "-", stdin=manifest)
        for _ in range(10):
            seen += canaries()
            time.sleep(1.0)
    assert seen == 0, "a canary was started for the failed revision"
    current = json.loads(cluster.kubectl("get", f"deployment/{deployment}", "-o", "json"))
    assert current["metadata"]["generation"] == generation, "something wrote the Deployment's spec"
    status = cluster.status(name)
    assert status["phase"] == "Healthy" and status["failedRevision"] == failed, status
    assert cluster.base_pods("mockb") == uids, "the base kept serving the stable revision"
    assert [reason for reason, _ in cluster.events(name)].count("FailedRevisionHeld") == 1

    plugin = Path(sys.executable).with_name("kubectl-lane")
    retried = subprocess.run([str(plugin), "retry", f"rollout/{name}", f"--kubeconfig={cluster.stack.kubeconfig}"],
                             capture_output=True, text=True, timeout=60)
    assert retried.returncode == 0, retried.stderr
    cluster.wait_for(lambda: canaries() == 1, "the release started again")
    cluster.wait_for(lambda: cluster.conditions(name).get("Succeeded") == ("False", "AnalysisFailed"),
                     "the still failing revision rolled back again by its metrics")
