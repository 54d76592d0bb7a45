"""Print how long the local control plane takes to start, install CRDs and stop.

Usage: python bench/controlplane.py [ROUNDS]. Binaries are built first if missing; that
time is printed separately, since it is paid once per version.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from lanes_testbed.binaries import ensure_binaries
from lanes_testbed.controlplane import ControlPlane
from lanes_testbed.manifests import manifest_files

ROOT = Path(__file__).resolve().parent.parent
ISTIO_CRDS = ROOT / "testbed" / "lanes_testbed" / "istio-networking-crds.yaml"


def timed(action) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def main(rounds: int) -> None:
    started = time.monotonic()
    binaries = ensure_binaries()
    print(f"binaries ready ({binaries.source}): {time.monotonic() - started:.1f}s")
    manifests = [*manifest_files(ROOT / "crds"), ISTIO_CRDS]
    for round_ in range(1, rounds + 1):
        with tempfile.TemporaryDirectory(prefix="lanes-bench-") as state:
            plane = ControlPlane(state, binaries, progress=None)
            start = timed(plane.start)
            try:
                install = timed(lambda: plane.install_manifests(manifests))
            finally:
                stop = timed(plane.stop)
        print(
            f"round {round_}: start {start:.1f}s, install {len(manifests)} manifest files "
            f"{install:.1f}s, stop {stop:.1f}s"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
