"""`kubectl lane dev`: a real local control plane to develop and demo against."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from lanes.dev import cluster

app = typer.Typer(
    help="Develop against a real local control plane (etcd, kube-apiserver, "
    "kube-controller-manager) built from the Kubernetes Go modules.",
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
    if cluster.down(directory):
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
