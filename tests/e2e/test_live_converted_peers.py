"""Peers' manifests as their users write them, converted by `kubectl lane convert` and run on the
dev stack: no lanes annotation, the group and lanes generated, the release decided by metrics.

- a Flagger Canary as its Istio tutorial writes it (`stepWeight`/`maxWeight`, the built-in
  `request-success-rate` and `request-duration`, `service.gateways`, `progressDeadlineSeconds`)
  on mockb, given with its Deployment: the release advances a weight per passing check and
  promotes, and one whose canary answers 500 rolls back by itself;
- an Argo Rollout with `setWeight`/`pause` steps and a background analysis passing `args` to an
  AnalysisTemplate (`{{args.service}}`, `{{args.namespace}}` from a `fieldRef`) on mockc: promoted
  after its steps and checks, and rolled back at Argo's `failureLimit` when the canary fails.

Requests enter mockb at the gateway untagged (split by the Flagger release's steps) and tagged
with the stable lane (which must never fail while mockb's canary fails); mockb calls mockc
untagged, which the Argo release's steps split.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lanes_testbed.stack import Stack

from .chain import get, until
from .test_live_analysis import SAMPLE, Cluster, Load, _convert

MOCKB_STABLE = "mockb-default-stable"
"""The stable lane convert generates for the lone Canary `mockb` in namespace default."""

FLAGGER = """\
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: mockb
  namespace: default
spec:
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: mockb-v1
  progressDeadlineSeconds: 120
  service:
    name: mockb
    port: 8000
    targetPort: 8000
    gateways:
    - istio-system/ingressgateway
    hosts:
    - '*'
  analysis:
    interval: 4s
    threshold: 2
    maxWeight: 50
    stepWeight: 25
    metrics:
    - name: request-success-rate
      thresholdRange:
        min: 99
      interval: 10s
    - name: request-duration
      thresholdRange:
        max: 5000
      interval: 10s
"""

ARGO = """\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: mockc
  namespace: default
spec:
  workloadRef:
    apiVersion: apps/v1
    kind: Deployment
    name: mockc-v1
  strategy:
    canary:
      stableService: mockc
      analysis:
        templates:
        - templateName: success-rate
        args:
        - name: service
          value: mockc
        - name: namespace
          valueFrom:
            fieldRef:
              fieldPath: metadata.namespace
      steps:
      - setWeight: 25
      - pause: {{duration: 4s}}
      - setWeight: 50
      - pause: {{duration: 4s}}
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: success-rate
  namespace: default
spec:
  args:
  - name: service
  - name: namespace
  metrics:
  - name: success-rate
    interval: 4s
    failureLimit: 1
    successCondition: result[0] >= 0.99
    provider:
      prometheus:
        address: {prometheus}
        query: |
          sum(rate({{__name__="envoy_cluster_upstream_rq_xx", {subset}, envoy_response_code_class!="5"}}[10s]))
          /
          sum(rate({{__name__="envoy_cluster_upstream_rq_xx", {subset}}}[10s]))
"""
# The canary lane's subset of the service the template's arguments name, from Envoy's stats.
ARGO_SUBSET = (
    'cluster_name=~"outbound\\\\|[0-9]+\\\\|[^|]*canary\\\\|'
    '{{args.service}}\\\\.{{args.namespace}}\\\\.svc\\\\.cluster\\\\.local"'
)


def with_deployment(name: str, manifest: str) -> str:
    """The sample's Deployment `name` and `manifest`, as one file: what a lone canary's user
    gives `convert`, so it labels the Deployment's pods into the generated stable lane."""
    [deployment] = [d for d in yaml.safe_load_all((SAMPLE / "app.yaml").read_text())
                    if d and d["kind"] == "Deployment" and d["metadata"]["name"] == name]
    return f"{yaml.safe_dump(deployment)}---\n{manifest}"


def steps_ready(cluster: Cluster, name: str) -> list[str]:
    """The steps whose canary pods became ready, in order, from the rollout's events."""
    return [message.split(":")[0] for reason, message in cluster.events(name) if reason == "StepReady"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("peers") / "stack", gateway_port=0) as running:
        yield running


@pytest.fixture(scope="module")
def cluster(stack: Stack) -> Cluster:
    """The mock chain's Gateway, Services and Deployments; no lanes of the sample's."""
    ours = Cluster(stack)
    ours.kubectl("apply", "-f", str(SAMPLE / "app.yaml"))
    return ours


