"""The API objects the local node writes, built as plain dicts by pure functions.

Node, Lease, Binding and pod status follow what kubelet writes closely enough that
kube-controller-manager's controllers (node lifecycle, endpoint slices, ReplicaSets) treat
the node and its pods as they would a real one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_S = 40
NODE_LABEL = "lanes.dev/local-node"
RUNTIME = "lanes-local"
OWN_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Termination:
    """How one run of a container ended."""

    exit_code: int
    reason: str
    started_at: datetime
    finished_at: datetime
    container_id: str


@dataclass(frozen=True)
class ContainerView:
    """One container as the pod status shows it; `last` is the previous run, if any."""

    name: str
    image: str
    image_id: str
    state: Literal["waiting", "running", "terminated"]
    reason: str = ""
    message: str = ""
    started_at: datetime | None = None
    container_id: str = ""
    ready: bool = False
    restart_count: int = 0
    ended: Termination | None = None
    last: Termination | None = None


def node_manifest(
    name: str, address: str, capacity: Mapping[str, str], node_info: Mapping[str, str]
) -> dict[str, Any]:
    """A Node as kubelet registers it; conditions come separately with each heartbeat."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": node_info.get("architecture", "amd64"),
                NODE_LABEL: "true",
            },
        },
        "spec": {},
        "status": {
            "capacity": dict(capacity),
            "allocatable": dict(capacity),
            "addresses": [
                {"type": "InternalIP", "address": address},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": dict(node_info),
        },
    }


def node_conditions(ready: bool, now: datetime, since: datetime, message: str) -> list[dict]:
    """The Ready condition, with the pressure conditions kubelet always reports."""
    stamp = {"lastHeartbeatTime": rfc3339(now), "lastTransitionTime": rfc3339(since)}
    pressure = [
        {"type": kind, "status": "False", "reason": f"KubeletHas{label}", "message": label, **stamp}
        for kind, label in (
            ("MemoryPressure", "SufficientMemory"),
            ("DiskPressure", "NoDiskPressure"),
            ("PIDPressure", "SufficientPID"),
        )
    ]
    status, reason = ("True", "KubeletReady") if ready else ("False", "KubeletNotReady")
    return [*pressure, {"type": "Ready", "status": status, "reason": reason, "message": message, **stamp}]


def lease_manifest(node: str, node_uid: str, now: datetime) -> dict[str, Any]:
    """The node's heartbeat Lease, owned by the Node so it goes when the Node goes."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": node,
            "namespace": LEASE_NAMESPACE,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid}],
        },
        "spec": {
            "holderIdentity": node,
            "leaseDurationSeconds": LEASE_DURATION_S,
            "renewTime": micro_time(now),
        },
    }


def binding(pod: Mapping[str, Any], node: str) -> dict[str, Any]:
    """A Binding of `pod` to `node`; the uid makes it fail if the pod was replaced meanwhile."""
    metadata = pod["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": metadata["name"], "namespace": metadata["namespace"], "uid": metadata["uid"]},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    }


def container_status(view: ContainerView) -> dict[str, Any]:
    """One entry of `status.containerStatuses`."""
    if view.state == "running":
        state: dict[str, Any] = {"running": {"startedAt": rfc3339(view.started_at or datetime.min)}}
    elif view.state == "terminated" and view.ended is not None:
        state = {"terminated": _terminated(view.ended)}
    else:
        state = {"waiting": {"reason": view.reason, **({"message": view.message} if view.message else {})}}
    status: dict[str, Any] = {
        "name": view.name,
        "image": view.image,
        "imageID": view.image_id,
        "ready": view.ready,
        "started": view.state == "running",
        "restartCount": view.restart_count,
        "state": state,
        "lastState": {"terminated": _terminated(view.last)} if view.last else {},
    }
    container_id = view.container_id or (view.ended.container_id if view.ended else "")
    if container_id:
        status["containerID"] = container_id
    return status


def pod_phase(restart_policy: str, views: Sequence[ContainerView], terminating: bool) -> str:
    """kubelet's phase rules: Pending until every container started once, then Running
    while any runs or will restart, else Succeeded or Failed by the exit codes."""
    if any(v.state == "waiting" and v.last is None for v in views):
        return "Pending"
    if any(v.state == "running" for v in views):
        return "Running"
    codes = [(v.ended or v.last).exit_code for v in views if (v.ended or v.last)]
    all_succeeded = all(v.state == "terminated" for v in views) and not any(codes)
    if terminating or restart_policy == "Never":
        return "Succeeded" if all_succeeded else "Failed"
    if restart_policy == "OnFailure" and all_succeeded:
        return "Succeeded"
    return "Running"


def pod_conditions(
    pod: Mapping[str, Any], views: Sequence[ContainerView], has_ip: bool, phase: str
) -> dict[str, tuple[str, str, str]]:
    """Our conditions as type -> (status, reason, message), before timestamps.

    Ready also needs every readiness gate's condition True, as kubelet requires.
    """
    unready = [v.name for v in views if not v.ready]
    reason = "PodCompleted" if phase in ("Succeeded", "Failed") else "ContainersNotReady"
    message = f"containers with unready status: [{' '.join(unready)}]" if unready else ""
    containers_ready = ("False", reason, message) if unready else ("True", "", "")
    observed = {c.get("type"): c.get("status") for c in (pod.get("status") or {}).get("conditions") or []}
    gates = [g["conditionType"] for g in (pod.get("spec") or {}).get("readinessGates") or []]
    missing = [g for g in gates if observed.get(g) != "True"]
    if unready:
        ready = containers_ready
    elif missing:
        ready = ("False", "ReadinessGatesNotReady",
                 f"corresponding condition of pod readiness gate {', '.join(missing)} does not exist or is false")
    else:
        ready = ("True", "", "")
    return {
        "PodReadyToStartContainers": ("True", "", "") if has_ip else ("False", "", ""),
        "Initialized": ("True", "", ""),
        "ContainersReady": containers_ready,
        "Ready": ready,
    }


def pod_status(
    pod: Mapping[str, Any],
    views: Sequence[ContainerView],
    conditions: Sequence[Mapping[str, Any]],
    *,
    phase: str,
    pod_ip: str | None,
    host_ip: str,
    start_time: datetime,
) -> dict[str, Any]:
    """The whole status we write; conditions others own (PodScheduled, gates) are kept."""
    ours = {c["type"] for c in conditions}
    kept = [c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") not in ours]
    if not any(c.get("type") == "PodScheduled" for c in kept):
        kept.insert(0, {"type": "PodScheduled", "status": "True", "lastTransitionTime": rfc3339(start_time)})
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [*kept, *conditions],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": rfc3339(start_time),
        "containerStatuses": [container_status(v) for v in views],
    }
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    return status


def _terminated(ended: Termination) -> dict[str, Any]:
    return {
        "exitCode": ended.exit_code,
        "reason": ended.reason,
        "startedAt": rfc3339(ended.started_at),
        "finishedAt": rfc3339(ended.finished_at),
        "containerID": ended.container_id,
    }
