"""Keep a running EnvoyMesh serving what the API server holds.

Watches Gateways, VirtualServices, DestinationRules, WasmPlugins, Services and Pods; after any change (a
burst of them coalesced for `debounce` seconds) translates the whole picture and hands it to
`EnvoyMesh.update`, which writes only files that changed and returns once Envoy applied
them. A route or endpoint change is thus in force well within a second, and since routes
change in place no connection or in-flight request is dropped. Objects the mesh cannot serve
leave the last good config in force; the error is kept in `last_error` and logged.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Iterable
from kubernetes import client

from .envoy import EnvoyMesh
from .inputs import Endpoint, MeshConfigError, endpoints_from_pods
from .watch import ListWatch, Obj, Resource

log = logging.getLogger("lanes_testbed.mesh.sync")

ISTIO = "networking.istio.io"
RESOURCES = (
    Resource(ISTIO, "v1", "gateways", "Gateway"),
    Resource(ISTIO, "v1", "virtualservices", "VirtualService"),
    Resource(ISTIO, "v1", "destinationrules", "DestinationRule"),
    Resource("extensions.istio.io", "v1alpha1", "wasmplugins", "WasmPlugin"),
    # Groups of the asm flavour in trace-ID mode: the mesh, as ASM, keeps their traces' lanes.
    Resource("lanes.dev", "v1alpha1", "swimlanegroups", "SwimLaneGroup"),
    Resource("", "v1", "services", "Service"),
    Resource("", "v1", "pods", "Pod"),
)
RETRY_S = 1.0


def reduce_pod(pod: Obj) -> Obj:
    """What `endpoints_from_pods` reads of a pod: labels, IP, readiness, container ports."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    spec = pod.get("spec") or {}
    return {
        "kind": "Pod",
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "labels": meta.get("labels") or {},
            "deletionTimestamp": meta.get("deletionTimestamp"),
        },
        "spec": {"containers": [{"ports": c.get("ports") or []} for c in spec.get("containers") or []]},
        "status": {
            "podIP": status.get("podIP"),
            "conditions": [
                {"type": c.get("type"), "status": c.get("status")}
                for c in status.get("conditions") or []
                if c.get("type") == "Ready"
            ],
        },
    }


def mesh_endpoints(pods: Iterable[Obj]) -> list[Endpoint]:
    """Endpoints of pods on loopback addresses: the local node's. Others cannot be reached."""
    return [e for e in endpoints_from_pods(pods) if ipaddress.ip_address(e.ip).is_loopback]


class MeshSync:
    """Watches the API server and keeps `mesh` configured; a context manager.

    Args:
        api: a kubernetes ApiClient; the caller closes it.
        mesh: a started EnvoyMesh.
        debounce: how long a burst of changes is gathered before one update.
        on_applied: called after each update Envoy applied, with the update's number.
    """

    def __init__(
        self,
        api: client.ApiClient,
        mesh: EnvoyMesh,
        *,
        debounce: float = 0.05,
        on_applied: Callable[[int], None] | None = None,
    ) -> None:
        self.api = api
        self.mesh = mesh
        self.debounce = debounce
        self.last_error: str | None = None
        self.applied = 0
        self._on_applied = on_applied
        self._dirty = threading.Event()
        self._stopping = threading.Event()
        self._changes = 0
        self._changes_lock = threading.Lock()
        self._applied_changes = 0
        self._progress = threading.Condition()
        self._watches = [
            ListWatch(api, r, self._changed, reduce=reduce_pod if r.kind == "Pod" else None, log=log)
            for r in RESOURCES
        ]
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> MeshSync:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> MeshSync:
        """Start the watches; return once every kind was listed and the first update applied."""
        for watch in self._watches:
            self._spawn(watch.run, f"mesh-watch-{watch.resource.plural}")
        self._spawn(self._loop, "mesh-sync")
        deadline = time.monotonic() + timeout
        for watch in self._watches:
            if not watch.synced.wait(max(0.0, deadline - time.monotonic())):
                self.stop()
                raise TimeoutError(f"could not list {watch.resource.plural} in {timeout:.0f}s")
        try:
            self.wait_current(max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the watches and the update loop; Envoy keeps serving the last config."""
        self._stopping.set()
        self._dirty.set()
        for watch in self._watches:
            watch.stop()
        for thread in self._threads:
            thread.join(10)
        self._threads.clear()

    def objects(self) -> tuple[list[Obj], list[Obj]]:
        """The current Istio objects and Services, and the current pods."""
        objects: list[Obj] = []
        pods: list[Obj] = []
        for watch in self._watches:
            (pods if watch.resource.kind == "Pod" else objects).extend(watch.objects())
        return objects, pods

    def relists(self) -> dict[str, int]:
        """How often each kind was listed: once at start, then again after each watch failure."""
        return {w.resource.plural: w.relists for w in self._watches}

    def wait_current(self, timeout: float = 10.0) -> None:
        """Wait until every change seen so far is in force in Envoy (or failed to translate).

        Raises:
            TimeoutError: Envoy did not catch up in time.
        """
        with self._changes_lock:
            target = self._changes
        deadline = time.monotonic() + timeout
        with self._progress:
            while self._applied_changes < target:
                left = deadline - time.monotonic()
                if left <= 0 or self._stopping.is_set():
                    raise TimeoutError(
                        f"the mesh did not apply the latest changes in {timeout:.0f}s"
                        + (f": {self.last_error}" if self.last_error else "")
                    )
                self._progress.wait(min(left, 0.5))

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _changed(self) -> None:
        with self._changes_lock:
            self._changes += 1
        self._dirty.set()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._dirty.wait()
            if self._stopping.is_set():
                return
            if not all(w.synced.is_set() for w in self._watches):
                self._dirty.clear()
                continue
            self._stopping.wait(self.debounce)
            self._dirty.clear()
            with self._changes_lock:
                seen = self._changes
            if self._apply():
                self._advance(seen)
            else:
                self._stopping.wait(RETRY_S)
                self._dirty.set()

    def _apply(self) -> bool:
        """One translate-and-update; False when it should be tried again."""
        objects, pods = self.objects()
        try:
            self.mesh.update(objects, mesh_endpoints(pods))
        except MeshConfigError as error:
            self._failed(str(error))
            return True
        except Exception as error:  # noqa: BLE001 (Envoy slow or restarting: try again)
            self._failed(f"{type(error).__name__}: {error}")
            return False
        if self.last_error is not None:
            log.info("mesh config applied again")
        self.last_error = None
        self.applied += 1
        if self._on_applied is not None:
            self._on_applied(self.applied)
        return True

    def _failed(self, message: str) -> None:
        if message != self.last_error:
            log.warning("mesh config not applied; the last good one stays in force: %s", message)
        self.last_error = message

    def _advance(self, seen: int) -> None:
        with self._progress:
            self._applied_changes = max(self._applied_changes, seen)
            self._progress.notify_all()

