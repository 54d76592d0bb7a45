"""Faults of the control plane mid-release, on a control plane of this module's own.

kube-apiserver restarted, etcd restarted, and kube-apiserver stopped for 30 s (the network to it
cut): the operator, its own process, reconnects and relists, and the release that was in
progress completes, with one canary Deployment and no base pod lost before promotion. The
shared control plane cannot be restarted under other tests, so these three share one plane.
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client

from lanes_testbed.binaries import ensure_binaries
from lanes_testbed.controlplane import ControlPlane

from .conftest import wait_for_default_service_account
from .rollout_support import IMAGE, Cluster, OperatorProcess, PodReadier, deployment, wait_for_webhook, workload_rollout
from .test_rollout_crash import Monitor, position

V1, V2 = f"{IMAGE}:1.0", f"{IMAGE}:2.0"
STEPS = [{"replicas": 1, "pause": {"duration": 5}}, {"replicas": "100%", "pause": {"duration": 1}}]
log = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def fault_plane(tmp_path_factory, pytestconfig, installed_manifests) -> Iterator[ControlPlane]:
    """A control plane these tests may break."""
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        binaries = ensure_binaries(progress=sys.stderr)
    plane = ControlPlane(tmp_path_factory.mktemp("fault-plane"), binaries, progress=None)
    with plane:
        plane.install_manifests(installed_manifests)
        yield plane


class Patient:
    """Runs a background check through an outage: calls that fail while the server is away
    are tried again, since seeing nothing is not a violation."""

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception as error:  # noqa: BLE001 (the API server is away; look again)
                log.debug("%s: %s", type(self).__name__, error)
                time.sleep(0.2)


class OutageReadier(Patient, PodReadier):
    def step(self) -> None:
        PodReadier._run(self)


class OutageMonitor(Patient, Monitor):
    def step(self) -> None:
        self.check()
        time.sleep(0.05)


@pytest.mark.parametrize(("component", "down_for"), [
    pytest.param("kube-apiserver", 0.0, id="apiserver-restarted"),
    pytest.param("etcd", 0.0, id="etcd-restarted"),
    pytest.param("kube-apiserver", 30.0, id="apiserver-away-30s"),
])
def test_a_release_completes_through_a_control_plane_fault(
    fault_plane: ControlPlane, component: str, down_for: float, tmp_path
) -> None:
    api = fault_plane.api_client()
    namespace = f"fault-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
    wait_for_default_service_account(client.CoreV1Api(api), namespace)
    cluster = Cluster(api, namespace)
    operator = OperatorProcess(fault_plane.kubeconfig, f"{namespace}.lanes.dev", tmp_path / "operator.log")
    monitor_api = fault_plane.api_client()
    try:
        with OutageReadier(api, namespace):
            operator.start()
            wait_for_webhook(api, operator.config_name, operator.port)
            cluster.create_deployment(deployment("mocka-v1", "mocka", V1, replicas=2))
            cluster.create_rollout(workload_rollout("rollouts-mocka", "mocka-v1", STEPS))
            cluster.wait_phase("rollouts-mocka", "Healthy")
            cluster.until(lambda: len(cluster.pods({"app": "mocka"})) == 2, "2 base pods")
            cluster.until(lambda: cluster.deployment("mocka-v1")["metadata"]["labels"].get("lanes.dev/rollout"),
                          "the base labelled")
            base = {p["metadata"]["uid"] for p in cluster.pods({"app": "mocka"})}
            with OutageMonitor(monitor_api, namespace, base) as monitor:
                assert cluster.set_image("mocka-v1", V2).spec.paused is True
                cluster.until(lambda: cluster.deployment("mocka-v1-canary") and position(
                    cluster.status("rollouts-mocka"))[0] in ("Progressing", "Paused"), "the release under way")
                before = position(cluster.status("rollouts-mocka"))
                fault_plane.restart(component, down_for)
                assert operator.process.poll() is None, "the operator exited during the outage"
                status = cluster.wait_phase("rollouts-mocka", "Healthy", timeout=120)
                monitor.check()
            assert before[0] in ("Progressing", "Paused"), f"the fault did not come mid-release: {before}"
            assert {c["type"]: c["reason"] for c in status["conditions"]}["Succeeded"] == "Promoted"
            assert monitor.problems == []
            assert len(monitor.canary_uids) == 1, "the canary Deployment was created more than once"
            cluster.until(lambda: cluster.deployment("mocka-v1-canary") is None, "the canary deleted")
            cluster.until(lambda: {p["spec"]["containers"][0]["image"] for p in cluster.pods({"app": "mocka"})} == {V2}
                          and len(cluster.pods({"app": "mocka"})) == 2, "the base on v2")
    finally:
        operator.kill()
        monitor_api.close()
        api.close()
