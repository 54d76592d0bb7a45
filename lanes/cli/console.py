"""The rich console every verb prints with."""

from __future__ import annotations

from rich.console import Console

PIPED_WIDTH = 160


def make_console(stderr: bool = False) -> Console:
    """A console that keeps lines whole when output goes to a file or a CI log.

    rich assumes 80 columns when it is not writing to a terminal, which wraps every chain the
    demo prints; a terminal keeps its own width.
    """
    console = Console(stderr=stderr)
    if not console.is_terminal:
        console = Console(stderr=stderr, width=PIPED_WIDTH)
    return console
