"""Prometheus metrics and the HTTP endpoint serving them with a health check.

Each operator gets its own registry, so several can run in one process (tests, benchmarks)
without clashing over global metric names. `/healthz` shares the port because the Helm
chart probes it there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """The operator's metrics, registered on one registry."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        self.reconciles = Counter(
            "lanes_reconciles", "Group reconciles by result.", ["result"], registry=self.registry
        )
        self.duration = Histogram(
            "lanes_reconcile_duration_seconds",
            "Time one group reconcile takes.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.errors = Counter(
            "lanes_reconcile_errors", "Reconciles that failed and will be retried.", registry=self.registry
        )
        self.generated = Gauge(
            "lanes_generated_objects", "Objects a group has in force.", ["group"], registry=self.registry
        )
        self.lanes_with_pods = Gauge(
            "lanes_lanes_with_pods", "Lanes of a group with ready pods of any service.", ["group"],
            registry=self.registry,
        )
        self.api_writes = Counter(
            "lanes_api_writes", "Writes to the API server by method and resource.", ["method", "resource"],
            registry=self.registry,
        )

        self.leader = Gauge(
            "lanes_leader", "1 while this replica leads (holds the Lease, or runs without election).",
            registry=self.registry,
        )

    def count_write(self, method: str, resource: str) -> None:
        """Hook for MeteredApiClient."""
        self.api_writes.labels(method, resource).inc()

    def forget_group(self, group: str) -> None:
        """Drop a deleted group's gauges."""
        for gauge in (self.generated, self.lanes_with_pods):
            try:
                gauge.remove(group)
            except KeyError:
                pass


class MetricsServer:
    """`/metrics` and `/healthz` on a background thread."""

    def __init__(self, metrics: Metrics, port: int, host: str = "0.0.0.0", healthy: Callable[[], bool] = lambda: True):
        registry = metrics.registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.startswith("/metrics"):
                    body, ctype, code = generate_latest(registry), CONTENT_TYPE_LATEST, 200
                elif self.path.startswith("/healthz"):
                    ok = healthy()
                    body, ctype, code = (b"ok\n" if ok else b"unhealthy\n"), "text/plain", 200 if ok else 503
                else:
                    body, ctype, code = b"not found\n", "text/plain", 404
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="lanes-metrics", daemon=True)

    @property
    def port(self) -> int:
        """The bound port (useful when 0 asked for a free one)."""
        return self.server.server_address[1]

    def start(self) -> MetricsServer:
        """Serve in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()
