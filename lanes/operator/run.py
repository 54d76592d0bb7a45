"""Start the operator: one kopf registry, every controller wired in one place, cluster-wide,
no kopf peering.

`serve` is a coroutine so tests and benchmarks can run an operator in a thread with a stop
flag; `run` is the blocking entry point behind `kubectl lane operator`. With an `Election`
in the options, the reconcile workers start only once this replica holds the Lease (see
`leader`); watches, indices and the admission webhook run on every replica.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Any

import kopf

from .runtime import Options, Runtime
from .wiring import Operator, registry, wire

log = logging.getLogger("lanes.operator")

# The exit code of a replica that lost its Lease (its supervisor restarts it as a standby).
LOST_LEASE_EXIT = 3


def exit_lost_lease() -> None:
    """What controller-runtime does when its lease is lost: exit at once, writing nothing more."""
    log.error("the leader Lease was lost; exiting so a fresh process starts as a standby")
    logging.shutdown()
    os._exit(LOST_LEASE_EXIT)


async def serve(
    options: Options,
    *,
    runtime: Runtime | None = None,
    operator: Operator | None = None,
    memo: kopf.Memo | None = None,
    stop_flag: Any = None,
    ready_flag: Any = None,
    on_lost: Callable[[], None] | None = None,
) -> None:
    """Run until `stop_flag` is set (or a signal arrives, in the main thread).

    `operator` is the wired controllers (made from `options` and `runtime` when not given);
    `memo` is kopf's memo, for a caller that fills it (`webhook_options`). `on_lost` runs
    when a leader loses its Lease (default: exit the process).
    """
    operator = operator or wire(options, runtime)
    await kopf.operator(
        registry=registry(operator, on_lost or exit_lost_lease),
        clusterwide=True,
        standalone=True,
        memo=memo if memo is not None else kopf.Memo(),
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )


def run(options: Options, log_level: str = "info") -> None:
    """Run the operator in the foreground until interrupted."""
    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    asyncio.run(serve(options))
