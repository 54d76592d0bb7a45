"""`kubectl lane`: the kubectl plugin for lane groups, one module per verb."""

from __future__ import annotations

from typing import Annotated

import typer

from lanes.cli.dev import app as dev_app

from . import (
    approve,
    convert,
    demo,
    graph,
    loadtester,
    operator,
    pause,
    render,
    resume,
    status,
    trace,
    undo,
    version,
    wasm,
)

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


app.command("render")(render.render)
app.command("trace")(trace.trace)
app.command("graph")(graph.graph)
app.command("convert")(convert.convert)
app.command("demo")(demo.demo)
app.command("version")(version.version)
app.command("operator")(operator.operator)
app.command("status")(status.status)
app.command("approve")(approve.approve)
app.command("undo")(undo.undo)
app.command("pause")(pause.pause)
app.command("resume")(resume.resume)
app.command("loadtester")(loadtester.loadtester)
app.command("wasm")(wasm.wasm)
app.add_typer(dev_app, name="dev")


def main() -> None:
    """The console script `kubectl-lane`, named as kubectl shows plugins."""
    app(prog_name="kubectl lane")


if __name__ == "__main__":
    main()
