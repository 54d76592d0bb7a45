"""A local istiod and per-pod Envoy sidecars it configures, so routing is decided by Istio's code.

The istiod is a small Go program (testbed/lanes_testbed/istiod) built from the same pinned Istio
module as istioctl: Istio's own xDS generation serving ADS in plaintext on loopback. Config comes
from the API server (`kubeconfig`) or, without one, from `LocalIstiod.push`, which replaces the
whole object set. Each `Sidecar` is one stock Envoy configured only over ADS, started as
istio-agent would start istio-proxy.

Pods here share one network namespace, so the istiod gives each sidecar a Sidecar config of its
own (built from node metadata: `LANES_BIND`, `LANES_EGRESS`, `LANES_PORTS`) saying where to bind.
A router (ingress gateway) takes its listener ports from Gateway servers resolved through the
`istio-ingressgateway` Service's targetPort (see `workloads.gateway_objects`).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TextIO

from ..binaries import cache_root
from ..gobuild import cached_tool
from ..istioctl import pinned_version
from ..processes import Child, Served, free_port, spawn, wait_until
from .binary import envoy_binary

MODULE_DIR = Path(__file__).resolve().parent.parent / "istiod"
ISTIO_VERSION = "1.30"
CLUSTER_ID = "Kubernetes"
DOMAIN = "cluster.local"
# The label unique to each pod that the istiod's per-proxy Sidecar selects.
PROXY_LABEL = "testbed.lanes.dev/proxy"
# Istio's tag rule: `cluster_name` holds the whole `outbound|8000|canary|mockb.default.svc.cluster.local`.
# Istio names a cluster's stats by its `alt_stat_name`, the cluster name and a `;`
# (`cluster.outbound|8000|canary|mockb.team-a.svc.cluster.local;.upstream_rq_200`), so the `;`
# is taken out of the name with the tag but kept out of its value.
STATS_TAGS = [
    {"tag_name": "cluster_name", "regex": r"^cluster\.((.+?(\..+?\.svc\.cluster\.local)?);?\.)"},
]

_LISTENER_STATS = urllib.parse.quote(r"^listener_manager\.(total_listeners_warming|lds\.update_success)$")

# Control calls go to loopback directly, whatever proxy the environment names.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def source_digest(module_dir: Path = MODULE_DIR) -> str:
    """A digest of the program's sources, so an edit to it is a new cached build."""
    digest = hashlib.sha256()
    for path in sorted(module_dir.iterdir()):
        if path.suffix == ".go" and not path.name.endswith("_test.go") or path.name in ("go.mod", "go.sum"):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def ensure_istiod(progress: TextIO | None = sys.stderr) -> Path:
    """Return the local istiod executable, building it first if needed.

    About a minute once istioctl's build is in Go's build cache, 7 to 8 minutes cold.
    """
    version = f"{pinned_version()}-{source_digest()}"
    return cached_tool(
        cache_root(),
        "istiod",
        version,
        MODULE_DIR,
        ".",
        "-s -w",
        f"the local istiod ({version})",
        progress,
    )


def _get(url: str, timeout: float = 5.0) -> bytes:
    with _DIRECT.open(url, timeout=timeout) as response:
        return response.read()


def _get_json(url: str, timeout: float = 5.0) -> Any:
    return json.loads(_get(url, timeout))


class SyncError(RuntimeError):
    """A config version did not reach the proxies: which proxy, which type, and why."""


