"""What the mesh is translated from: Services, pod endpoints and the names a request may use.

Kubernetes objects arrive as plain dicts (as read from the API server or a YAML file); pods
arrive as `Endpoint`s so a local node can report them without building Pod objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

CLUSTER_DOMAIN = "svc.cluster.local"


class MeshConfigError(ValueError):
    """An Istio object the local mesh cannot serve faithfully; names the object and field."""


@dataclass(frozen=True)
class Endpoint:
    """One pod as the mesh sees it: where it listens and the labels subsets select on."""

    ip: str
    labels: Mapping[str, str]
    namespace: str = "default"
    port: int = 8000
    ready: bool = True


@dataclass(frozen=True)
class Service:
    """A Kubernetes Service reduced to what routing needs."""

    name: str
    namespace: str
    ports: tuple[int, ...]
    selector: Mapping[str, str] = field(default_factory=dict)
    target_ports: Mapping[int, int] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return f"{self.name}.{self.namespace}.{CLUSTER_DOMAIN}"

    def names(self) -> list[str]:
        """Every name a client in the mesh may put in the Host header, shortest first."""
        return [
            self.name,
            f"{self.name}.{self.namespace}",
            f"{self.name}.{self.namespace}.svc",
            self.host,
        ]

    def selects(self, endpoint: Endpoint) -> bool:
        return bool(self.selector) and endpoint.namespace == self.namespace and (
            _matches(self.selector, endpoint.labels)
        )

    def target_port(self, port: int, endpoint: Endpoint) -> int:
        """The pod port behind a service port; a named targetPort falls back to the pod's."""
        return self.target_ports.get(port, endpoint.port)


def services_of(objects: Iterable[Mapping[str, Any]]) -> dict[str, Service]:
    """The Services among `objects`, keyed by cluster-local FQDN."""
    found: dict[str, Service] = {}
    for obj in objects:
        if obj.get("kind") != "Service":
            continue
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        ports: list[int] = []
        targets: dict[int, int] = {}
        for entry in spec.get("ports") or []:
            if str(entry.get("protocol", "TCP")).upper() != "TCP":
                continue
            port = int(entry["port"])
            ports.append(port)
            target = entry.get("targetPort", port)
            if isinstance(target, int) or str(target).isdigit():
                targets[port] = int(target)
        service = Service(
            name=meta["name"],
            namespace=meta.get("namespace") or "default",
            ports=tuple(ports),
            selector=dict(spec.get("selector") or {}),
            target_ports=targets,
        )
        found[service.host] = service
    return found


def endpoints_from_pods(pods: Iterable[Mapping[str, Any]]) -> list[Endpoint]:
    """Endpoints of the pods that have an IP, ready when their Ready condition is True."""
    endpoints = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        status = pod.get("status") or {}
        ip = status.get("podIP")
        if not ip or meta.get("deletionTimestamp"):
            continue
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        endpoints.append(
            Endpoint(
                ip=ip,
                labels=dict(meta.get("labels") or {}),
                namespace=meta.get("namespace") or "default",
                port=_first_container_port(pod),
                ready=ready,
            )
        )
    return endpoints


def resolve_host(host: str, namespace: str, services: Mapping[str, Service]) -> str:
    """The FQDN an Istio host field means, written in an object of `namespace`.

    Istio expands short names against the object's namespace; `name.ns` is accepted too when
    it names a known Service, since that is what clients in the mesh also write.
    """
    if "*" in host:
        return host
    if "." not in host:
        return f"{host}.{namespace}.{CLUSTER_DOMAIN}"
    for suffix in (f".{CLUSTER_DOMAIN}", ".cluster.local"):
        if f"{host}{suffix}" in services:
            return f"{host}{suffix}"
    return host


def subset_matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Whether a DestinationRule subset's labels select a pod's labels."""
    return _matches(selector, labels)


def _matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _first_container_port(pod: Mapping[str, Any]) -> int:
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if "containerPort" in port:
                return int(port["containerPort"])
    return 8000
