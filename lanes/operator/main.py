"""The operator's entry point and its options: `python -m lanes.operator`, and the command
`kubectl lane operator` runs.

The options live with the operator, so the operator's image runs it with no CLI in between.
kopf, the kubernetes client and everything the operator runs with load only once it starts, so
`kubectl lane --help` and the other verbs never pay for them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from lanes.analysis.queries import SOURCES as METRIC_SOURCES
from lanes.render import TraceAffinityModule
from lanes.render.trace_affinity import DEFAULT_MAX_AGE_SECONDS, DEFAULT_MAX_ENTRIES

from .modules import ServedModule, load_module, served_url

LOG_LEVELS = ("debug", "info", "warning", "error")
PROMETHEUS_URL = re.compile(r"^https?://[^\s/]+")
# What Istio's WasmPlugin `url` accepts: an http(s) or OCI location, or a file on the proxy.
MODULE_URL = re.compile(r"^(https?://[^\s/]+|oci://[^\s/]+|file:///)\S*$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")


def operator(
    kubeconfig: Annotated[
        str | None,
        typer.Option(help="Kubeconfig file; default: $KUBECONFIG, ~/.kube/config, else in-cluster."),
    ] = None,
    context: Annotated[str | None, typer.Option(help="Kubeconfig context to use.")] = None,
    metrics_port: Annotated[
        int, typer.Option(help="Port for /metrics and /healthz; 0 picks a free port, -1 disables.")
    ] = 9090,
    metrics_host: Annotated[
        str, typer.Option(help="Address the metrics endpoint (and the served module) binds.")
    ] = "0.0.0.0",
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
    trace_affinity_url: Annotated[
        str | None,
        typer.Option(
            envvar="LANES_TRACE_AFFINITY_URL",
            help="Where proxies fetch lanes' trace-affinity module (http(s)://, oci:// or "
            "file:///); set, groups in ASM's trace-ID mode get WasmPlugins loading it.",
        ),
    ] = None,
    trace_affinity_sha256: Annotated[
        str | None,
        typer.Option(envvar="LANES_TRACE_AFFINITY_SHA256", help="The module's sha256 (hex)."),
    ] = None,
    module_file: Annotated[
        Path | None,
        typer.Option(
            "--trace-affinity-module", envvar="LANES_TRACE_AFFINITY_MODULE",
            help="Serve this trace-affinity module file to the proxies over HTTP at "
            "/wasm/trace-affinity.wasm; without --trace-affinity-url, the WasmPlugins load it "
            "from here, with the sha256 of what is served.",
        ),
    ] = None,
    trace_affinity_port: Annotated[
        int,
        typer.Option(envvar="LANES_TRACE_AFFINITY_PORT", min=1, max=65535,
                     help="Port the served module listens on."),
    ] = 9091,
    trace_affinity_host: Annotated[
        str | None,
        typer.Option(envvar="LANES_TRACE_AFFINITY_HOST",
                     help="The name proxies reach this operator's served module by (the chart: "
                     "its Service, <name>.<namespace>.svc)."),
    ] = None,
    trace_affinity_max_entries: Annotated[
        int,
        typer.Option(envvar="LANES_TRACE_AFFINITY_MAX_ENTRIES", min=1, max=1_000_000,
                     help="Traces each proxy remembers at most."),
    ] = DEFAULT_MAX_ENTRIES,
    trace_affinity_max_age: Annotated[
        int,
        typer.Option(envvar="LANES_TRACE_AFFINITY_MAX_AGE", min=1, max=86400,
                     help="Seconds a proxy remembers a trace's lane."),
    ] = DEFAULT_MAX_AGE_SECONDS,
    leader_elect: Annotated[
        bool,
        typer.Option(
            envvar="LANES_LEADER_ELECTION",
            help="Elect a leader on a Lease: only the leader reconciles and writes; run two or "
            "more replicas. Every replica serves the admission webhook.",
        ),
    ] = False,
    lease_name: Annotated[
        str, typer.Option(envvar="LANES_LEASE_NAME", help="The leader-election Lease.")
    ] = "lanes-operator",
    lease_namespace: Annotated[
        str | None,
        typer.Option(envvar="POD_NAMESPACE", help="The Lease's namespace [default: the context's, else default]."),
    ] = None,
    lease_duration: Annotated[
        float, typer.Option(envvar="LANES_LEASE_DURATION", help="Seconds a standby waits for a silent leader.")
    ] = 15.0,
    renew_deadline: Annotated[
        float, typer.Option(envvar="LANES_RENEW_DEADLINE", help="Seconds a leader may fail to renew before it stops.")
    ] = 10.0,
    retry_period: Annotated[
        float, typer.Option(envvar="LANES_RETRY_PERIOD", help="Seconds between tries to take or renew the Lease.")
    ] = 2.0,
    serve_peers: Annotated[
        bool,
        typer.Option(
            envvar="LANES_SERVE_PEERS",
            help="Also run ASM's ASMSwimLaneGroups and ASMSwimLanes (istio.alibabacloud.com/v1) "
            "and Kruise's Rollouts (rollouts.kruise.io/v1beta1) as they are, installing their "
            "CRDs where absent; an object its own controller runs is refused.",
        ),
    ] = False,
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
    served = None
    if module_file is not None:
        try:
            served = load_module(module_file, trace_affinity_port, metrics_host)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--trace-affinity-module") from None
    module = trace_affinity_module(
        trace_affinity_url, trace_affinity_sha256, trace_affinity_max_entries, trace_affinity_max_age,
        served, trace_affinity_host,
    )
    # Deferred on purpose: these load kopf and the kubernetes client (see the module's docstring).
    from .leader import Election
    from .run import run
    from .runtime import Options

    election = None
    if leader_elect:
        if lease_namespace is None:
            from lanes.kube.rollouts import default_namespace  # deferred: the kubernetes client

            lease_namespace = default_namespace(kubeconfig, context)
        try:
            election = Election(lease_namespace, lease_name, lease_duration=lease_duration,
                                renew_deadline=renew_deadline, retry_period=retry_period)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--lease-duration") from None

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
        trace_affinity=module,
        served_module=served,
        election=election,
        serve_peers=serve_peers,
    )
    run(options, log_level.lower())


def trace_affinity_module(
    url: str | None,
    sha256: str | None,
    max_entries: int,
    max_age: int,
    served: ServedModule | None = None,
    host: str | None = None,
) -> TraceAffinityModule | None:
    """The module settings, or None when no URL is set (an empty one is a chart's default).

    A module this operator serves is fetched from it, at `host`, unless a URL is given: that
    one wins, with its own sha256, since it may hold another build.
    """
    url, sha256 = url or None, (sha256 or "").lower() or None
    if url is None and served is not None:
        if sha256 is not None:
            raise typer.BadParameter("the served module's sha256 is its own; give one only with "
                                     "--trace-affinity-url", param_hint="--trace-affinity-sha256")
        if not host:
            raise typer.BadParameter("serving the module needs the host name proxies reach "
                                     "this operator by", param_hint="--trace-affinity-host")
        if not HOST.match(host):
            raise typer.BadParameter(f"{host!r} is not a host name", param_hint="--trace-affinity-host")
        return TraceAffinityModule(url=served_url(host, served.port), sha256=served.sha256,
                                   max_entries=max_entries, max_age_seconds=max_age)
    if url is None:
        if sha256 is not None:
            raise typer.BadParameter("a sha256 without --trace-affinity-url says where nothing is",
                                     param_hint="--trace-affinity-sha256")
        return None
    if not MODULE_URL.match(url):
        raise typer.BadParameter(f"{url!r} is not an http(s)://, oci:// or file:/// URL",
                                 param_hint="--trace-affinity-url")
    if sha256 is not None and not SHA256.match(sha256):
        raise typer.BadParameter(f"{sha256!r} is not 64 hex digits",
                                 param_hint="--trace-affinity-sha256")
    return TraceAffinityModule(url=url, sha256=sha256, max_entries=max_entries,
                               max_age_seconds=max_age)


def main() -> None:
    """`python -m lanes.operator`: the same command as `kubectl lane operator`."""
    typer.run(operator)
