"""Crash safety: the operator, run as its own process, is SIGKILLed at every step of a release.

It is killed and restarted whenever the rollout's status moves (phase, step or step state)
and right after every approve, so each step is resumed by a fresh process from the stored
status alone. Throughout, a monitor checks that there is never more than one canary
Deployment and that it is never re-created, and that no pod of the base's running version
goes away before promotion; and the release still completes.
"""

from __future__ import annotations

import time
import uuid

import pytest
from kubernetes import client

from .rollout_support import (
    IMAGE,
    Background,
    Cluster,
    OperatorProcess,
    PodReadier,
    deployment,
    wait_for_webhook,
    workload_rollout,
)

pytestmark = pytest.mark.integration

V1, V2 = f"{IMAGE}:1.0", f"{IMAGE}:2.0"
STEPS = [{"replicas": 1}, {"replicas": "50%"}, {"replicas": "100%"}]


class Monitor(Background):
    """Polls the namespace on its own connection and records every violation it sees."""

    def __init__(self, api: client.ApiClient, namespace: str, base_pods: set[str]):
        super().__init__("rollout-monitor")
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.namespace = namespace
        self.base_pods = base_pods
        self.canary_uids: set[str] = set()
        self.problems: list[str] = []
        self.promoting = False

    def _run(self) -> None:
        while not self._stop.is_set():
            self.check()
            time.sleep(0.05)

    def check(self) -> None:
        """One look; pods are listed before the status is read, so a pod missing while the
        status (read later) still shows no promotion was lost before promotion began."""
        canaries = self.apps.list_namespaced_deployment(self.namespace, label_selector="lanes.dev/canary")
        if len(canaries.items) > 1:
            self.problems.append(f"{len(canaries.items)} canary Deployments")
        self.canary_uids.update(d.metadata.uid for d in canaries.items)
        pods = self.core.list_namespaced_pod(self.namespace, label_selector="app=mocka,!lanes.dev/canary")
        alive = {p.metadata.uid for p in pods.items if not p.metadata.deletion_timestamp}
        rollout = self.custom.get_namespaced_custom_object(
            "lanes.dev", "v1alpha1", self.namespace, "workloadrollouts", "rollouts-mocka"
        )
        phase = (rollout.get("status") or {}).get("phase")
        if phase in ("Promoting", "Healthy") and self.canary_uids:
            self.promoting = True
        if self.promoting:
            return
        lost = self.base_pods - alive
        if lost:
            self.problems.append(f"base pods lost in phase {phase}: {sorted(lost)}")


def position(status: dict) -> tuple:
    canary = status.get("canaryStatus") or {}
    return status.get("phase"), canary.get("currentStepIndex"), canary.get("currentStepState")


def test_sigkill_at_every_step_loses_nothing_and_completes(
    control_plane, kube_api, namespace, tmp_path
) -> None:
    cluster = Cluster(kube_api, namespace)
    config = f"crash-{uuid.uuid4().hex[:6]}.lanes.dev"
    operator = OperatorProcess(control_plane.kubeconfig, config, tmp_path / "operator.log")
    kills = 0

    def crash() -> None:
        nonlocal kills
        operator.kill()
        kills += 1
        operator.start()

    monitor_api = control_plane.api_client()
    with PodReadier(kube_api, namespace):
        operator.start()
        try:
            wait_for_webhook(kube_api, config, operator.port)
            cluster.create_deployment(deployment("mocka-v1", "mocka", V1, replicas=4))
            cluster.create_rollout(workload_rollout("rollouts-mocka", "mocka-v1", STEPS))
            cluster.wait_phase("rollouts-mocka", "Healthy")
            cluster.until(lambda: len(cluster.pods({"app": "mocka"})) == 4, "4 base pods")
            cluster.until(
                lambda: cluster.deployment("mocka-v1")["metadata"]["labels"].get("lanes.dev/rollout"),
                "the base labelled",
            )
            base = {p["metadata"]["uid"] for p in cluster.pods({"app": "mocka"})}
            with Monitor(monitor_api, namespace, base) as monitor:
                assert cluster.set_image("mocka-v1", V2).spec.paused is True
                crash()
                seen = position(cluster.status("rollouts-mocka"))
                deadline = time.monotonic() + 240
                while True:
                    status = cluster.until(
                        lambda: (lambda s: s if position(s) != seen else None)(cluster.status("rollouts-mocka")),
                        f"the rollout to move on from {seen}",
                        timeout=60,
                    )
                    seen = position(status)
                    if seen[0] == "Healthy":
                        break
                    if seen[2] == "StepPaused" and seen[0] == "Paused":
                        cluster.request("rollouts-mocka", {"lanes.dev/approve": str(seen[1])})
                    crash()
                    assert time.monotonic() < deadline, "the release did not complete"
                monitor.check()
            conditions = {c["type"]: c["reason"] for c in status["conditions"]}
            assert conditions["Succeeded"] == "Promoted"
            assert monitor.problems == []
            assert len(monitor.canary_uids) == 1, "the canary Deployment was created more than once"
            assert kills >= 8
            cluster.until(lambda: cluster.deployment("mocka-v1-canary") is None, "the canary deleted")
            cluster.until(
                lambda: {p["spec"]["containers"][0]["image"] for p in cluster.pods({"app": "mocka"})} == {V2}
                and len(cluster.pods({"app": "mocka"})) == 4,
                "the base on v2",
            )
            cluster.delete_rollouts()
        finally:
            operator.kill()
            monitor_api.close()
