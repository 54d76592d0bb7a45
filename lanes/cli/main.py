"""`kubectl lane`: the kubectl plugin for lane groups, one module per verb (the release
intents, approve, undo, pause, resume, retry, promote, abort and restart, share `intents`)."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Annotated

import typer

from . import convert, dashboard, graph, intents, loadtester, operator, render, status, trace, version

app = typer.Typer(
    name="kubectl-lane",
    help="End-to-end canary releases with traffic lanes on Istio.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def show_version(value: bool) -> None:
    """Print the version and stop, for `kubectl lane --version`."""
    if value:
        version.version()
        raise typer.Exit()


@app.callback()
def root(
    show: Annotated[
        bool,
        typer.Option("--version", callback=show_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """End-to-end canary releases with traffic lanes on Istio."""


# In the order `kubectl lane --help` lists them.
VERBS = {
    "render": render.render,
    "trace": trace.trace,
    "graph": graph.graph,
    "convert": convert.convert,
    "version": version.version,
    "operator": operator.operator,
    "status": status.status,
    "dashboard": dashboard.dashboard,
    **intents.VERBS,
    "loadtester": loadtester.loadtester,
}
for verb_name, verb in VERBS.items():
    app.command(verb_name)(verb)


# Verbs that other installed packages add (the test bed adds `demo`, `dev` and `wasm`): each
# entry point in this group is a function that takes the Typer app and registers its verbs.
PLUGIN_GROUP = "lanes.cli"
for plugin in entry_points(group=PLUGIN_GROUP):
    plugin.load()(app)


def main() -> None:
    """The console script `kubectl-lane`, named as kubectl shows plugins."""
    app(prog_name="kubectl lane")


if __name__ == "__main__":
    main()
