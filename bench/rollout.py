"""How fast a WorkloadRollout reacts: template change -> canary Deployment, approve -> promotion.

Usage: python bench/rollout.py [--trials N] [--kubeconfig PATH]

Without --kubeconfig a local control plane (etcd, kube-apiserver, kube-controller-manager) is
started with lanes' CRDs, and a local node runs the pods. The operator (lane and rollout
handlers, admission webhook) runs as its own process. Each trial sets a new image on the base
Deployment and times, from a watch on the namespace's Deployments:

- the `kubectl set image` call itself, which passes through the admission webhook;
- template change -> the canary Deployment created;
- approve (the intent annotation written) -> promotion started (the base unpaused).

Then it waits for the release to finish before the next trial.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from _support import Latest
from convergence import cluster, report
from kubernetes import client, config

from lanes_testbed.node import LocalNode
from lanes_testbed.processes import free_port

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "registry.cn-beijing.aliyuncs.com/aliacs-app-catalog/go-http-sample"
ROLLOUTS = ("lanes.dev", "v1alpha1")


class Deployments(Latest):
    """A watch on one namespace's Deployments, keeping the latest of each and when it came."""

    def __init__(self, api: client.ApiClient, namespace: str):
        super().__init__("the Deployments did not reach the expected state", timeout=60.0)
        self.follow(lambda obj: obj.metadata.name, client.AppsV1Api(api).list_namespaced_deployment, namespace)


def operator_process(kubeconfig: str, log: Path) -> tuple[subprocess.Popen, int, str]:
    """The lane and rollout handlers as one operator process, with the webhook on a free port."""
    port, name = free_port(), f"bench-{uuid.uuid4().hex[:6]}.lanes.dev"
    env = {**os.environ, "LANES_WEBHOOK_PORT": str(port), "LANES_WEBHOOK_CONFIG": name}
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "lanes.operator", "--kubeconfig", kubeconfig,
             "--metrics-port", "-1"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    return process, port, name


def wait_for(probe: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def phase(custom: client.CustomObjectsApi, namespace: str) -> tuple[str | None, str | None]:
    body = custom.get_namespaced_custom_object(*ROLLOUTS, namespace, "workloadrollouts", "bench")
    status = body.get("status") or {}
    return status.get("phase"), (status.get("canaryStatus") or {}).get("currentStepState")


def webhook_at(api: client.ApiClient, name: str, port: int) -> bool:
    try:
        found = client.AdmissionregistrationV1Api(api).read_mutating_webhook_configuration(name)
    except client.exceptions.ApiException:
        return False
    return any(f":{port}/" in (w.client_config.url or "") for w in found.webhooks or [])


def base_deployment(image: str) -> dict:
    labels = {"app": "bench"}
    return {
        "metadata": {"name": "bench"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": {**labels, "lane": "base"}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "default", "image": image, "env": [{"name": "app", "value": "bench"}]}],
                },
            },
        },
    }


def run(kubeconfig: str, trials: int) -> None:
    api = config.new_client_from_config(config_file=kubeconfig)
    core, apps, custom = client.CoreV1Api(api), client.AppsV1Api(api), client.CustomObjectsApi(api)
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": namespace}})
    state = Path(tempfile.mkdtemp(prefix="lanes-bench-rollout-"))
    process, port, webhook = operator_process(kubeconfig, state / "operator.log")
    deployments = Deployments(api, namespace)
    admitted, canary_created, promotion_started = [], [], []
    try:
        with LocalNode(kubeconfig, f"bench-{namespace}", namespaces=[namespace], log_dir=state):
            wait_for(lambda: webhook_at(api, webhook, port), "the webhook registered")
            apps.create_namespaced_deployment(namespace, base_deployment(f"{IMAGE}:1.0"))
            custom.create_namespaced_custom_object(*ROLLOUTS, namespace, "workloadrollouts", {
                "apiVersion": "lanes.dev/v1alpha1", "kind": "WorkloadRollout", "metadata": {"name": "bench"},
                "spec": {"workloadRef": {"name": "bench"}, "strategy": {"canary": {
                    "steps": [{"replicas": 1}],
                    "patchPodTemplateMetadata": {"labels": {"lane": "canary"}}}}},
            })
            wait_for(lambda: phase(custom, namespace)[0] == "Healthy", "the rollout Healthy")
            deployments.wait(lambda d: "bench" in d and "lanes.dev/rollout" in (d["bench"].metadata.labels or {}))
            for trial in range(trials):
                image = f"{IMAGE}:{trial + 2}.0"
                patch = {"spec": {"template": {"spec": {"containers": [{"name": "default", "image": image}]}}}}
                started = time.monotonic()
                stored = apps.patch_namespaced_deployment("bench", namespace, patch)
                admitted.append(time.monotonic() - started)
                assert stored.spec.paused, "the webhook did not hold the base"
                seen = deployments.wait(
                    lambda d: "bench-canary" in d and d["bench-canary"].spec.template.spec.containers[0].image == image
                )
                canary_created.append(seen - started)
                wait_for(lambda: phase(custom, namespace) == ("Paused", "StepPaused"), "the canary ready")
                started = time.monotonic()
                custom.patch_namespaced_custom_object(
                    *ROLLOUTS, namespace, "workloadrollouts", "bench",
                    {"metadata": {"annotations": {"lanes.dev/approve": "1"}}},
                )
                seen = deployments.wait(lambda d: not d["bench"].spec.paused)
                promotion_started.append(seen - started)
                deployments.wait(lambda d: "bench-canary" not in d)
                wait_for(lambda: phase(custom, namespace)[0] == "Healthy", "the release to finish")
            custom.delete_namespaced_custom_object(*ROLLOUTS, namespace, "workloadrollouts", "bench")
            wait_for(lambda: not custom.list_namespaced_custom_object(
                *ROLLOUTS, namespace, "workloadrollouts")["items"], "the rollout finalized")
    finally:
        deployments.stop()
        process.terminate()
        process.wait(30)
        core.delete_namespace(namespace)
    print(f"rollout reaction over {trials} trials (operator as its own process, local control plane)")
    report("set image (through the webhook)", admitted)
    report("template change -> canary created", canary_created)
    report("approve -> promotion started", promotion_started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--kubeconfig", help="an existing cluster; default: start a local control plane")
    args = parser.parse_args()
    with cluster(args.kubeconfig) as kubeconfig:
        run(kubeconfig, args.trials)


if __name__ == "__main__":
    main()
