"""Two operator processes on the real API server: one leads and writes, the other stands by.

The leader is SIGKILLed while a release waits at a step; the standby takes the Lease once it
expires, resumes the release from its status, and it completes with one canary Deployment,
no base pod lost before promotion, and nothing written by the replica that does not lead.
"""

from __future__ import annotations

import time
import urllib.request
import uuid

from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from lanes_testbed.processes import free_port

from .rollout_support import IMAGE, Cluster, OperatorProcess, PodReadier, deployment, wait_for_webhook, workload_rollout
from .test_rollout_crash import Monitor

V1, V2 = f"{IMAGE}:1.0", f"{IMAGE}:2.0"
# Short timings keep the test quick; the chart's 15/10/2 s are measured by bench/failover.py.
TIMINGS = ("--lease-duration", "4", "--renew-deadline", "3", "--retry-period", "0.5")


class Replica(OperatorProcess):
    """An operator process with leader election and its own metrics port."""

    def __init__(self, name: str, lease: str, namespace: str, plane, log_dir) -> None:
        self.name = name
        self.metrics_port = free_port()
        super().__init__(
            plane.kubeconfig, f"{name}-{lease}.lanes.dev", log_dir / f"{name}.log",
            env={"POD_NAME": name, "POD_NAMESPACE": namespace, "LANES_WEBHOOK_SECRET": f"{lease}-cert"},
            args=("--leader-elect", "--lease-name", lease, "--metrics-port", str(self.metrics_port),
                  "--metrics-host", "127.0.0.1", *TIMINGS),
        )

    def metrics(self) -> dict[str, float]:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()
        except OSError:
            return {}  # not listening yet
        totals: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in ("lanes_api_writes_total", "lanes_leader"):
                    totals[sample.name] = totals.get(sample.name, 0) + sample.value
        return totals

    def writes(self) -> float:
        return self.metrics().get("lanes_api_writes_total", 0)


def holder(kube_api: client.ApiClient, namespace: str, lease: str) -> str | None:
    try:
        return client.CoordinationV1Api(kube_api).read_namespaced_lease(lease, namespace).spec.holder_identity
    except client.exceptions.ApiException as error:
        if error.status == 404:
            return None
        raise


def test_the_standby_takes_over_a_release_when_the_leader_is_killed(
    control_plane, kube_api, namespace, tmp_path
) -> None:
    lease = f"lanes-{uuid.uuid4().hex[:6]}"
    cluster = Cluster(kube_api, namespace)
    replicas = {name: Replica(name, lease, namespace, control_plane, tmp_path) for name in ("a", "b")}
    monitor_api = control_plane.api_client()
    admission = client.AdmissionregistrationV1Api(kube_api)
    try:
        with PodReadier(kube_api, namespace):
            for replica in replicas.values():
                replica.start()
            for replica in replicas.values():
                wait_for_webhook(kube_api, replica.config_name, replica.port)
            first = cluster.until(lambda: holder(kube_api, namespace, lease), "a replica to take the Lease")
            leader, standby = replicas[first], replicas[({"a", "b"} - {first}).pop()]
            cluster.create_deployment(deployment("mocka-v1", "mocka", V1, replicas=2))
            cluster.create_rollout(workload_rollout(
                "rollouts-mocka", "mocka-v1", [{"replicas": 1, "pause": {}}, {"replicas": "100%"}]))
            cluster.wait_phase("rollouts-mocka", "Healthy")
            cluster.until(lambda: len(cluster.pods({"app": "mocka"})) == 2, "2 base pods")
            assert leader.writes() > 0
            assert standby.writes() == 0
            assert (leader.metrics()["lanes_leader"], standby.metrics()["lanes_leader"]) == (1, 0)

            base = {p["metadata"]["uid"] for p in cluster.pods({"app": "mocka"})}
            with Monitor(monitor_api, namespace, base) as monitor:
                # The standby serves the webhook too: the template change is held either way.
                assert cluster.set_image("mocka-v1", V2).spec.paused is True
                paused = cluster.wait_phase("rollouts-mocka", "Paused", "StepPaused")
                assert standby.writes() == 0
                leader.kill()
                killed = time.monotonic()
                cluster.until(lambda: holder(kube_api, namespace, lease) == standby.name,
                              "the standby to take the Lease", timeout=30)
                took = time.monotonic() - killed
                cluster.request("rollouts-mocka", {
                    "lanes.dev/approve": str(paused["canaryStatus"]["currentStepIndex"])})
                cluster.until(lambda: (cluster.status("rollouts-mocka").get("canaryStatus") or {}).get(
                    "currentStepIndex") == 2 and cluster.status("rollouts-mocka")["phase"] == "Paused",
                    "the last step reached, waiting to promote")
                cluster.request("rollouts-mocka", {"lanes.dev/approve": "2"})
                status = cluster.wait_phase("rollouts-mocka", "Healthy", timeout=60)
                monitor.check()
            assert took <= 4 + 2 + 1, f"takeover took {took:.1f}s"
            assert {c["type"]: c["reason"] for c in status["conditions"]}["Succeeded"] == "Promoted"
            assert monitor.problems == []
            assert len(monitor.canary_uids) == 1, "the canary Deployment was created more than once"
            assert standby.writes() > 0

            # The old leader comes back as a standby and writes nothing.
            leader.start()
            wait_for_webhook(kube_api, leader.config_name, leader.port)
            cluster.until(lambda: leader.metrics().get("lanes_leader") == 0, "the restarted replica up")
            cluster.request("rollouts-mocka", {"lanes.dev/pause": None})
            time.sleep(2)
            assert leader.writes() == 0
            assert holder(kube_api, namespace, lease) == standby.name

            # A graceful stop hands the Lease over at once, without waiting for it to expire.
            standby.terminate()
            stopped = time.monotonic()
            cluster.until(lambda: holder(kube_api, namespace, lease) == leader.name,
                          "the Lease handed over on a graceful stop", timeout=30)
            assert time.monotonic() - stopped < 4
            cluster.delete_rollouts()
            assert leader.writes() > 0
    finally:
        for replica in replicas.values():
            replica.kill()
        monitor_api.close()
        for replica in replicas.values():
            for delete in (admission.delete_mutating_webhook_configuration,
                           admission.delete_validating_webhook_configuration):
                try:
                    delete(replica.config_name)
                except client.exceptions.ApiException as error:
                    if error.status != 404:
                        raise
