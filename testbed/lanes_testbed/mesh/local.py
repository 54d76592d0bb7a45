"""The local mesh: Istio's own config generation, an ingress gateway, and a sidecar per pod.

`LocalMesh` runs the local istiod (see `istiod.py`) and the ingress gateway, a router Envoy it
configures. Pods join with their own sidecars: the local node starts one for each pod it runs
(see `lanes_testbed.node.sidecars`); tests without an API server call `add_pod`. Nothing here
decides routing: Istio's code turns the objects into each proxy's config, and Envoy routes.

Two ways to feed it:
- with a kubeconfig, the istiod watches the API server, as istiod does in a cluster;
- without, `update(objects, endpoints)` hands it the whole picture at once and returns when
  every proxy has acknowledged it: tests that need no control plane use this.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ..loopback import take_block
from ..processes import Served, free_port, stop_all
from .istiod import LocalIstiod, Sidecar
from .workloads import (GATEWAY_LABELS, GATEWAY_NAME, GATEWAY_NAMESPACE, gateway_objects,
                        workload_entry)

ADMIN_PORT = 15000
# A changed listener drains whole, an in-place update only the filter chains it replaced.
DRAINING = ("listener_manager.total_listeners_draining", "listener_manager.total_filter_chains_draining")
# Admin calls go to loopback directly, whatever proxy the environment names.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Endpoint:
    """A pod that serves, as a test states it: its IP and its labels."""

    ip: str
    labels: Mapping[str, str]


@dataclass
class PodProxy:
    """A pod's sidecar: where other proxies reach it, and where its app calls out."""

    name: str
    namespace: str
    labels: dict[str, str]
    ip: str
    address: str
    egress: str
    sidecar: Sidecar

    @property
    def admin_url(self) -> str:
        return self.sidecar.admin_url

    def env(self) -> dict[str, str]:
        """What the pod's app is told: call out through the sidecar."""
        return {"OUTBOUND_ADDRESS": self.egress}


