"""A sidecar per pod, as Istio's injection adds istio-proxy beside the app, and its endpoint.

Each pod the node runs gets its own stock Envoy, configured only by the local istiod over xDS
(see `lanes_testbed.mesh.istiod`). Pods share the host's network, so a pod's sidecar gets two
loopback addresses of its own where a pod would have its network namespace: `address`, where
its inbound listeners take other proxies' requests and hand them to the app on the pod IP, and
`egress`, where its outbound listeners take the app's calls (the app is told it as
`OUTBOUND_ADDRESS`). The pod's WorkloadEntry, naming `address`, is written while the pod is
Ready and removed as soon as it is not, or is being deleted, as an EndpointSlice would be.

Everything here runs on the node's sync thread and never waits long on the API server: a write
that fails is retried on a later tick.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lanes_testbed.mesh.istiod import Sidecar
from lanes_testbed.mesh.workloads import GROUP, PLURAL, VERSION, workload_entry
from lanes_testbed.node.addresses import AddressPool
from lanes_testbed.node.pods import PodRun, pod_ports

log = logging.getLogger("lanes_testbed.node.sidecars")

ADMIN_PORT = 15000
RETRY_S = 1.0
TIMEOUT_S = 5.0


@dataclass
class _Proxy:
    run: PodRun
    address: str
    egress: str
    sidecar: Sidecar
    # The entry wanted in the API server (None: none), and what was last written there.
    wanted: dict[str, Any] | None = None
    written: dict[str, Any] | None = None
    retry_at: float = 0.0
    extra: dict[str, str] = field(default_factory=dict)


class PodSidecars:
    """The sidecars of one node's pods and their WorkloadEntries.

    Args:
        api: the node's API client.
        istiod: the local istiod's xDS address, `host:port`.
        workdir: where each sidecar's bootstrap and log go.
        scrape_file: a Prometheus file_sd list of every sidecar's stats, rewritten on change.
    """

    def __init__(self, api: client.ApiClient, istiod: str, workdir: Path,
                 scrape_file: Path | None = None) -> None:
        self._objects = client.CustomObjectsApi(api)
        self.istiod = istiod
        self.workdir = Path(workdir)
        self.scrape_file = scrape_file
        self._inbound = AddressPool.own()
        self._egress = AddressPool.own()
        self._proxies: dict[str, _Proxy] = {}
        self._targets: list[dict[str, Any]] | None = None

    def attach(self, run: PodRun) -> None:
        """Start the pod's sidecar (its pod IP just assigned); its app calls out through it."""
        assert run.ip is not None
        ports = pod_ports(run.pod)
        address = self._inbound.allocate([*ports, ADMIN_PORT])
        egress = self._egress.allocate([])
        sidecar = Sidecar(
            self.workdir / f"{run.namespace}_{run.name}_{run.uid}",
            self.istiod,
            kind="sidecar",
            pod=run.name,
            namespace=run.namespace,
            labels=(run.pod["metadata"].get("labels") or {}),
            pod_ip=run.ip,
            address=address,
            egress=egress,
            ports=ports,
            service_account=(run.pod.get("spec") or {}).get("serviceAccountName") or "default",
            admin_port=ADMIN_PORT,
            die_with_parent=True,
        )
        sidecar.start()
        run.node_env["OUTBOUND_ADDRESS"] = egress
        self._proxies[run.uid] = _Proxy(run, address, egress, sidecar)

    def sync(self, run: PodRun, ready: bool) -> None:
        """Keep the pod's entry as its readiness says; retry what failed."""
        proxy = self._proxies.get(run.uid)
        if proxy is None:
            return
        serving = ready and not run.terminating and proxy.sidecar.alive()
        proxy.wanted = self._entry(proxy) if serving else None
        self._flush(proxy)

    def release(self, run: PodRun) -> None:
        """The pod's processes are gone: remove its entry, stop its sidecar, free its addresses."""
        proxy = self._proxies.pop(run.uid, None)
        if proxy is None:
            return
        proxy.wanted, proxy.retry_at = None, 0.0
        self._flush(proxy)
        proxy.sidecar.stop()
        self._inbound.release(proxy.address)
        self._egress.release(proxy.egress)

    def publish(self) -> None:
        """Rewrite the scrape file when the set of sidecars changed."""
        if self.scrape_file is None:
            return
        targets = sorted(
            ({"targets": [f"{p.address}:{ADMIN_PORT}"],
              "labels": {"namespace": p.run.namespace, "pod": p.run.name}}
             for p in self._proxies.values()),
            key=lambda t: t["targets"][0],
        )
        if targets == self._targets:
            return
        self.scrape_file.parent.mkdir(parents=True, exist_ok=True)
        partial = self.scrape_file.with_suffix(".partial")
        partial.write_text(json.dumps(targets))
        os.replace(partial, self.scrape_file)
        self._targets = targets

    def close(self) -> None:
        for proxy in list(self._proxies.values()):
            self.release(proxy.run)
        self._inbound.close()
        self._egress.close()

    def _entry(self, proxy: _Proxy) -> dict[str, Any]:
        run = proxy.run
        return workload_entry(
            run.name, run.namespace, run.pod["metadata"].get("labels") or {}, proxy.address,
            (run.pod.get("spec") or {}).get("serviceAccountName") or "default",
            owner={"uid": run.uid},
        )

    def _flush(self, proxy: _Proxy) -> None:
        if proxy.wanted == proxy.written or time.monotonic() < proxy.retry_at:
            return
        run = proxy.run
        try:
            if proxy.wanted is None:
                self._delete(run.namespace, run.name)
            else:
                self._put(proxy.wanted)
        except (ApiException, OSError) as error:
            log.warning("WorkloadEntry %s/%s not written (%s); retrying", run.namespace, run.name,
                        getattr(error, "reason", error))
            proxy.retry_at = time.monotonic() + RETRY_S
            return
        proxy.written = proxy.wanted

    def _put(self, entry: Mapping[str, Any]) -> None:
        namespace, name = entry["metadata"]["namespace"], entry["metadata"]["name"]
        try:
            current = self._objects.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _request_timeout=TIMEOUT_S)
        except ApiException as error:
            if error.status != 404:
                raise
            self._objects.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, dict(entry), _request_timeout=TIMEOUT_S)
            return
        body = {**entry, "metadata": {**entry["metadata"],
                                      "resourceVersion": current["metadata"]["resourceVersion"]}}
        self._objects.replace_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, body, _request_timeout=TIMEOUT_S)

    def _delete(self, namespace: str, name: str) -> None:
        try:
            self._objects.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _request_timeout=TIMEOUT_S)
        except ApiException as error:
            if error.status != 404:
                raise

