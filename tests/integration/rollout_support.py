"""Helpers for rollout tests on the real control plane: an operator with the lane and rollout
handlers, a stand-in kubelet that makes pods Ready, and readers for what the tests assert.

The local control plane runs no kubelet. `PodReadier` (`lanes_testbed.inprocess`) marks every pod of a namespace Ready
the moment it appears, as a kubelet would once its containers pass their probes; the pods
stay unscheduled (no Node to keep alive), which the ReplicaSet controller does not mind and
which lets the API server delete them at once when a ReplicaSet scales down.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kopf
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lanes_testbed.processes import free_port
from lanes.kube.rollouts import RolloutsApi
from lanes.operator.runtime import Options
from lanes_testbed.inprocess import Background, OperatorThread, PodReadier, eventually  # noqa: F401 (re-exported for the tests)
from lanes.operator.webhook import WebhookOptions

ROOT = Path(__file__).resolve().parents[2]
GROUP, VERSION, PLURAL = "lanes.dev", "v1alpha1", "workloadrollouts"
IMAGE = "registry.cn-beijing.aliyuncs.com/aliacs-app-catalog/go-http-sample"


class Operator(OperatorThread):
    """The lane and rollout handlers in one kopf operator on a background thread.

    Unlike a plain `OperatorThread` it hands the webhook its port and configuration name
    through the memo rather than the environment, so each test's operator has its own.
    """

    def __init__(self, kubeconfig: Path, config_name: str, port: int | None = None):
        self.webhook = WebhookOptions(port=port or free_port(), config_name=config_name)
        super().__init__(
            Options(kubeconfig=str(kubeconfig), metrics_port=None),
            memo=kopf.Memo(webhook_options=self.webhook),
        )


class OperatorProcess:
    """The same operator as a child process, for SIGKILL: `python -m lanes.operator`."""

    def __init__(self, kubeconfig: Path, config_name: str, log_path: Path,
                 env: dict[str, str] | None = None, args: tuple[str, ...] = ()):
        self.kubeconfig = kubeconfig
        self.config_name = config_name
        self.log_path = log_path
        self.port = free_port()
        self.env = env or {}
        self.args = args
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "LANES_WEBHOOK_PORT": str(self.port),
            "LANES_WEBHOOK_CONFIG": self.config_name,
            **self.env,
        }
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lanes.operator", "--kubeconfig", str(self.kubeconfig),
             "--metrics-port", "-1", *self.args],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()

    def terminate(self) -> None:
        """SIGTERM: a graceful stop, cleanup handlers included."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)
        self.process = None

    def kill(self) -> None:
        """SIGKILL: no cleanup handler runs, as when a node dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)
        self.process = None


def wait_for_webhook(api: client.ApiClient, config_name: str, port: int, timeout: float = 120) -> None:
    """Wait until the webhook configuration points at the operator listening on `port`."""
    admission = client.AdmissionregistrationV1Api(api)

    def registered() -> bool:
        try:
            config = admission.read_mutating_webhook_configuration(config_name)
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return any(f":{port}/" in (w.client_config.url or "") for w in config.webhooks or [])

    eventually(registered, f"webhook {config_name} on port {port}", timeout)


def deployment(name: str, app: str, image: str, replicas: int = 1, upstream: str | None = None) -> dict:
    """A story Deployment: pods labelled for the base lane, the sample image at `image`."""
    env = [{"name": "version", "value": "v1"}, {"name": "app", "value": app}]
    if upstream:
        env.append({"name": "upstream_url", "value": upstream})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": app, "version": "v1"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app, "version": "v1", "ASM_TRAFFIC_TAG": "base"}},
                "spec": {
                    "containers": [
                        {
                            "name": "default",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "env": env,
                            "ports": [{"containerPort": 8000}],
                        }
                    ]
                },
            },
        },
    }


def workload_rollout(name: str, workload: str, steps: list[dict] | None = None) -> dict:
    """A WorkloadRollout as converted from the story's Kruise Rollout."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkloadRollout",
        "metadata": {"name": name},
        "spec": {
            "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": workload},
            "strategy": {
                "canary": {
                    "enableExtraWorkloadForCanary": True,
                    "steps": steps or [{"replicas": 1}],
                    "patchPodTemplateMetadata": {"labels": {"ASM_TRAFFIC_TAG": "canary"}},
                }
            },
        },
    }


class Cluster:
    """Reads and writes the rollout tests make, in one namespace."""

    def __init__(self, api: client.ApiClient, namespace: str):
        self.api = api
        self.namespace = namespace
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.rollouts = RolloutsApi(api)

    def create_deployment(self, body: dict) -> None:
        self.apps.create_namespaced_deployment(self.namespace, body)

    def create_rollout(self, body: dict) -> None:
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)

    def deployment(self, name: str) -> dict | None:
        return self.rollouts.deployment(self.namespace, name)

    def rollout(self, name: str) -> dict | None:
        return self.rollouts.get(self.namespace, name)

    def status(self, name: str) -> dict:
        return (self.rollout(name) or {}).get("status") or {}

    def set_image(self, name: str, image: str) -> dict:
        """What `kubectl set image` sends: a strategic merge patch of the container's image."""
        return self.apps.patch_namespaced_deployment(
            name, self.namespace,
            {"spec": {"template": {"spec": {"containers": [{"name": "default", "image": image}]}}}},
            field_manager="kubectl-set",
        )

    def request(self, name: str, annotations: dict[str, str | None]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name,
            {"metadata": {"annotations": annotations}},
        )

    def replica_sets(self, owner: str) -> list[dict]:
        base = self.deployment(owner)
        uid = base["metadata"]["uid"] if base else None
        return self.rollouts.replica_sets(self.namespace, uid)

    def pods(self, selector: dict[str, str]) -> list[dict]:
        return [p for p in self.rollouts.pods(self.namespace, selector) if not p["metadata"].get("deletionTimestamp")]

    def wait_phase(self, name: str, phase: str, state: str | None = None, timeout: float = 60) -> dict:
        def reached() -> dict | None:
            status = self.status(name)
            step = (status.get("canaryStatus") or {}).get("currentStepState")
            if status.get("phase") == phase and (state is None or step == state):
                return status
            return None

        return eventually(reached, f"{name} in {phase} {state or ''}", timeout)

    def delete_rollouts(self, timeout: float = 60) -> None:
        """Delete every rollout here and wait until the operator's finalizer let them go."""
        for body in self.rollouts.list(self.namespace):
            try:
                self.custom.delete_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, body["metadata"]["name"]
                )
            except ApiException as error:
                if error.status != 404:
                    raise
        eventually(lambda: not self.rollouts.list(self.namespace), "rollouts finalized", timeout)

    def until(self, probe: Callable[[], Any], what: str, timeout: float = 60) -> Any:
        return eventually(probe, what, timeout)


def image_of(obj: dict | None) -> str | None:
    if not obj:
        return None
    return obj["spec"]["template"]["spec"]["containers"][0]["image"]


def wait_quiet(check: Callable[[], bool], seconds: float) -> None:
    """Assert `check` holds throughout `seconds`, polling."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert check()
        time.sleep(0.1)