def test_a_tutorial_flagger_canary_and_an_argo_rollout_with_args_converted_and_run(
    stack: Stack, cluster: Cluster, tmp_path: Path
) -> None:
    flagger = _convert(cluster, tmp_path, with_deployment("mockb-v1", FLAGGER))
    for kind in ("SwimLaneGroup", "SwimLane", "WorkloadRollout"):
        assert f"kind: {kind}" in flagger
    assert "progressDeadlineSeconds: 120" in flagger
    cluster.wait_for(lambda: cluster.status("mockb").get("phase") == "Healthy", "mockb Healthy")
    until(lambda: get(stack.gateway_url, "/", {"x-asm-prefer-tag": MOCKB_STABLE})[0] == 200,
          "mockb's stable lane served at the gateway", 120)

    with Load(stack.gateway_url, (None, MOCKB_STABLE), MOCKB_STABLE, "/") as load:
        cluster.release("mockb-v1", "release=flagger-healthy")
        cluster.wait_for(lambda: cluster.outcome("mockb"), "the Flagger canary decided", 240)
        done = cluster.status("mockb")
        assert cluster.outcome("mockb") == ("True", "Promoted"), done
        assert [m["name"] for m in done["analysis"]["metrics"]] == [
            "request-success-rate", "request-duration"]
        assert done["analysis"]["checks"] >= 2, "a passing check per weight: 25%, then 50%"
        assert steps_ready(cluster, "mockb") == ["step 1/2", "step 2/2"]
        until(lambda: len(cluster.base_pods("mockb")) == 1, "one mockb base pod, the promoted one")
        uids = cluster.base_pods("mockb")

        cluster.release("mockb-v1", "fail_percent=100")
        cluster.wait_for(lambda: cluster.conditions("mockb").get("Succeeded")
                         == ("False", "AnalysisFailed"), "the Flagger canary rolled back", 240)
        status = cluster.status("mockb")
        assert status["analysis"]["failedChecks"] == 2, "Flagger's threshold 2"
        assert "request-success-rate" in status["message"], status["message"]
        cluster.wait_for(lambda: not cluster.paused("mockb-v1"), "mockb base unpaused")
        assert cluster.base_pods("mockb") == uids, "base was never restarted"
    assert load.base_errors == [], load.base_errors[:5]

    argo = _convert(cluster, tmp_path, with_deployment(
        "mockc-v1", ARGO.format(prometheus=stack.prometheus_url, subset=ARGO_SUBSET)))
    assert "kind: SwimLaneGroup" in argo and "mockc-success-rate" in argo
    assert "{{args." not in argo, "the Rollout's arguments are filled in"
    cluster.wait_for(lambda: cluster.status("mockc").get("phase") == "Healthy", "mockc Healthy")
    until(lambda: len(cluster.base_pods("mockc")) == 1, "one mockc base pod")

    with Load(stack.gateway_url, (None, MOCKB_STABLE), MOCKB_STABLE, "/"):
        cluster.release("mockc-v1", "release=argo-healthy")
        cluster.wait_for(lambda: cluster.outcome("mockc"), "the Argo canary decided", 240)
        done = cluster.status("mockc")
        assert cluster.outcome("mockc") == ("True", "Promoted"), done
        assert done["analysis"]["failedChecks"] == 0, done["analysis"]
        assert steps_ready(cluster, "mockc") == ["step 1/2", "step 2/2"]
        until(lambda: len(cluster.base_pods("mockc")) == 1, "one mockc base pod, the promoted one")
        uids = cluster.base_pods("mockc")

        cluster.release("mockc-v1", "fail_percent=100")
        cluster.wait_for(lambda: cluster.conditions("mockc").get("Succeeded")
                         == ("False", "AnalysisFailed"), "the Argo canary rolled back", 240)
        status = cluster.status("mockc")
        assert status["analysis"]["failedChecks"] == 2, "Argo's failureLimit 1: the second failure"
        assert "success-rate" in status["message"] and "0.99" in status["message"], status["message"]
        cluster.wait_for(lambda: not cluster.paused("mockc-v1"), "mockc base unpaused")
        assert cluster.base_pods("mockc") == uids, "base was never restarted"
