"""The Node object and its heartbeat, so kube-controller-manager keeps the node Ready.

kube-controller-manager 1.35's node lifecycle controller marks a node Unknown, taints it
`node.kubernetes.io/unreachable:NoExecute` and later evicts its pods when neither its
Lease in kube-node-lease nor its Ready condition's lastHeartbeatTime moved for
`--node-monitor-grace-period` (50 s by default). Like kubelet, the node renews the Lease
every 10 s and posts its status now and then.
"""

from __future__ import annotations

import json
import os
import platform
from importlib import metadata
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lanes_testbed.node.objects import (
    LEASE_NAMESPACE,
    RUNTIME,
    lease_manifest,
    micro_time,
    node_conditions,
    node_manifest,
)

_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}
_TIMEOUT = 10


class Registration:
    """Creates or adopts the Node and its Lease, and keeps both fresh."""

    def __init__(self, api: client.ApiClient, name: str, address: str, max_pods: int) -> None:
        self._core = client.CoreV1Api(api)
        self._leases = client.CoordinationV1Api(api)
        self._version = client.VersionApi(api)
        self.name, self.address, self.max_pods = name, address, max_pods
        self.uid = ""
        self._ready_since = datetime.now(UTC)

    def register(self) -> None:
        """Create the Node (or take over one left by an earlier run), mark it Ready, lease it."""
        node = node_manifest(self.name, self.address, self._capacity(), self._node_info())
        try:
            created = self._core.create_node(node, _preload_content=False, _request_timeout=_TIMEOUT)
        except ApiException as error:
            if error.status != 409:
                raise
            patch = {"metadata": {"labels": node["metadata"]["labels"]}}
            created = self._core.patch_node(self.name, patch, _preload_content=False,
                                            _request_timeout=_TIMEOUT)
        self.uid = json.loads(created.data)["metadata"]["uid"]
        self._ready_since = datetime.now(UTC)
        self.post_status(ready=True, status=node["status"])
        self.renew_lease()

    def post_status(self, ready: bool = True, status: dict[str, Any] | None = None) -> None:
        """Write the node's conditions with a fresh heartbeat time."""
        now = datetime.now(UTC)
        message = "lanes local node is posting ready status" if ready else "lanes local node stopped"
        if not ready:
            self._ready_since = now
        body = {"status": {**(status or {}),
                           "conditions": node_conditions(ready, now, self._ready_since, message)}}
        self._core.patch_node_status(self.name, body, _preload_content=False,
                                     _request_timeout=_TIMEOUT)

    def renew_lease(self) -> None:
        """Move the Lease's renewTime forward, recreating the Lease if it is gone."""
        now = datetime.now(UTC)
        try:
            self._leases.patch_namespaced_lease(
                self.name, LEASE_NAMESPACE, {"spec": {"renewTime": micro_time(now)}},
                _preload_content=False, _request_timeout=_TIMEOUT,
            )
        except ApiException as error:
            if error.status != 404:
                raise
            self._leases.create_namespaced_lease(
                LEASE_NAMESPACE, lease_manifest(self.name, self.uid, now),
                _preload_content=False, _request_timeout=_TIMEOUT,
            )

    def exists(self) -> bool:
        try:
            self._core.read_node(self.name, _preload_content=False, _request_timeout=_TIMEOUT)
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    def _capacity(self) -> dict[str, str]:
        return {"cpu": str(os.cpu_count() or 1), "memory": _memory(), "pods": str(self.max_pods)}

    def _node_info(self) -> dict[str, str]:
        """What `kubectl get node -o wide` shows; the kubelet version follows the API server."""
        try:
            server = self._version.get_code(_request_timeout=_TIMEOUT).git_version
        except ApiException:
            server = "v0.0.0"
        return {
            "machineID": _read("/etc/machine-id"),
            "systemUUID": "",
            "bootID": _read("/proc/sys/kernel/random/boot_id"),
            "kernelVersion": platform.release(),
            "osImage": _os_image(),
            "containerRuntimeVersion": f"{RUNTIME}://{_lanes_version()}",
            "kubeletVersion": server,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": _ARCH.get(platform.machine(), platform.machine()),
        }


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.system()


def _memory() -> str:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return f"{line.split()[1]}Ki"
    return "0"


def _lanes_version() -> str:
    try:
        return metadata.version("lanes")
    except metadata.PackageNotFoundError:
        return "0.0.0"
