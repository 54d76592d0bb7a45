"""Readiness checks: the container's readinessProbe, or a TCP connect to the port it serves.

A pod is only an endpoint once it answers, so even without a readinessProbe the node
waits for the port to accept connections (kubelet would call it ready once started).
Until the first success the check repeats every 0.1 s, not every `periodSeconds`, so a
pod turns Ready as soon as it answers. `exec` and `grpc` probes cannot run against a
process here; such containers are checked by TCP connect like the rest.
"""

from __future__ import annotations

import http.client
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

STARTUP_PERIOD_S = 0.1
DEFAULT_PERIOD_S = 1.0


@dataclass(frozen=True)
class Probe:
    """Where and how often to check that a container answers."""

    host: str
    port: int
    path: str | None = None
    timeout_s: float = 1.0
    period_s: float = DEFAULT_PERIOD_S
    initial_delay_s: float = 0.0
    success_threshold: int = 1
    failure_threshold: int = 3
    startup_period_s: float = STARTUP_PERIOD_S

    def check(self) -> bool:
        """HTTP GET answering 200-399 when a path is set, else a TCP connect."""
        try:
            if self.path is None:
                with socket.create_connection((self.host, self.port), timeout=self.timeout_s):
                    return True
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
            try:
                conn.request("GET", self.path, headers={"User-Agent": "lanes-local-node/probe"})
                return 200 <= conn.getresponse().status < 400
            finally:
                conn.close()
        except (OSError, http.client.HTTPException):
            return False


def probe_for(container: Mapping[str, Any], host: str, serving_port: int) -> Probe:
    """The container's readinessProbe (httpGet or tcpSocket) on `host`, else TCP on its port."""
    spec = container.get("readinessProbe") or {}
    timing = {
        "timeout_s": float(spec.get("timeoutSeconds", 1)),
        "period_s": float(spec.get("periodSeconds", DEFAULT_PERIOD_S if not spec else 10)),
        "initial_delay_s": float(spec.get("initialDelaySeconds", 0)),
        "success_threshold": int(spec.get("successThreshold", 1)),
        "failure_threshold": int(spec.get("failureThreshold", 3)),
    }
    for kind in ("httpGet", "tcpSocket"):
        if kind in spec:
            action = spec[kind]
            port = resolve_port(action.get("port"), container, serving_port)
            path = (action.get("path") or "/") if kind == "httpGet" else None
            return Probe(host=host, port=port, path=path, **timing)
    return Probe(host=host, port=serving_port, **timing)


def resolve_port(port: int | str | None, container: Mapping[str, Any], default: int) -> int:
    """A probe port given as a number, a numeric string, or a named container port."""
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    for declared in container.get("ports") or []:
        if port is not None and declared.get("name") == port:
            return int(declared["containerPort"])
    return default
