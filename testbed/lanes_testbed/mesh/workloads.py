"""The mesh's view of pods: WorkloadEntries, and the ingress gateway's Service and entry.

Kubernetes refuses loopback addresses in EndpointSlices, so the local node tells Istio where a
pod is the way a VM joins a mesh: one WorkloadEntry per ready pod, with the pod's labels (which
DestinationRule subsets select) and the address of the pod's sidecar (where other proxies send
its requests). The ingress gateway is a router proxy outside any pod; it gets a Service
mapping the Gateway's port 80 to the port it can bind, and an entry of its own, so Istio
resolves the listener's port as it does for `istio-ingressgateway`. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

API_VERSION = "networking.istio.io/v1"
GROUP, VERSION, PLURAL = "networking.istio.io", "v1", "workloadentries"
GATEWAY_NAMESPACE = "istio-system"
GATEWAY_NAME = "istio-ingressgateway"
GATEWAY_LABELS = {"istio": "ingressgateway", "app": "istio-ingressgateway"}
GATEWAY_PORT = 80
# Marks the entries the test bed writes, so they are told apart from a user's.
MANAGED_BY = {"app.kubernetes.io/managed-by": "lanes-testbed"}


def workload_entry(
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    address: str,
    service_account: str = "default",
    owner: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The entry of one pod: its labels, and its sidecar's `address`.

    `owner` (`uid` of the pod) makes the garbage collector remove it with the pod.
    """
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY)}
    if owner:
        metadata["ownerReferences"] = [{
            "apiVersion": "v1", "kind": "Pod", "name": name, "uid": owner["uid"],
        }]
    return {
        "apiVersion": API_VERSION,
        "kind": "WorkloadEntry",
        "metadata": metadata,
        "spec": {"address": address, "labels": dict(labels), "serviceAccount": service_account},
    }


def gateway_objects(address: str, port: int) -> list[dict[str, Any]]:
    """The ingress gateway's Service (80 -> `port`) and its router's entry at `address`."""
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": GATEWAY_NAME, "namespace": GATEWAY_NAMESPACE,
                     "labels": {**GATEWAY_LABELS, **MANAGED_BY}},
        "spec": {
            "selector": dict(GATEWAY_LABELS),
            "ports": [{"name": "http2", "port": GATEWAY_PORT, "targetPort": port, "protocol": "TCP"}],
        },
    }
    entry = workload_entry(f"{GATEWAY_NAME}-local", GATEWAY_NAMESPACE, GATEWAY_LABELS, address,
                           service_account="istio-ingressgateway-service-account")
    return [service, entry]