class LocalIstiod(Served):
    """Istio's xDS generation on loopback: ADS for the sidecars, HTTP for control and debug."""

    def __init__(
        self,
        workdir: Path,
        *,
        kubeconfig: Path | None = None,
        address: str = "127.0.0.1",
        xds_port: int | None = None,
        http_port: int | None = None,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.kubeconfig = kubeconfig
        self.address = address
        self.xds_port = xds_port or free_port()
        self.http_port = http_port or free_port()
        self._child: Child | None = None

    @property
    def xds_address(self) -> str:
        return f"{self.address}:{self.xds_port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.address}:{self.http_port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "istiod.log"

    def start(self, timeout: float = 60.0) -> None:
        binary = ensure_istiod()
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [
            str(binary),
            f"--xds-address={self.xds_address}",
            f"--http-address={self.address}:{self.http_port}",
            f"--wasm-dir={self.workdir / 'wasm'}",
        ]
        if self.kubeconfig is not None:
            argv.append(f"--kubeconfig={self.kubeconfig}")
        self._child = spawn("istiod", argv, self.log_path, self.workdir / "istiod.pid")
        try:
            wait_until(self._ready, what="the local istiod to be ready", timeout=timeout,
                       watch=[self._child], interval=0.05)
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        try:
            _get(f"{self.http_url}/ready", timeout=1.0)
            return True
        except (OSError, urllib.error.URLError):
            return False

    def push(self, objects: Iterable[Mapping[str, Any]]) -> int:
        """Make `objects` the whole config (other kinds than Istio's and Services are ignored).

        Only without a kubeconfig; returns the new config version.
        """
        body = json.dumps(list(objects)).encode()
        request = urllib.request.Request(
            f"{self.http_url}/push", data=body, method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with _DIRECT.open(request, timeout=30.0) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise RuntimeError(f"istiod refused the push: {error.read().decode(errors='replace')}") from None
        for problem in answer.get("skipped") or []:
            print(f"lanes: istiod skipped {problem}", file=sys.stderr)
        return int(answer["version"])

    def version(self) -> int:
        """The current config version, bumped by every change seen (push or API server)."""
        return int(_get_json(f"{self.http_url}/version")["version"])

    def configs(self) -> list[dict[str, Any]]:
        """The config objects Istio holds (its own /debug/configz), per-proxy Sidecars included."""
        return list(_get_json(f"{self.http_url}/debug/configz"))

    def proxies(self) -> list[str]:
        """Node ids of the connected proxies."""
        return list(_get_json(f"{self.http_url}/proxies")["proxies"])

    def synced(self, version: int, proxies: Iterable[str] | None = None) -> list[str]:
        """Why `version` is not yet in force on the proxies; empty when it is."""
        query = [("version", str(version))] + [("proxy", p) for p in proxies or ()]
        answer = _get_json(f"{self.http_url}/synced?{urllib.parse.urlencode(query)}")
        return [] if answer["synced"] else list(answer["pending"])

    def wait_synced(
        self, version: int, proxies: Iterable[str] | None = None, timeout: float = 10.0
    ) -> None:
        """Return once every proxy (or those named, by node id) ACKed a push including `version`.

        Raises:
            SyncError: naming each proxy and xDS type still behind, with any NACK's error text.
        """
        names = list(proxies) if proxies is not None else None
        deadline = time.monotonic() + timeout
        while True:
            pending = self.synced(version, names)
            if not pending:
                return
            if any("NACKed" in p for p in pending) or time.monotonic() > deadline:
                raise SyncError(
                    f"config version {version} not in force after {timeout:.0f}s:\n  " + "\n  ".join(pending)
                )
            time.sleep(0.02)


def node_id(kind: Literal["sidecar", "router"], pod_ip: str, pod: str, namespace: str) -> str:
    return f"{kind}~{pod_ip}~{pod}.{namespace}~{namespace}.svc.{DOMAIN}"


def sidecar_bootstrap(
    *,
    xds_address: str,
    kind: Literal["sidecar", "router"],
    pod: str,
    namespace: str,
    labels: Mapping[str, str],
    pod_ip: str,
    address: str,
    egress: str | None,
    ports: Sequence[int],
    admin_port: int = 15000,
    service_account: str = "default",
) -> dict[str, Any]:
    """Envoy's bootstrap as istio-agent would write it for istio-proxy: ADS only, from the istiod."""
    host, _, port = xds_address.rpartition(":")
    all_labels = {**labels, PROXY_LABEL: f"{pod}.{namespace}"}
    workload = labels.get("app", pod)
    metadata: dict[str, Any] = {
        "ISTIO_VERSION": ISTIO_VERSION,
        "CLUSTER_ID": CLUSTER_ID,
        "NAMESPACE": namespace,
        "LABELS": all_labels,
        "INTERCEPTION_MODE": "NONE",
        "WORKLOAD_NAME": workload,
        "POD_NAME": pod,
        "SERVICE_ACCOUNT": service_account,
        "INSTANCE_IPS": pod_ip,
        "MESH_ID": DOMAIN,
        "PROXY_CONFIG": {},
        "LANES_BIND": address,
        "LANES_PORTS": ",".join(str(p) for p in ports),
    }
    if egress is not None:
        metadata["LANES_EGRESS"] = egress
    return {
        "node": {
            "id": node_id(kind, pod_ip, pod, namespace),
            "cluster": f"{workload}.{namespace}",
            "metadata": metadata,
        },
        "admin": {"address": {"socket_address": {"address": address, "port_value": admin_port}}},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": True,
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}],
            },
            "cds_config": {"ads": {}, "resource_api_version": "V3", "initial_fetch_timeout": "0s"},
            "lds_config": {"ads": {}, "resource_api_version": "V3", "initial_fetch_timeout": "0s"},
        },
        "static_resources": {
            "clusters": [
                {
                    "name": "xds-grpc",
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "load_assignment": {
                        "cluster_name": "xds-grpc",
                        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                            "socket_address": {"address": host, "port_value": int(port)}}}}]}],
                    },
                    "typed_extension_protocol_options": {
                        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                            "explicit_http_config": {"http2_protocol_options": {}},
                        }
                    },
                }
            ]
        },
        "stats_config": {"stats_tags": STATS_TAGS, "use_all_default_tags": True},
    }