class LocalMesh(Served):
    """The local istiod and the ingress gateway; a context manager.

    Args:
        workdir: where the istiod's and every proxy's files and logs go.
        kubeconfig: watch this API server; without it, config comes from `update`.
        gateway_port: the port the gateway serves the Gateways' port 80 on (0: a free one).
        api: with `kubeconfig`, a client to write the gateway's Service and entry with.
    """

    def __init__(self, workdir: Path, *, kubeconfig: Path | None = None, gateway_port: int = 0,
                 api: client.ApiClient | None = None) -> None:
        self.workdir = Path(workdir).resolve()
        self.kubeconfig = kubeconfig
        self.gateway_port = gateway_port or free_port()
        self._api = api
        self.istiod = LocalIstiod(self.workdir / "istiod", kubeconfig=kubeconfig)
        self.gateway: Sidecar | None = None
        self._block: str | None = None
        self._next_host = 10
        self._pods: dict[str, PodProxy] = {}
        self._gateway_objects: list[dict[str, Any]] = []

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def xds_address(self) -> str:
        return self.istiod.xds_address

    @property
    def gateway_admin_url(self) -> str:
        assert self.gateway is not None
        return self.gateway.admin_url

    def start(self) -> None:
        self.istiod.start()
        try:
            address = self._address()
            self._gateway_objects = gateway_objects(address, self.gateway_port)
            if self.kubeconfig is not None:
                self._write_gateway_objects()
            else:
                self.istiod.push(self._gateway_objects)
            self.gateway = Sidecar(
                self.workdir / "gateway", self.istiod.xds_address, kind="router",
                pod=f"{GATEWAY_NAME}-local", namespace=GATEWAY_NAMESPACE,
                labels=GATEWAY_LABELS, pod_ip=address, address=address,
                ports=[self.gateway_port], service_account="istio-ingressgateway-service-account",
                admin_port=ADMIN_PORT,
            )
            self.gateway.start()
            self.gateway.wait_ready()
        except BaseException:
            self.stop()
            raise

    def alive(self) -> bool:
        return self.istiod.alive() and self.gateway is not None and self.gateway.alive()

    def stop(self, timeout: float = 10.0) -> None:
        stop_all([c for c in (p.sidecar.take_child() for p in self._pods.values()) if c], timeout)
        self._pods.clear()
        if self.gateway is not None:
            self.gateway.stop()
            self.gateway = None
        self.istiod.stop()

    def add_pod(self, name: str, labels: Mapping[str, str], ip: str, *,
                namespace: str = "default", ports: Sequence[int] = (8000,)) -> PodProxy:
        """Start the sidecar of a pod whose app runs (or will run) on `ip`."""
        address, egress = self._address(), self._address()
        sidecar = Sidecar(
            self.workdir / "pods" / f"{namespace}_{name}", self.istiod.xds_address,
            kind="sidecar", pod=name, namespace=namespace, labels=dict(labels), pod_ip=ip,
            address=address, egress=egress, ports=list(ports), admin_port=ADMIN_PORT,
        )
        sidecar.start()
        pod = PodProxy(name, namespace, dict(labels), ip, address, egress, sidecar)
        self._pods[ip] = pod
        return pod

    def pods(self) -> list[PodProxy]:
        return list(self._pods.values())

    def update(self, objects: Iterable[Mapping[str, Any]], endpoints: Iterable[Endpoint],
               timeout: float = 10.0) -> int:
        """Serve `objects` with `endpoints` as the only serving pods; return once in force.

        Each endpoint is a pod added with `add_pod`; its labels are the ones it serves under.
        """
        if self.kubeconfig is not None:
            raise RuntimeError("a mesh watching an API server takes its config from there")
        entries = []
        for endpoint in endpoints:
            pod = self._pods.get(endpoint.ip)
            if pod is None:
                raise ValueError(f"no pod with a sidecar on {endpoint.ip}; add it with add_pod")
            entries.append(workload_entry(pod.name, pod.namespace, endpoint.labels, pod.address))
        version = self.istiod.push([*self._gateway_objects, *entries, *map(dict, objects)])
        self.istiod.wait_synced(version, timeout=timeout)
        self.wait_drained(timeout)
        return version

    def wait_drained(self, timeout: float = 10.0) -> None:
        """Until no proxy still serves connections on a listener a change replaced.

        Envoy keeps a connection on the filter chain it was opened on until that chain's drain
        ends (a second, see `Sidecar`); only then is a changed listener in force for every
        request, kept-alive connections included. Route changes drain nothing.
        """
        urls = [self.gateway_admin_url, *(p.admin_url for p in self._pods.values())]
        deadline = time.monotonic() + timeout
        pattern = "^(" + "|".join(name.replace(".", r"\.") for name in DRAINING) + ")$"
        while any(any(self.stats(pattern, [url]).values()) for url in urls):
            if time.monotonic() > deadline:
                raise TimeoutError(f"listeners still draining after {timeout:.0f}s")
            time.sleep(0.05)

    def stats(self, pattern: str, admin_urls: Iterable[str] | None = None) -> dict[str, int]:
        """Counters matching `pattern`, summed over the gateway and every pod's sidecar."""
        urls = list(admin_urls) if admin_urls is not None else [
            self.gateway_admin_url, *(p.admin_url for p in self._pods.values())]
        totals: dict[str, int] = {}
        for url in urls:
            query = urllib.parse.urlencode({"filter": pattern, "format": "json"})
            with _DIRECT.open(f"{url}/stats?{query}", timeout=5) as response:
                for stat in json.load(response).get("stats", []):
                    if "value" in stat:
                        totals[stat["name"]] = totals.get(stat["name"], 0) + int(stat["value"])
        return totals

    def _address(self) -> str:
        """A loopback address of the mesh's own block."""
        if self._block is None or self._next_host > 250:
            self._block, self._next_host = take_block(), 10
        address = f"{self._block}.{self._next_host}"
        self._next_host += 1
        return address

    def _write_gateway_objects(self) -> None:
        assert self._api is not None
        core = client.CoreV1Api(self._api)
        objects = client.CustomObjectsApi(self._api)
        service, entry = self._gateway_objects
        try:
            core.create_namespace({"metadata": {"name": GATEWAY_NAMESPACE}})
        except ApiException as error:
            if error.status != 409:
                raise
        _create_or_replace(
            lambda: core.create_namespaced_service(GATEWAY_NAMESPACE, service),
            lambda: core.replace_namespaced_service(
                GATEWAY_NAME, GATEWAY_NAMESPACE,
                _with_version(service, core.read_namespaced_service(GATEWAY_NAME, GATEWAY_NAMESPACE)
                              .metadata.resource_version)),
        )
        name = entry["metadata"]["name"]
        _create_or_replace(
            lambda: objects.create_namespaced_custom_object(
                "networking.istio.io", "v1", GATEWAY_NAMESPACE, "workloadentries", entry),
            lambda: objects.replace_namespaced_custom_object(
                "networking.istio.io", "v1", GATEWAY_NAMESPACE, "workloadentries", name,
                _with_version(entry, objects.get_namespaced_custom_object(
                    "networking.istio.io", "v1", GATEWAY_NAMESPACE, "workloadentries", name,
                )["metadata"]["resourceVersion"])),
        )


def _with_version(body: Mapping[str, Any], version: str) -> dict[str, Any]:
    return {**body, "metadata": {**body["metadata"], "resourceVersion": version}}


def _create_or_replace(create: Any, replace: Any) -> None:
    try:
        create()
    except ApiException as error:
        if error.status != 409:
            raise
        replace()
