"""`kubectl lane version`: which lanes this is, for bug reports."""

from __future__ import annotations

from importlib import metadata

import typer


def lanes_version() -> str:
    """The installed distribution's version, or a marker when running from a bare checkout."""
    try:
        return metadata.version("lanes")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def version() -> None:
    """Print the version of kubectl-lane."""
    typer.echo(f"kubectl-lane {lanes_version()}")
