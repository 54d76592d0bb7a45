"""The whole local stack: control plane, operator, local node, mesh and Prometheus.

One `Stack` owns, under one state directory: the control plane (etcd, kube-apiserver,
kube-controller-manager) with lanes' CRDs and Istio's, the operator and the local node as
child processes, the local mesh (a local istiod built from Istio's own code, watching the API
server, and the ingress gateway it configures; the node gives every pod a sidecar it
configures too), and a Prometheus scraping the gateway's and every sidecar's stats and the
operator's `/metrics` every second, which the operator asks for rollout analysis (`envoy`
source). The demo and the end-to-end tests start one in-process; `kubectl lane dev up` runs
one in a detached supervisor (see `lanes_testbed.stackd`).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lanes_testbed import import_path
from lanes_testbed import processes
from lanes_testbed.binaries import Paths
from lanes_testbed.controlplane import ControlPlane
from lanes_testbed.mesh.local import LocalMesh
from lanes_testbed.meshcrds import FLAVOURS, write_manifests
from lanes_testbed.node.addresses import bindable
from lanes_testbed.wasm import ensure_trace_affinity
from lanes_testbed.prometheus import Prometheus, ScrapeTarget

DEFAULT_GATEWAY_PORT = 8080
NODE_NAME = "lanes-local"
WEBHOOK_CONFIG = "lanes.dev"
MESH_NAMESPACE = "istio-system"
START_TIMEOUT_S = 90.0
SCRAPE_INTERVAL = "1s"
# The stack's series are for watching a release as it happens, not for history.
PROMETHEUS_RETENTION = "2d"
# The proxies are stock Envoy (no istio-proxy stats filter): their own cluster stats serve the
# built-in metrics.
METRIC_SOURCE = "envoy"

Progress = Callable[[str], None]


def gateway_port(wanted: int) -> int:
    """`wanted` if nobody listens there, else a free port; 0 means any free port."""
    if wanted and bindable("127.0.0.1", wanted):
        return wanted
    return processes.free_port()


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Our environment for a Python child, able to import this very copy of lanes.

    Proxy settings are dropped: every call a child makes goes to loopback.
    """
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (import_path(), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def operator_argv(kubeconfig: Path, metrics_port: int, prometheus_url: str) -> list[str]:
    """The shipped operator (lane groups, rollouts, admission webhook) as users run it.

    Its metrics endpoint listens on a free loopback port (the fixed default would clash between
    stacks on one machine), and its analysis asks the stack's Prometheus for Envoy's stats.
    """
    return [sys.executable, "-m", "lanes.operator", "--kubeconfig", str(kubeconfig),
            "--metrics-port", str(metrics_port), "--metrics-host", "127.0.0.1",
            "--prometheus-url", prometheus_url, "--metric-source", METRIC_SOURCE]


def trace_affinity_env(port: int) -> dict[str, str]:
    """The operator's trace-affinity settings: it serves the module built here on `port`.

    As the chart's operator does, it puts its own url and the sha256 of what it serves in the
    WasmPlugins; the local istiod fetches the module from there (checked against that sha256,
    as istio-agent does) and hands it to the proxies the WasmPlugins select.
    """
    return {"LANES_TRACE_AFFINITY_MODULE": str(ensure_trace_affinity()),
            "LANES_TRACE_AFFINITY_PORT": str(port), "LANES_TRACE_AFFINITY_HOST": "127.0.0.1"}


def scrape_targets(gateway_admin: str, sidecars: Path, operator_metrics_port: int) -> list[ScrapeTarget]:
    """What the stack's Prometheus scrapes: the proxies' stats and the operator's metrics.

    `gateway_admin` is the gateway's admin `host:port`; `sidecars` the file the node keeps
    every pod's sidecar in.
    """
    return [
        ScrapeTarget("envoy", gateway_admin, "/stats/prometheus", {"pod": "istio-ingressgateway"}),
        ScrapeTarget("envoy", metrics_path="/stats/prometheus", file=sidecars),
        ScrapeTarget("lanes-operator", f"127.0.0.1:{operator_metrics_port}", "/metrics"),
    ]


class Stack:
    """Everything the demo needs, on loopback; a context manager.

    Args:
        state_dir: where etcd data, certificates, kubeconfig, logs and pod output live.
        flavour: `istio` installs Istio's CRDs; `asm` serves ASM's VirtualService schema.
        gateway_port: the gateway listener's port; taken already, a free one is used.
        binaries: control-plane executables (built on first use when None).
        progress: told what is starting, for a status line.
        serve_peers: the operator also runs ASM's swimlanes and Kruise's Rollouts as they are
            (its `--serve-peers`).
    """

    def __init__(
        self,
        state_dir: Path | str,
        *,
        flavour: str = "istio",
        gateway_port: int = DEFAULT_GATEWAY_PORT,
        binaries: Paths | None = None,
        progress: Progress | None = None,
        serve_peers: bool = False,
    ) -> None:
        if flavour not in FLAVOURS:
            raise ValueError(f"unknown flavour {flavour!r} (known: {', '.join(FLAVOURS)})")
        self.state_dir = Path(state_dir).resolve()
        self.flavour = flavour
        self.serve_peers = serve_peers
        self.wanted_gateway_port = gateway_port
        self.plane = ControlPlane(self.state_dir, binaries, progress=sys.stderr)
        self.mesh: LocalMesh | None = None
        self.api: client.ApiClient | None = None
        self.prometheus: Prometheus | None = None
        self.operator_metrics_port: int | None = None
        self._progress = progress or (lambda _: None)
        self._children: list[processes.Child] = []

    @property
    def kubeconfig(self) -> Path:
        return self.plane.kubeconfig

    @property
    def gateway_url(self) -> str:
        if self.mesh is None:
            raise RuntimeError("the stack is not started")
        return self.mesh.gateway_url

    @property
    def prometheus_url(self) -> str:
        if self.prometheus is None:
            raise RuntimeError("the stack is not started")
        return self.prometheus.url

    @property
    def prometheus_dir(self) -> Path:
        return self.state_dir / "prometheus"

    @property
    def log_dir(self) -> Path:
        return self.plane.log_dir

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> Stack:
        """Start every part in dependency order; return once each is ready."""
        try:
            self._progress("starting the control plane (etcd, kube-apiserver, kube-controller-manager)")
            self.plane.start()
            self.api = self.plane.api_client()
            self._progress(f"installing lanes' CRDs and {self.flavour}'s networking CRDs")
            self.plane.install_manifests(write_manifests(self.state_dir / "manifests", self.flavour))
            _ensure_namespace(self.api, MESH_NAMESPACE)
            self._progress("starting the local istiod and the ingress gateway")
            self._start_mesh()
            self._progress("starting Prometheus (scraping the proxies and the operator every second)")
            self._start_prometheus()
            self._progress("starting the operator and its admission webhook")
            self._start_operator()
            self._progress("starting the local node")
            self._start_node()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop everything, the node (and so every pod) first; no process is left."""
        while self._children:
            processes.stop(self._children.pop(), timeout=30)
        if self.prometheus is not None:
            self.prometheus.stop()
            self.prometheus = None
        if self.mesh is not None:
            self.mesh.stop()
        if self.api is not None:
            self.api.close()
            self.api = None
        self.plane.stop()

    def kill_operator(self) -> None:
        """SIGKILL the operator, as a crash would (tests of what a restart resumes from)."""
        for child in [c for c in self._children if c.name == "operator"]:
            processes.signal_group(child.process.pid, signal.SIGKILL)
            processes.stop(child, timeout=5)
            self._children.remove(child)

    def start_operator(self) -> None:
        """Start the operator again after `kill_operator`; return once its webhook is registered.

        It keeps its place before the node, which is stopped first.
        """
        if any(c.name == "operator" for c in self._children):
            raise RuntimeError("the operator is already running")
        self._start_operator()
        operator = self._children.pop()
        nodes = [i for i, c in enumerate(self._children) if c.name == "node"]
        self._children.insert(nodes[0] if nodes else len(self._children), operator)

    def dead_components(self) -> list[str]:
        """Parts that exited on their own, for a supervisor to notice."""
        dead = self.plane.dead_components()
        dead += [c.name for c in self._children if not c.alive()]
        if self.mesh is not None and not self.mesh.istiod.alive():
            dead.append("istiod")
        if self.mesh is not None and self.mesh.gateway is not None and not self.mesh.gateway.alive():
            dead.append("gateway")
        if self.prometheus is not None and not self.prometheus.alive():
            dead.append("prometheus")
        return dead

    @property
    def sidecar_targets(self) -> Path:
        """The file the node lists every pod's sidecar in, for Prometheus."""
        return self.prometheus_dir / "sidecars.json"

    def restart_component(self, name: str) -> None:
        """Start a part that exited again (a supervisor's restart): a control-plane component,
        the operator, the node, the istiod, the gateway or Prometheus. Each comes back where it
        was: the same ports, data and state directory."""
        if name in {c.name for c in self._children}:
            [child] = [c for c in self._children if c.name == name]
            processes.stop(child, timeout=5)
            index = self._children.index(child)
            self._children.remove(child)
            {"operator": self._start_operator, "node": self._start_node}[name]()
            self._children.insert(index, self._children.pop())
        elif name == "istiod" and self.mesh is not None:
            self.mesh.istiod.stop()
            self.mesh.istiod.start()
        elif name == "gateway" and self.mesh is not None and self.mesh.gateway is not None:
            self.mesh.gateway.stop()
            self.mesh.gateway.start()
        elif name == "prometheus" and self.prometheus is not None:
            self.prometheus.stop()
            self.prometheus.start()
        else:
            self.plane.restart_component(name)

    def _start_mesh(self) -> None:
        mesh_dir = self.state_dir / "mesh"
        for stale in sorted(mesh_dir.glob("**/*.pid")):
            processes.stop_stale(stale, marker=str(self.state_dir))
        port = gateway_port(self.wanted_gateway_port)
        self.mesh = LocalMesh(mesh_dir, kubeconfig=self.kubeconfig, gateway_port=port, api=self.api)
        self.mesh.start()

    def _start_prometheus(self) -> None:
        """Prometheus with its TSDB under the state dir; the operator's port is chosen here."""
        assert self.mesh is not None
        processes.stop_stale(self.prometheus_dir / "prometheus.pid", marker=str(self.state_dir))
        self.operator_metrics_port = processes.free_port()
        self.prometheus_dir.mkdir(parents=True, exist_ok=True)
        self.prometheus = Prometheus(
            self.prometheus_dir,
            scrape_targets(self.mesh.gateway_admin_url.removeprefix("http://"),
                           self.sidecar_targets, self.operator_metrics_port),
            SCRAPE_INTERVAL,
            retention=PROMETHEUS_RETENTION,
        )
        self.prometheus.start()

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> processes.Child:
        child = processes.spawn(
            name, argv, self.log_dir / f"{name}.log", self.plane.run_dir / f"{name}.pid",
            env=child_env(env),
        )
        self._children.append(child)
        return child

    def _start_operator(self) -> None:
        assert self.operator_metrics_port is not None
        port = processes.free_port()
        child = self._spawn(
            "operator",
            operator_argv(self.kubeconfig, self.operator_metrics_port, self.prometheus_url),
            {"LANES_WEBHOOK_PORT": str(port), "LANES_WEBHOOK_CONFIG": WEBHOOK_CONFIG,
             **trace_affinity_env(processes.free_port()),
             **({"LANES_SERVE_PEERS": "true"} if self.serve_peers else {})},
        )
        admission = client.AdmissionregistrationV1Api(self.api)

        def registered() -> bool:
            try:
                config = admission.read_mutating_webhook_configuration(WEBHOOK_CONFIG)
            except ApiException as error:
                if error.status == 404:
                    return False
                raise
            return any(f":{port}/" in (w.client_config.url or "") for w in config.webhooks or [])

        processes.wait_until(registered, what="the operator's admission webhook",
                             timeout=START_TIMEOUT_S, watch=[child])

    def _start_node(self) -> None:
        assert self.mesh is not None
        started = datetime.now(UTC).replace(microsecond=0)
        child = self._spawn("node", [
            sys.executable, "-m", "lanes_testbed.node", "--kubeconfig", str(self.kubeconfig),
            "--name", NODE_NAME, "--istiod", self.mesh.xds_address,
            "--scrape-file", str(self.sidecar_targets),
            "--log-dir", str(self.state_dir / "pods"),
        ])
        core = client.CoreV1Api(self.api)

        def ready() -> bool:
            try:
                node = core.read_node(NODE_NAME)
            except ApiException as error:
                if error.status == 404:
                    return False
                raise
            return any(
                c.type == "Ready" and c.status == "True" and c.last_heartbeat_time >= started
                for c in node.status.conditions or []
            )

        processes.wait_until(ready, what=f"node {NODE_NAME} to be Ready",
                             timeout=START_TIMEOUT_S, watch=[child])


def _ensure_namespace(api: client.ApiClient, name: str) -> None:
    """Create a namespace unless it exists, as a mesh installation would."""
    try:
        client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    except ApiException as error:
        if error.status != 409:
            raise

