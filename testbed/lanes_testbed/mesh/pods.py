"""Run mock-chain sample services as local processes, one loopback address each.

Used by the end-to-end tests and the data-plane benchmark; the local node runs pods of the
control plane the same way. `start_pod` gives one a sidecar in a `LocalMesh` first.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..loopback import take_block
from ..processes import Child, spawn, stop, wait_until

if TYPE_CHECKING:
    from .local import LocalMesh

APP_MODULE = "lanes_testbed.mesh.mockapp"
_PROXY_VARS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy",
               "NO_PROXY", "no_proxy")


def start_mock(
    name: str,
    ip: str,
    env: Mapping[str, str],
    workdir: Path,
    port: int = 8000,
    timeout: float = 15.0,
) -> Child:
    """Start one sample service on `ip:port` and wait until it accepts connections.

    The environment is this process's minus any proxy settings, plus `env`: a proxy is set
    only when the caller gives one, so a developer's own HTTP_PROXY never captures the chain.
    Output goes to `workdir/NAME.log`.
    """
    if not ipaddress.ip_address(ip).is_loopback:
        raise ValueError(f"{ip} is not a loopback address")
    inherited = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}
    settings = {**inherited, "POD_IP": ip, "PORT": str(port), "PYTHONUNBUFFERED": "1", **env}
    argv = [sys.executable, "-m", APP_MODULE]
    child = spawn(name, argv, workdir / f"{name}.log", workdir / f"{name}.pid", env=settings)
    try:
        wait_until(lambda: serving(ip, port), what=f"{name} on {ip}:{port}", timeout=timeout,
                   watch=[child], interval=0.05)
    except BaseException:
        stop(child)
        raise
    return child


def serving(ip: str, port: int) -> bool:
    """Whether something accepts connections on `ip:port`."""
    try:
        with socket.create_connection((ip, port), timeout=0.5):
            return True
    except OSError:
        return False


def free_block(port: int = 8000) -> str:
    """A `127.N.M` block for the caller's pods alone, its first addresses free at `port`.

    No other caller, in this process or another, gets the block (see `lanes_testbed.loopback`);
    it stays the caller's until the process ends. One something else listens on is skipped.
    """
    while True:
        block = take_block()
        if not any(serving(f"{block}.{last}", port) for last in range(1, 17)):
            return block


def start_pod(
    mesh: LocalMesh,
    name: str,
    labels: Mapping[str, str],
    ip: str,
    env: Mapping[str, str],
    workdir: Path,
    port: int = 8000,
) -> Child:
    """A sample-service pod in `mesh`: its sidecar, then the app calling out through it."""
    proxy = mesh.add_pod(name, labels, ip, ports=(port,))
    return start_mock(name, ip, {**env, **proxy.env()}, workdir, port)
