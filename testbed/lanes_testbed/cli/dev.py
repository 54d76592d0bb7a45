"""`kubectl lane dev`: a real local control plane to develop and demo against."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from lanes_testbed import cluster

app = typer.Typer(
    help="Develop against a real local stack: control plane (etcd, kube-apiserver, "
    "kube-controller-manager built from the Kubernetes Go modules), lane operator, local node "
    "and a mesh configured by Istio's own code (a local istiod, a sidecar per pod).",
    no_args_is_help=True,
)
cluster_app = typer.Typer(
    help="Start, stop and locate the local control plane, which runs in the background.",
    no_args_is_help=True,
)
app.add_typer(cluster_app, name="cluster")

StateDir = Annotated[
    Optional[Path],
    typer.Option(
        "--state-dir",
        envvar="LANES_DEV_STATE_DIR",
        help="Where etcd data, certificates, kubeconfig and logs live "
        "[default: ${XDG_STATE_HOME:-~/.local/state}/lanes/dev].",
        show_default=False,
    ),
]


@cluster_app.command("up")
def cluster_up(state_dir: StateDir = None) -> None:
    """Start the control plane (building it on first use) and print the KUBECONFIG export.

    Only the export line goes to stdout, so `eval "$(kubectl lane dev cluster up)"` works.
    """
    directory = state_dir or cluster.default_state_dir()
    try:
        cluster.up(directory)
    except Exception as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(cluster.export_line(directory))


@cluster_app.command("down")
def cluster_down(state_dir: StateDir = None) -> None:
    """Stop the control plane; its state stays for the next `up`."""
    directory = state_dir or cluster.default_state_dir()
    try:
        stopped = cluster.down(directory)
    except RuntimeError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    if stopped:
        typer.echo(f"stopped the local control plane ({directory})")
    else:
        typer.echo(f"no local control plane was running ({directory})")


@cluster_app.command("env")
def cluster_env(state_dir: StateDir = None) -> None:
    """Print the KUBECONFIG export line for the running control plane."""
    directory = state_dir or cluster.default_state_dir()
    if not cluster.is_running(directory):
        typer.echo(
            f"error: no local control plane is running in {directory}; "
            "start one with `kubectl lane dev cluster up`",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(cluster.export_line(directory))


@app.command("up")
def up(
    state_dir: StateDir = None,
    flavour: Annotated[
        str, typer.Option(help="Schema the API server serves: istio (Istio's CRDs) or asm (keeps "
                               "ASM's `fallback`). The mesh routes as open-source Istio does either way.")
    ] = "istio",
    gateway_port: Annotated[
        int, typer.Option(help="The gateway's port on 127.0.0.1; if taken, a free one is used.")
    ] = 8080,
    serve_peers: Annotated[
        bool, typer.Option(help="The operator also runs ASM's swimlanes and Kruise's Rollouts as "
                                "they are (its --serve-peers); for a stack that runs already, "
                                "`kubectl lane dev down` first.")
    ] = False,
) -> None:
    """Start everything in the background: control plane, operator, local node, mesh.

    stdout gets only shell exports (KUBECONFIG, LANES_GATEWAY and LANES_PROMETHEUS), so
    `eval "$(kubectl lane dev up)"` works; what started, and where, goes to stderr.
    """
    from lanes_testbed import stackd
    from lanes_testbed.meshcrds import FLAVOURS

    if flavour not in FLAVOURS:
        raise typer.BadParameter(f"{flavour!r} is not one of {', '.join(FLAVOURS)}", param_hint="--flavour")
    directory = state_dir or cluster.default_state_dir()
    try:
        info = stackd.up(directory, flavour, gateway_port, serve_peers=serve_peers)
    except Exception as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(stackd.exports(info))
    typer.echo(
        f"local stack running (flavour {info['flavour']}): gateway {info['gateway_url']}, "
        f"Prometheus {info.get('prometheus_url', 'none')}; "
        f"logs in {info['logs']}, pod output in {info['pods']}; "
        f"proxies' admin pages (config_dump): gateway http://{info['gateway_admin']}, "
        "each pod's sidecar with `kubectl lane dev proxy-config`; "
        "stop it with `kubectl lane dev down`",
        err=True,
    )


@app.command("down")
def down(state_dir: StateDir = None) -> None:
    """Stop the whole stack, pods included; etcd data stays for the next `up`."""
    from lanes_testbed import stackd

    directory = state_dir or cluster.default_state_dir()
    if stackd.down(directory):
        typer.echo(f"stopped the local stack ({directory})")
    else:
        typer.echo(f"no local stack was running ({directory})")


@app.command("env")
def env(state_dir: StateDir = None) -> None:
    """Print the shell exports (KUBECONFIG, LANES_GATEWAY, LANES_PROMETHEUS) of the running stack."""
    from lanes_testbed import stackd

    directory = state_dir or cluster.default_state_dir()
    info = stackd.running(directory)
    if info is None:
        typer.echo(
            f"error: no local stack is running in {directory}; start one with `kubectl lane dev up`",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(stackd.exports(info))


@app.command("proxy-config")
def proxy_config(
    pod: Annotated[
        Optional[str],
        typer.Argument(help="The pod whose sidecar to show; `istio-ingressgateway` for the gateway. "
                       "Without it, every proxy and its admin page is listed."),
    ] = None,
    namespace: Annotated[str, typer.Option("--namespace", "-n", help="The pod's namespace.")] = "default",
    kind: Annotated[str, typer.Option("--type", help="routes, clusters or listeners.")] = "routes",
    output: Annotated[str, typer.Option("--output", "-o", help="table, or json (the whole config_dump).")] = "table",
    state_dir: StateDir = None,
) -> None:
    """Show what Istio gave a pod's sidecar, as `istioctl proxy-config` does, from its admin page."""
    from lanes_testbed import proxyconfig, stackd

    if kind not in proxyconfig.KINDS:
        raise typer.BadParameter(f"{kind!r} is not one of {', '.join(proxyconfig.KINDS)}", param_hint="--type")
    if output not in ("table", "json"):
        raise typer.BadParameter(f"{output!r} is not table or json", param_hint="--output")
    directory = (state_dir or cluster.default_state_dir()).resolve()
    info = stackd.running(directory)
    if info is None:
        typer.echo(f"error: no local stack is running in {directory}; start one with `kubectl lane dev up`",
                   err=True)
        raise typer.Exit(1)
    proxies = [{"pod": "istio-ingressgateway", "namespace": "istio-system", "admin": info["gateway_admin"]},
               *proxyconfig.sidecars(Path(info["sidecars"]))]
    if pod is None:
        typer.echo(proxyconfig.format_table(
            ("NAMESPACE", "POD", "ADMIN"),
            [(p["namespace"], p["pod"], f"http://{p['admin']}") for p in proxies]))
        return
    found = [p for p in proxies if p["pod"] == pod and (p["namespace"] == namespace or pod == "istio-ingressgateway")]
    if not found:
        typer.echo(f"error: pod {namespace}/{pod} has no sidecar in the local stack; "
                   "`kubectl lane dev proxy-config` lists those that do", err=True)
        raise typer.Exit(2)
    try:
        dump = proxyconfig.config_dump(found[0]["admin"])
    except OSError as error:
        typer.echo(f"error: the sidecar of {namespace}/{pod} did not answer on {found[0]['admin']}: {error}",
                   err=True)
        raise typer.Exit(1) from None
    if output == "json":
        typer.echo(json.dumps(dump, indent=1))
        return
    header, rows = proxyconfig.rows_of(kind, dump)
    typer.echo(proxyconfig.format_table(header, rows))
