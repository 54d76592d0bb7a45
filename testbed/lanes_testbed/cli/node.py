"""`kubectl lane dev node`: run the local node in the foreground until Ctrl-C."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from lanes_testbed import cluster


def node(
    kubeconfig: Annotated[
        Optional[Path],
        typer.Option(envvar="KUBECONFIG", show_default=False,
                     help="The cluster to join [default: the running `kubectl lane dev cluster`]."),
    ] = None,
    name: Annotated[str, typer.Option(help="The Node's name.")] = "lanes-local",
    istiod: Annotated[
        Optional[str],
        typer.Option(metavar="HOST:PORT",
                     help="A local istiod's xDS address: every pod then gets a sidecar it configures."),
    ] = None,
    namespace: Annotated[
        Optional[list[str]],
        typer.Option(help="Take pending pods only from this namespace (repeatable) "
                     "[default: all but kube-system]."),
    ] = None,
    selector: Annotated[
        Optional[str], typer.Option(help="Take only pending pods matching this label selector.")
    ] = None,
    log_dir: Annotated[
        Optional[Path], typer.Option(help="Where container output goes [default: a temporary directory].")
    ] = None,
) -> None:
    """Run the pods of the local control plane as local processes, one loopback IP per pod.

    Only the mock-chain sample images run; pods with other images report ErrImagePull.
    """
    from lanes_testbed.node import LocalNode
    from lanes_testbed.node.serve import serve

    config = kubeconfig or _dev_kubeconfig()
    local = LocalNode(config, name, istiod, namespaces=namespace or None,
                      label_selector=selector, log_dir=log_dir)
    try:
        code = serve(local)
    except Exception as error:
        typer.echo(f"error: node {name}: {error}", err=True)
        raise typer.Exit(1) from None
    raise typer.Exit(code)


def _dev_kubeconfig() -> Path:
    state_dir = cluster.default_state_dir()
    if not cluster.is_running(state_dir):
        typer.echo("error: no --kubeconfig or KUBECONFIG given and no local control plane runs; "
                   "start one with `kubectl lane dev cluster up`", err=True)
        raise typer.Exit(1)
    return cluster.kubeconfig_path(state_dir)
