"""`kubectl lane dashboard`: lane groups, releases and per-lane health on a local web page.

Served by this process with the user's own kubeconfig, so the page can see and do what the
user can and no more; it listens on loopback unless told otherwise, and nothing runs in the
cluster. The buttons are the intent verbs (`intents.send_intent`), refused alike.
"""

from __future__ import annotations

import enum
import time
import webbrowser
from typing import Annotated

import typer

from .intents import Context, Kubeconfig

DEFAULT_PORT = 8642


class Source(str, enum.Enum):
    """Where the per-lane metrics come from, as for the operator's analysis."""

    envoy = "envoy"
    istio = "istio"


def dashboard(
    port: Annotated[int, typer.Option(help="Port to listen on; 0 picks a free one.")] = DEFAULT_PORT,
    address: Annotated[
        str, typer.Option(help="Address to listen on; anything but loopback shows the page, "
                               "and its buttons, to whoever reaches it.")
    ] = "127.0.0.1",
    prometheus_url: Annotated[
        str | None, typer.Option(help="Prometheus to ask for each lane's rate, success rate and "
                                      "p99; without it the page shows no metrics.")
    ] = None,
    metric_source: Annotated[
        Source, typer.Option(help="Which metrics hold each lane's requests: envoy or istio.")
    ] = Source.envoy,
    open_browser: Annotated[
        bool, typer.Option("--open/--no-open", help="Open the page in a browser.")
    ] = False,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
) -> None:
    """Serve a live page of lane groups, releases and per-lane health until interrupted."""
    # The kubernetes client loads only when a verb talks to a cluster, so the offline verbs
    # (render, trace, graph, convert) start without it.
    from lanes.dashboard.cluster import ClusterView
    from lanes.dashboard.server import serve
    from lanes.kube.connect import connect

    import yaml
    from kubernetes.config import ConfigException

    try:
        api = connect(kubeconfig, context)
    except (ConfigException, OSError, yaml.YAMLError) as error:
        typer.echo(f"error: cannot use the kubeconfig: {error}", err=True)
        raise typer.Exit(1) from None
    cluster = ClusterView(api)
    try:
        server = serve(cluster, address, port, prometheus_url, metric_source.value)
    except OSError as error:
        api.close()
        typer.echo(f"error: cannot listen on {address}:{port}: {error.strerror or error}",
                   err=True)
        raise typer.Exit(1) from None
    cluster.start()
    typer.echo(f"lanes dashboard on {server.url} (Ctrl-C stops it)")
    if open_browser:
        webbrowser.open(server.url)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        api.close()
