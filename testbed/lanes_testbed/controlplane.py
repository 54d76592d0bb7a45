"""A real local control plane: etcd, kube-apiserver and kube-controller-manager.

It is what integration tests, the demo and `kubectl lane dev cluster up` run against,
so behaviour (admission, structural schemas, garbage collection) is the real thing.
"""

from __future__ import annotations

import atexit
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from lanes_testbed import processes
from lanes_testbed.binaries import Paths, ensure_binaries
from lanes_testbed.kubeconfig import write_kubeconfig
from lanes_testbed.manifests import crd_names
from lanes_testbed.pki import Pki, ensure_pki

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
START_TIMEOUT_S = 120.0


class ControlPlane:
    """etcd, kube-apiserver and kube-controller-manager under one state directory.

    Use as a context manager, or call `start()` and `stop()`. Every child is also stopped
    at interpreter exit, and `start()` first stops children a crashed earlier owner of
    the same state directory left behind.
    """

    def __init__(
        self,
        state_dir: Path | str,
        binaries: Paths | None = None,
        *,
        progress: TextIO | None = sys.stderr,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.pki = Pki(self.state_dir / "pki")
        self.kubeconfig = self.state_dir / "kubeconfig"
        self._binaries = binaries
        self._progress = progress
        self._children: list[processes.Child] = []
        self._argv: dict[str, list[str]] = {}
        self._ready: dict[str, object] = {}
        self._server: str | None = None

    @property
    def binaries(self) -> Paths:
        if self._binaries is None:
            self._binaries = ensure_binaries(self._progress)
        return self._binaries

    @property
    def server(self) -> str:
        """The API server's URL, e.g. `https://127.0.0.1:40123`."""
        if self._server is None:
            raise RuntimeError("the control plane is not started")
        return self._server

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> ControlPlane:
        """Start every component and return once the API server is ready and controllers run."""
        if self._children:
            raise RuntimeError(f"the control plane in {self.state_dir} is already started")
        binaries = self.binaries
        self.stop_leftovers()
        ensure_pki(self.pki.directory)
        atexit.register(self.stop)
        try:
            etcd_url = self._start_etcd(binaries)
            self._start_apiserver(binaries, etcd_url)
            write_kubeconfig(self.kubeconfig, self.server, self.pki)
            if binaries.kube_controller_manager is not None:
                self._start_controller_manager(binaries.kube_controller_manager)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop all components, newest first, leaving no process behind."""
        while self._children:
            processes.stop(self._children.pop())
        self._server = None
        atexit.unregister(self.stop)

    def dead_components(self) -> list[str]:
        """Components that exited on their own, for supervisors to notice."""
        return [child.name for child in self._children if not child.alive()]

    def stop_leftovers(self) -> None:
        """Stop components an earlier owner of this state directory failed to stop."""
        if self.run_dir.is_dir():
            for pid_path in sorted(self.run_dir.glob("*.pid")):
                processes.stop_stale(pid_path, marker=str(self.state_dir))

    def kubectl(self, *args: str, input: str | None = None) -> str:
        """Run our kubectl against this control plane; raise with its stderr on failure."""
        argv = [str(self.binaries.kubectl), f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(argv, input=input, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def install_manifests(self, paths: Iterable[Path | str], timeout: float = 60.0) -> None:
        """Apply YAML files and wait until the CRDs among them are Established.

        Server-side apply, because Istio's CRDs exceed the annotation size client-side
        apply needs.
        """
        files = [Path(p) for p in paths]
        if not files:
            return
        file_args = [arg for f in files for arg in ("-f", str(f))]
        self.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=lanes-dev", *file_args)
        names = crd_names(files)
        if names:
            self.kubectl(
                "wait", "--for=condition=Established", f"--timeout={timeout:.0f}s",
                *(f"customresourcedefinition/{name}" for name in names),
            )

    def api_client(self) -> ApiClient:
        """A kubernetes Python client configured from our kubeconfig; the caller closes it."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def restart_component(self, name: str) -> None:
        """Start a component that exited again, for a supervisor."""
        self.restart(name)

    def restart(self, name: str, down_for: float = 0.0) -> None:
        """Stop one component (`etcd`, `kube-apiserver`, ...), keep it down `down_for` seconds,
        then start it again with the same flags, port and data; return once it is ready.

        For fault tests: what clients see is a real outage of that component.
        """
        [index] = [i for i, child in enumerate(self._children) if child.name == name]
        processes.stop(self._children[index])
        time.sleep(down_for)
        child = processes.spawn(
            name, self._argv[name], self.log_dir / f"{name}.log", self.run_dir / f"{name}.pid"
        )
        self._children[index] = child
        ready = self._ready[name]
        processes.wait_until(ready, what=f"{name} to be back", timeout=START_TIMEOUT_S, watch=[child])

    def _spawn(self, name: str, argv: Sequence[str]) -> processes.Child:
        child = processes.spawn(
            name, argv, self.log_dir / f"{name}.log", self.run_dir / f"{name}.pid"
        )
        self._children.append(child)
        self._argv[name] = list(argv)
        return child

    def _start_etcd(self, binaries: Paths) -> str:
        client_port, peer_port = processes.free_port(), processes.free_port()
        client_url = f"http://127.0.0.1:{client_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        etcd = self._spawn(
            "etcd",
            [
                str(binaries.etcd),
                "--name=lanes-dev",
                f"--data-dir={self.state_dir / 'etcd'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=lanes-dev={peer_url}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._ready["etcd"] = lambda: _http_ok(f"{client_url}/health")
        processes.wait_until(
            self._ready["etcd"], what="etcd /health", timeout=START_TIMEOUT_S, watch=[etcd],
        )
        return client_url

    def _start_apiserver(self, binaries: Paths, etcd_url: str) -> None:
        port = processes.free_port()
        server = f"https://127.0.0.1:{port}"
        args = [
            str(binaries.kube_apiserver),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={self.state_dir / 'apiserver'}",
            f"--tls-cert-file={self.pki.serving_cert}",
            f"--tls-private-key-file={self.pki.serving_key}",
            f"--client-ca-file={self.pki.ca_cert}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={self.pki.service_account_pub}",
            f"--service-account-signing-key-file={self.pki.service_account_key}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--authorization-mode=RBAC",
            "--allow-privileged=true",
            "--profiling=false",
        ]
        if binaries.kube_controller_manager is None:
            # Without the controller manager nothing creates default ServiceAccounts,
            # and the admission plugin would reject every Pod.
            args.append("--disable-admission-plugins=ServiceAccount")
        apiserver = self._spawn("kube-apiserver", args)
        context = self._client_tls()
        self._ready["kube-apiserver"] = lambda: _http_ok(f"{server}/readyz", context)
        processes.wait_until(
            self._ready["kube-apiserver"], what="kube-apiserver /readyz",
            timeout=START_TIMEOUT_S, watch=[self._children[0], apiserver],
        )
        self._server = server

    def _start_controller_manager(self, executable: Path) -> None:
        kubeconfig = str(self.kubeconfig)
        manager = self._spawn(
            "kube-controller-manager",
            [
                str(executable),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                # Nothing calls the manager's own port with front-proxy headers; looking up
                # their CA only logs errors every second, as our API server has none.
                "--authentication-skip-lookup=true",
                # Its default lives under /usr/libexec, which it would create on the host.
                f"--flex-volume-plugin-dir={self.state_dir / 'flexvolume'}",
                f"--service-account-private-key-file={self.pki.service_account_key}",
                f"--root-ca-file={self.pki.ca_cert}",
                f"--cluster-signing-cert-file={self.pki.ca_cert}",
                f"--cluster-signing-key-file={self.pki.ca_key}",
                # Pods here live on loopback addresses, which the API server refuses in
                # Endpoints and EndpointSlices; these controllers would only log failures.
                "--controllers=*,-endpoints-controller,-endpointslice-controller,"
                "-endpointslice-mirroring-controller",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={processes.free_port()}",
                "--profiling=false",
            ],
        )
        context = self._client_tls()
        default_account = f"{self.server}/api/v1/namespaces/default/serviceaccounts/default"
        self._ready["kube-controller-manager"] = lambda: True
        processes.wait_until(
            lambda: _http_ok(default_account, context),
            what="kube-controller-manager to create the default ServiceAccount",
            timeout=START_TIMEOUT_S, watch=[*self._children[:2], manager],
        )

    def _client_tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        context.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))
        return context


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, context=context, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False
