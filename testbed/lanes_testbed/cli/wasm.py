"""`kubectl lane wasm`: build the trace-affinity Wasm module and say where it is and its digest.

Groups in ASM's trace-ID mode need the module where their proxies can fetch it. The chart's
operator serves the one its image carries; to host it elsewhere, the printed file is what to
host, and its sha256 what to give the chart (`traceAffinity.url`, `traceAffinity.sha256`).
"""

from __future__ import annotations

import sys

import typer


def wasm() -> None:
    """Build (or find in the cache) the trace-affinity module; print its path and sha256."""
    from lanes_testbed.wasm import WasmBuildError, ensure_trace_affinity, module_sha256

    try:
        module = ensure_trace_affinity(progress=sys.stderr)
    except WasmBuildError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"path: {module}")
    typer.echo(f"sha256: {module_sha256(module)}")
    typer.echo(f"size: {module.stat().st_size} bytes")
