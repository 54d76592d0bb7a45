"""LocalNode: a tiny kubelet that runs the sample's pods as local processes.

Two pod watches feed it: one binds pending pods it is told to handle to this node (no
scheduler runs on the local control plane), the other follows the pods bound here, as
kubelet's does. A single sync thread owns every process: it starts them, restarts them
per restartPolicy, probes readiness, writes pod status when it changes, and on deletion
stops the processes gracefully before confirming the deletion with gracePeriodSeconds=0.

A pod's ServiceAccount identity: kubelet projects a token into a fixed path, which processes
sharing one filesystem cannot each have. Instead, unless `automountServiceAccountToken` is
false (on the pod, else on its ServiceAccount), the node requests a token of the pod's
ServiceAccount bound to the pod (TokenRequest API) and hands it to the containers as a
kubeconfig in the pod's own directory, named by `KUBECONFIG` and pointing at this node's
API server with its CA (see identity.py). A program reading $KUBECONFIG then runs with
exactly the RBAC of its ServiceAccount.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

from lanes_testbed import import_path
from lanes_testbed.node.addresses import AddressPool, PoolExhausted
from lanes_testbed.node.identity import (KUBECONFIG_FILE, account_of, kubeconfig_document, mounts_token,
                                     token_request)
from lanes_testbed.node.podapi import TIMEOUT_S, PodApi
from lanes_testbed.node.pods import PodRun, grace_period, pod_ports
from lanes_testbed.node.registration import Registration
from lanes_testbed.node.sidecars import PodSidecars
from lanes_testbed.node.watches import PodWatch

log = logging.getLogger("lanes_testbed.node")

TICK_S = 0.05
HEARTBEAT_S = 10.0
STATUS_EVERY = 6
STOP_GRACE_S = 10.0
_TERMINAL = ("Succeeded", "Failed")


@dataclass(frozen=True)
class RunningPod:
    """A pod the node runs, as seen from outside the sync thread."""

    namespace: str
    name: str
    uid: str
    ip: str | None
    pids: tuple[int, ...]
    ready: bool


class LocalNode:
    """Registers a Node and runs the pods bound to it; a context manager.

    Args:
        kubeconfig: how to reach the API server.
        name: the Node's name.
        istiod: the local istiod's xDS address (`host:port`); each pod then gets a sidecar
            configured by it, and a WorkloadEntry while Ready (see sidecars.py).
        scrape_file: where the sidecars' Prometheus targets are kept (file_sd), if anywhere.
        namespaces: bind pending pods only in these; None means all but `exclude_namespaces`.
        label_selector: bind only pending pods matching it.
        addresses: the loopback pool pod IPs come from; by default a block of this
            process's own loopback range (see `lanes_testbed.loopback`).
        log_dir: where each container's output goes, `NS_POD_UID/CONTAINER.log`.
    """

    def __init__(
        self,
        kubeconfig: Path | str,
        name: str = "lanes-local",
        istiod: str | None = None,
        *,
        scrape_file: Path | str | None = None,
        namespaces: Iterable[str] | None = None,
        exclude_namespaces: Iterable[str] = ("kube-system",),
        label_selector: str | None = None,
        addresses: AddressPool | None = None,
        host_ip: str = "127.0.0.1",
        log_dir: Path | str | None = None,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        self.kubeconfig = Path(kubeconfig)
        self.name = name
        self.istiod = istiod
        self.scrape_file = Path(scrape_file) if scrape_file else None
        self._sidecars: PodSidecars | None = None
        self.namespaces = frozenset(namespaces) if namespaces is not None else None
        self.exclude_namespaces = frozenset(exclude_namespaces)
        self.label_selector = label_selector
        self.addresses = addresses or AddressPool.own()
        self._owns_addresses = addresses is None
        self.host_ip = host_ip
        self.log_dir = Path(log_dir) if log_dir else None
        self.heartbeat_s = heartbeat_s
        self._api: client.ApiClient | None = None
        self._events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._watches: list[PodWatch] = []
        self._runs: dict[str, PodRun] = {}
        self._snapshot: dict[str, RunningPod] = {}
        self._lock = threading.Lock()
        self._probes = ThreadPoolExecutor(max_workers=8, thread_name_prefix=f"{name}-probe")
        self._used = False

    def __enter__(self) -> LocalNode:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> LocalNode:
        """Register the Node, then start binding and running pods; returns once registered."""
        if self._used:
            raise RuntimeError(f"local node {self.name} was started before; make a new LocalNode")
        self._used = True
        if self.log_dir is None:
            self.log_dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        self._api = config.new_client_from_config(config_file=str(self.kubeconfig))
        self._pods = PodApi(self._api, self.name)
        self._registration = Registration(self._api, self.name, self.host_ip, len(self.addresses))
        try:
            self._registration.register()
        except BaseException:
            self._api.close()
            raise
        if self.istiod:
            self._sidecars = PodSidecars(self._api, self.istiod, self.log_dir / "sidecars",
                                         self.scrape_file)
        atexit.register(self.stop)
        bound = PodWatch(self._api, field_selector=f"spec.nodeName={self.name}", label_selector=None,
                         on_sync=lambda pods: self._events.put(("SYNC", pods)),
                         on_event=lambda kind, pod: self._events.put((kind, pod)), log=log)
        pending = PodWatch(self._api, field_selector="spec.nodeName=", label_selector=self.label_selector,
                           on_sync=self._bind_all, on_event=self._on_pending, log=log)
        self._watches = [bound, pending]
        for target, label in ((self._sync_loop, "sync"), (bound.run, "pods"),
                              (pending.run, "binder"), (self._heartbeat_loop, "heartbeat")):
            thread = threading.Thread(target=target, name=f"{self.name}-{label}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop every process (gracefully, up to 10 s), mark the node NotReady, disconnect."""
        if not self._threads:
            return
        self._stopping.set()
        for watch in self._watches:
            watch.stop()
        for thread in self._threads:
            thread.join(timeout=STOP_GRACE_S + 10)
        self._threads.clear()
        try:
            self._registration.post_status(ready=False)
        except Exception as error:  # noqa: BLE001 (the API server may be gone first)
            log.info("could not mark node %s NotReady: %s", self.name, error)
        self._probes.shutdown(wait=False, cancel_futures=True)
        if self._api is not None:
            self._api.close()
        if self._owns_addresses:
            self.addresses.close()
        atexit.unregister(self.stop)

    def running(self) -> dict[str, RunningPod]:
        """The pods this node runs now, keyed `namespace/name`."""
        with self._lock:
            return dict(self._snapshot)

    def wants(self, pod: Mapping[str, Any]) -> bool:
        """Whether a pending pod is one this node should bind."""
        namespace = pod["metadata"]["namespace"]
        if self.namespaces is not None:
            return namespace in self.namespaces
        return namespace not in self.exclude_namespaces

    def _bind_all(self, pods: list[dict[str, Any]]) -> None:
        for pod in pods:
            self._bind(pod)

    def _on_pending(self, kind: str, pod: dict[str, Any]) -> None:
        if kind != "DELETED":
            self._bind(pod)

    def _bind(self, pod: dict[str, Any]) -> None:
        """Bind a pod this node wants; other failures than a lost race make the watch relist,
        which retries every pending pod."""
        metadata, spec = pod["metadata"], pod.get("spec") or {}
        if spec.get("nodeName") or metadata.get("deletionTimestamp") or not self.wants(pod):
            return
        if (pod.get("status") or {}).get("phase") in _TERMINAL:
            return
        self._pods.bind(pod)

    def _heartbeat_loop(self) -> None:
        beats = 0
        while not self._stopping.wait(self.heartbeat_s):
            beats += 1
            try:
                if not self._registration.exists():
                    self._registration.register()
                    continue
                self._registration.renew_lease()
                if beats % STATUS_EVERY == 0:
                    self._registration.post_status(ready=True)
            except Exception as error:  # noqa: BLE001 (retry on the next beat)
                log.warning("node %s heartbeat failed: %s", self.name, error)

    def _sync_loop(self) -> None:
        """The only thread that starts or stops processes (see containers.py for why)."""
        try:
            while not self._stopping.is_set():
                self._drain()
                self._step()
        finally:
            self._shutdown()

    def _drain(self) -> None:
        try:
            kind, payload = self._events.get(timeout=TICK_S)
        except queue.Empty:
            return
        while True:
            try:
                self._apply(kind, payload)
            except Exception:  # noqa: BLE001 (a pod we cannot run must not stop the others)
                log.exception("pod event %s could not be applied", kind)
            try:
                kind, payload = self._events.get_nowait()
            except queue.Empty:
                return

    def _apply(self, kind: str, payload: Any) -> None:
        if kind == "SYNC":
            listed = {p["metadata"]["uid"] for p in payload}
            for uid in set(self._runs) - listed:
                self._forget(uid)
            for pod in payload:
                self._observe(pod)
        elif kind == "DELETED":
            self._forget(payload["metadata"]["uid"])
        else:
            self._observe(payload)

    def _observe(self, pod: dict[str, Any]) -> None:
        uid, deleting = pod["metadata"]["uid"], bool(pod["metadata"].get("deletionTimestamp"))
        run = self._runs.get(uid)
        if run is None:
            if (pod.get("status") or {}).get("phase") in _TERMINAL or deleting:
                if deleting:
                    self._pods.confirm_deletion(pod["metadata"])
                return
            assert self.log_dir is not None
            run = PodRun(pod, host_ip=self.host_ip, log_dir=self.log_dir,
                         base_env=_base_env(), node_env={}, identity=self._identity)
            self._runs[uid] = run
        run.update(pod)
        if deleting and not run.terminating:
            run.terminate()

    def _forget(self, uid: str) -> None:
        """The pod left the API (force-deleted, or gone while we were away): stop its processes."""
        run = self._runs.get(uid)
        if run is not None:
            run.gone = True
            if not run.terminating:
                run.terminate()

    def _step(self) -> None:
        for uid, run in list(self._runs.items()):
            try:
                if run.ip is None and run.runnable and not run.terminating:
                    self._assign(run)
                run.tick(self._probes, self._pods.lookup)
                if self._sidecars is not None:
                    self._sidecars.sync(run, _ready(run))
                if run.terminating and run.stopped:
                    self._finish(uid, run)
                elif not run.gone:
                    self._write_status(run)
            except Exception:  # noqa: BLE001 (one pod's trouble must not stop the others)
                log.exception("pod %s: sync failed; retrying", run.key)
        self._publish()

    def _assign(self, run: PodRun) -> None:
        observed = (run.pod.get("status") or {}).get("podIP")
        try:
            run.assign(self.addresses.allocate(pod_ports(run.pod), prefer=observed))
            if self._sidecars is not None:
                self._sidecars.attach(run)
        except PoolExhausted as error:
            for container in run.containers:
                if container.waiting is None:
                    container.waiting = ("ContainerCreating", str(error))

    def _finish(self, uid: str, run: PodRun) -> None:
        if not run.gone:
            self._pods.confirm_deletion(run.pod["metadata"])
        if self._sidecars is not None:
            self._sidecars.release(run)
        if run.ip is not None:
            self.addresses.release(run.ip)
        del self._runs[uid]

    def _write_status(self, run: PodRun, timeout: float = TIMEOUT_S) -> None:
        status = run.status()
        if run.written == status:
            return
        written = self._pods.write_status(run.namespace, run.name, run.uid, status, timeout)
        if written:
            run.written = status
        elif written is False:
            run.gone = True

    def _publish(self) -> None:
        snapshot = {
            run.key: RunningPod(run.namespace, run.name, run.uid, run.ip, tuple(run.pids), _ready(run))
            for run in self._runs.values()
            if run.pids
        }
        with self._lock:
            self._snapshot = snapshot
        if self._sidecars is not None:
            self._sidecars.publish()

    def _shutdown(self) -> None:
        """Stop every process, then tell the API server: pods being deleted go, the others
        are shown not ready until a node runs them again."""
        for run in self._runs.values():
            run.halt(min(STOP_GRACE_S, grace_period(run.pod)))
        deadline = time.monotonic() + STOP_GRACE_S + 1
        while any(not run.stopped for run in self._runs.values()) and time.monotonic() < deadline:
            for run in self._runs.values():
                run.tick(self._probes, self._pods.lookup)
            time.sleep(TICK_S)
        for run in self._runs.values():
            run.kill_now()
            if run.gone:
                continue
            try:
                if run.terminating:
                    self._pods.confirm_deletion(run.pod["metadata"])
                else:
                    self._write_status(run, timeout=2)
            except Exception as error:  # noqa: BLE001 (the API server may be gone first)
                log.info("final update of %s not written: %s", run.key, error)
        if self._sidecars is not None:
            self._sidecars.close()
        for run in self._runs.values():
            if run.ip is not None:
                self.addresses.release(run.ip)
        self._runs.clear()
        self._publish()

    def _identity(self, pod: Mapping[str, Any], directory: Path) -> dict[str, str]:
        """The pod's ServiceAccount token as a kubeconfig file; no env when it mounts none.

        A ServiceAccount that does not exist means none was admitted (the API server runs
        without the ServiceAccount admission plugin when no controller manager makes them),
        so the pod gets no token, as under kubelet.

        Raises:
            EnvError: the ServiceAccount could not be read or no token could be had.
        """
        if (pod.get("spec") or {}).get("automountServiceAccountToken") is False:
            return {}
        namespace, account_name = pod["metadata"]["namespace"], account_of(pod)
        account = self._pods.service_account(namespace, account_name)
        if account is None or not mounts_token(pod, account):
            return {}
        token = self._pods.request_token(namespace, account_name, token_request(pod))
        assert self._api is not None
        configuration = self._api.configuration
        ca_pem = Path(configuration.ssl_ca_cert).read_bytes() if configuration.ssl_ca_cert else b""
        document = kubeconfig_document(configuration.host, ca_pem, token, namespace, account_name)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / KUBECONFIG_FILE
        path.touch(mode=0o600)
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return {"KUBECONFIG": str(path)}


def _ready(run: PodRun) -> bool:
    return bool(run.containers) and all(c.ready for c in run.containers)


def _base_env() -> dict[str, str]:
    """A container's starting env: not the node's own (no developer proxy leaks in), only
    what the program needs to start and import this copy of lanes."""
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "PYTHONPATH": import_path(),
        "PYTHONUNBUFFERED": "1",
        "LANG": "C.UTF-8",
    }
