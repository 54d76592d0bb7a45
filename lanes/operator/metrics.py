"""Prometheus metrics and the HTTP endpoint serving them with a health check.

Each operator gets its own registry, so several can run in one process (tests, benchmarks)
without clashing over global metric names. `/healthz` shares the port because the Helm
chart probes it there.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .releasemetrics import ReleaseCollector, ReleaseOutcomes, Source
from .serving import Answer, BackgroundServer


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
        self.release_outcomes = ReleaseOutcomes(self.registry)

    def read_releases(self, source: Source) -> None:
        """Report every release `source` yields at each scrape (`lanes.operator.releasemetrics`)."""
        self.registry.register(ReleaseCollector(source))

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


class MetricsServer(BackgroundServer):
    """`/metrics` and `/healthz` on a background thread."""

    def __init__(self, metrics: Metrics, port: int, host: str = "0.0.0.0", healthy: Callable[[], bool] = lambda: True):
        registry = metrics.registry

        def answer(path: str) -> Answer:
            if path.startswith("/metrics"):
                return 200, CONTENT_TYPE_LATEST, generate_latest(registry)
            if path.startswith("/healthz"):
                ok = healthy()
                return (200, "text/plain", b"ok\n") if ok else (503, "text/plain", b"unhealthy\n")
            return 404, "text/plain", b"not found\n"

        super().__init__(host, port, answer, "lanes-metrics")