class Sidecar(Served):
    """One stock Envoy for one pod (or the ingress gateway), configured only by the istiod.

    `address` is where the mesh reaches the pod (inbound listeners and admin bind there); `egress`
    is where the pod's app sends its calls (outbound listeners); `pod_ip` is the app itself.
    """

    def __init__(
        self,
        workdir: Path,
        xds_address: str,
        *,
        kind: Literal["sidecar", "router"] = "sidecar",
        pod: str,
        namespace: str,
        labels: Mapping[str, str],
        pod_ip: str,
        address: str,
        egress: str | None = None,
        ports: Sequence[int] = (),
        admin_port: int = 15000,
        service_account: str = "default",
        log_level: str = "warning",
        die_with_parent: bool | None = None,
    ) -> None:
        """`die_with_parent`: have the kernel kill Envoy when the starting thread ends (by default,
        only when started from the main thread; the local node starts sidecars from its sync thread,
        which lives as long as the node)."""
        if kind == "sidecar" and egress is None:
            raise ValueError("a sidecar needs an egress address for its outbound listeners")
        self.workdir = Path(workdir).resolve()
        self.kind = kind
        self.pod = pod
        self.namespace = namespace
        self.address = address
        self.egress = egress
        self.admin_port = admin_port
        self.node_id = node_id(kind, pod_ip, pod, namespace)
        self._bootstrap = sidecar_bootstrap(
            xds_address=xds_address, kind=kind, pod=pod, namespace=namespace, labels=labels,
            pod_ip=pod_ip, address=address, egress=egress, ports=ports, admin_port=admin_port,
            service_account=service_account,
        )
        self._log_level = log_level
        self._die_with_parent = die_with_parent
        self._child: Child | None = None

    @property
    def admin_url(self) -> str:
        return f"http://{self.address}:{self.admin_port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.pod}.{self.namespace}.envoy.log"

    def start(self, timeout: float = 30.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        boot = self.workdir / f"{self.pod}.{self.namespace}.bootstrap.json"
        boot.write_text(json.dumps(self._bootstrap, indent=1))
        argv = [
            str(envoy_binary()), "-c", str(boot),
            "--disable-hot-restart",
            "--drain-time-s", "1", "--drain-strategy", "immediate",
            "--log-level", self._log_level,
            "--base-id-path", str(self.workdir / f"{self.pod}.{self.namespace}.base-id"),
            "--use-dynamic-base-id",
            "--concurrency", "1",
        ]
        pid = self.workdir / f"{self.pod}.{self.namespace}.envoy.pid"
        self._child = spawn(f"envoy {self.pod}.{self.namespace}", argv, self.log_path, pid,
                            die_with_parent=self._die_with_parent)
        try:
            wait_until(lambda: self._admin_up(), what=f"{self.pod}'s sidecar admin", timeout=timeout,
                       watch=[self._child], interval=0.05)
        except BaseException:
            self.stop()
            raise

    def _admin_up(self) -> bool:
        try:
            _get(f"{self.admin_url}/ready", timeout=1.0)
            return True
        except urllib.error.HTTPError:
            return True  # answering, not yet LIVE
        except (OSError, urllib.error.URLError):
            return False

    def ready(self) -> bool:
        """LIVE, with every listener from LDS in force (none warming)."""
        try:
            info = _get_json(f"{self.admin_url}/server_info", timeout=1.0)
            stats = _get(f"{self.admin_url}/stats?filter={_LISTENER_STATS}", timeout=1.0).decode()
        except (OSError, urllib.error.URLError, ValueError):
            return False
        values = dict(line.split(": ", 1) for line in stats.splitlines() if ": " in line)
        return (
            info.get("state") == "LIVE"
            and values.get("listener_manager.total_listeners_warming") == "0"
            and int(values.get("listener_manager.lds.update_success", "0")) > 0
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        watch = [self._child] if self._child is not None else []
        wait_until(self.ready, what=f"{self.pod}'s sidecar to serve listeners from LDS",
                   timeout=timeout, watch=watch, interval=0.05)

    def config_dump(self) -> dict[str, Any]:
        return _get_json(f"{self.admin_url}/config_dump")

    def cluster_names(self) -> list[str]:
        """The names of the clusters Envoy holds (admin /clusters)."""
        text = _get(f"{self.admin_url}/clusters").decode()
        return sorted({line.split("::", 1)[0] for line in text.splitlines() if "::" in line})
