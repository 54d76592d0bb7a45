"""The test bed's verbs, added to `kubectl lane` where the test bed is installed."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add `demo`, `dev` (with `dev node`) and `wasm` to the `kubectl lane` app."""
    from .demo import demo
    from .dev import app as dev_app
    from .wasm import wasm

    app.command("demo")(demo)
    app.command("wasm")(wasm)
    app.add_typer(dev_app, name="dev")
