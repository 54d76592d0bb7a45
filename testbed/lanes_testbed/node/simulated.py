"""A node that runs nothing: pods bound to it are marked Running and Ready at once (kwok-style).

For benchmarks only: thousands of pods cannot be real processes on a laptop, and what the
operator reacts to is the pod's Ready condition, which this node writes as a kubelet would
once containers pass their probes. It registers a Node, binds pending pods (no scheduler runs
locally), gives each a pod IP from 10.244.0.0/16 (never routed), and confirms deletions at
once. It never starts a process, so nothing here may be mistaken for a running pod.
"""

from __future__ import annotations

import ipaddress
import logging
import tempfile
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client, config

from lanes_testbed.node.objects import rfc3339
from lanes_testbed.node.podapi import PodApi
from lanes_testbed.node.registration import Registration
from lanes_testbed.node.watches import PodWatch

log = logging.getLogger("lanes_testbed.node.simulated")

HEARTBEAT_S = 10.0
POD_NETWORK = ipaddress.ip_network("10.244.0.0/16")
MAX_PODS = 60000


def ready_status(ip: str, now: str) -> dict[str, Any]:
    """The status a kubelet writes once every container runs and passes its readiness probe."""
    conditions = [{"type": kind, "status": "True", "lastTransitionTime": now}
                  for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready")]
    return {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "127.0.0.1",
            "startTime": now, "conditions": conditions}


def is_ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


class SimulatedNode:
    """Registers a Node and marks every pod bound to it Ready without running it."""

    def __init__(self, kubeconfig: Path | str, name: str = "lanes-simulated", *,
                 namespaces: Iterable[str] | None = None, label_selector: str | None = None,
                 heartbeat_s: float = HEARTBEAT_S) -> None:
        self.kubeconfig = Path(kubeconfig)
        self.name = name
        self.namespaces = frozenset(namespaces) if namespaces is not None else None
        self.label_selector = label_selector
        self.heartbeat_s = heartbeat_s
        self.log_dir = Path(tempfile.gettempdir())  # nothing runs, so nothing logs
        self._ips = (str(ip) for ip in POD_NETWORK.hosts())
        self._assigned: dict[str, str] = {}
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._watches: list[PodWatch] = []
        self._api: client.ApiClient | None = None

    def __enter__(self) -> SimulatedNode:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> SimulatedNode:
        """Register the Node and start binding and readying pods."""
        self._api = config.new_client_from_config(config_file=str(self.kubeconfig))
        self._pods = PodApi(self._api, self.name)
        self._registration = Registration(self._api, self.name, "127.0.0.1", MAX_PODS)
        self._registration.register()
        bound = PodWatch(self._api, field_selector=f"spec.nodeName={self.name}", label_selector=None,
                         on_sync=lambda pods: [self._follow(p) for p in pods],
                         on_event=lambda kind, pod: self._follow(pod, kind), log=log)
        pending = PodWatch(self._api, field_selector="spec.nodeName=", label_selector=self.label_selector,
                           on_sync=lambda pods: [self._bind(p) for p in pods],
                           on_event=lambda kind, pod: kind != "DELETED" and self._bind(pod), log=log)
        self._watches = [bound, pending]
        for target, label in ((bound.run, "pods"), (pending.run, "binder"), (self._heartbeat, "heartbeat")):
            thread = threading.Thread(target=target, name=f"{self.name}-{label}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop watching; pods stay as they are (none ran)."""
        self._stopping.set()
        for watch in self._watches:
            watch.stop()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
        if self._api is not None:
            self._api.close()
            self._api = None

    def _bind(self, pod: dict[str, Any]) -> None:
        metadata, spec = pod["metadata"], pod.get("spec") or {}
        if spec.get("nodeName") or metadata.get("deletionTimestamp"):
            return
        if self.namespaces is not None and metadata["namespace"] not in self.namespaces:
            return
        self._pods.bind(pod)

    def _follow(self, pod: dict[str, Any], kind: str = "SYNC") -> None:
        metadata = pod["metadata"]
        uid = metadata["uid"]
        if kind == "DELETED":
            self._assigned.pop(uid, None)
            return
        if metadata.get("deletionTimestamp"):
            self._pods.confirm_deletion(metadata)
            return
        if is_ready(pod):
            return
        ip = self._assigned.setdefault(uid, next(self._ips))
        self._pods.write_status(metadata["namespace"], metadata["name"], uid, ready_status(ip, rfc3339(datetime.now(UTC))))

    def _heartbeat(self) -> None:
        while not self._stopping.wait(self.heartbeat_s):
            try:
                self._registration.renew_lease()
            except Exception as error:  # noqa: BLE001 (retry on the next beat)
                log.warning("node %s heartbeat failed: %s", self.name, error)

