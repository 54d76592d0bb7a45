"""Run a local node in the foreground until a signal, for `python -m lanes_testbed.node` and the CLI."""

from __future__ import annotations

import signal
import sys
import threading
from typing import TextIO

from lanes_testbed.node.node import LocalNode
from lanes_testbed.node.simulated import SimulatedNode


def serve(node: LocalNode | SimulatedNode, out: TextIO = sys.stdout) -> int:
    """Run `node` until SIGTERM, SIGINT or SIGHUP, then stop its processes; call from the
    main thread, the only one Python delivers signals to."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    with node:
        print(f"local node {node.name} ready; container logs in {node.log_dir}", file=out, flush=True)
        stop.wait()
    print(f"local node {node.name} stopped", file=out, flush=True)
    return 0
