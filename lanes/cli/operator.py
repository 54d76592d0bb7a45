"""`kubectl lane operator`: run the lane operator against the current cluster."""

from __future__ import annotations

import re
from typing import Annotated

import typer

from lanes.analysis.queries import SOURCES as METRIC_SOURCES

LOG_LEVELS = ("debug", "info", "warning", "error")
PROMETHEUS_URL = re.compile(r"^https?://[^\s/]+")


def operator(
    kubeconfig: Annotated[
        str | None,
        typer.Option(help="Kubeconfig file; default: $KUBECONFIG, ~/.kube/config, else in-cluster."),
    ] = None,
    context: Annotated[str | None, typer.Option(help="Kubeconfig context to use.")] = None,
    metrics_port: Annotated[
        int, typer.Option(help="Port for /metrics and /healthz; 0 picks a free port, -1 disables.")
    ] = 9090,
    metrics_host: Annotated[str, typer.Option(help="Address the metrics endpoint binds.")] = "0.0.0.0",
    log_level: Annotated[str, typer.Option(help=f"One of {', '.join(LOG_LEVELS)}.")] = "info",
    workers: Annotated[int, typer.Option(min=1, help="Groups reconciled in parallel.")] = 4,
    rollout_workers: Annotated[
        int,
        typer.Option(min=1, envvar="LANES_ROLLOUT_WORKERS",
                     help="Rollouts reconciled in parallel (each analysis check waits on "
                     "Prometheus and the API server)."),
    ] = 4,
    resync: Annotated[
        float, typer.Option(min=1.0, help="Seconds between full checks of every group's live objects.")
    ] = 300.0,
    prometheus_url: Annotated[
        str | None,
        typer.Option(
            envvar="LANES_PROMETHEUS_URL",
            help="Prometheus base URL for rollout analysis, used when neither the analysis "
            "(prometheus.address) nor a MetricTemplate names one.",
        ),
    ] = None,
    metric_source: Annotated[
        str,
        typer.Option(
            envvar="LANES_METRIC_SOURCE",
            help=f"Source of the built-in analysis metrics when the analysis names none: "
            f"{' or '.join(METRIC_SOURCES)}.",
        ),
    ] = "istio",
) -> None:
    """Run the lane operator: watch lane groups, lanes and pods; keep the routes in force."""
    if log_level.lower() not in LOG_LEVELS:
        raise typer.BadParameter(f"{log_level!r} is not one of {', '.join(LOG_LEVELS)}", param_hint="--log-level")
    prometheus_url = prometheus_url or None  # an empty setting (a chart's default) is none
    if metric_source not in METRIC_SOURCES:
        raise typer.BadParameter(
            f"{metric_source!r} is not one of {', '.join(METRIC_SOURCES)}", param_hint="--metric-source"
        )
    if prometheus_url is not None and not PROMETHEUS_URL.match(prometheus_url):
        raise typer.BadParameter(
            f"{prometheus_url!r} is not an http:// or https:// URL", param_hint="--prometheus-url"
        )
    from lanes.operator.run import run
    from lanes.operator.runtime import Options

    options = Options(
        kubeconfig=kubeconfig,
        context=context,
        metrics_port=None if metrics_port < 0 else metrics_port,
        metrics_host=metrics_host,
        workers=workers,
        rollout_workers=rollout_workers,
        resync=resync,
        prometheus_url=prometheus_url,
        metric_source=metric_source,
    )
    run(options, log_level.lower())


def main() -> None:
    """`python -m lanes.operator`."""
    typer.run(operator)
