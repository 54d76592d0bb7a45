"""Render timings for synthetic lane groups: `.venv/bin/python bench/render.py [--runs N]`.

Groups of 100, 1,000 and 10,000 services (spread over 10 namespaces) with 8 lanes; each
non-fallback lane has ready pods of a different third of the services (autoUpdate). For each
size and flavour it prints, in milliseconds (best / median of the runs):
- resolve: `lanes.api.topology.resolve()` alone (validation + membership);
- full render: `render_group()`, i.e. resolve + every object;
- 1 service: after one observation change (a lane gains pods of one service), the new
  topology of that service (`Topology.reobserve`) plus `render_service()` of it.
Targets: 1,000 x 8 full render <= 100 ms; 10,000 x 8 <= 1 s; one service <= 1 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lanes.api.observations import Observations  # noqa: E402
from lanes.api.swimlane import SwimLane  # noqa: E402
from lanes.api.swimlanegroup import SwimLaneGroup  # noqa: E402
from lanes.api.topology import resolve  # noqa: E402
from lanes.render import render_group, render_service  # noqa: E402

LANES = ["base", "canary", "blue", "green", "red", "teal", "gold", "gray"]
SIZES = [100, 1_000, 10_000]
FLAVOURS = ["istio", "asm"]


def synthetic(services: int) -> tuple[SwimLaneGroup, list[SwimLane], Observations]:
    """A group of `services` services and 8 lanes, with observations."""
    keys = [(f"ns{i % 10}", f"svc-{i:05d}") for i in range(services)]
    group = SwimLaneGroup.model_validate(
        {
            "metadata": {"name": "bench"},
            "spec": {
                "ingress": {"gateway": {"name": "gw", "namespace": "istio-system"}},
                "isPermissive": True,
                "autoUpdate": True,
                "permissiveModeConfiguration": {"fallbackTarget": "base", "routeHeader": "x-lane"},
                "services": [{"name": n, "namespace": ns} for ns, n in keys],
            },
        }
    )
    lanes = [
        SwimLane.model_validate(
            {
                "metadata": {"name": lane, "labels": {"swimlane-group": "bench"}},
                "spec": {
                    "labelSelector": {"lane": lane},
                    "ingressRules": [
                        {
                            "name": lane,
                            "match": {"headers": {"x-lane": {"exact": lane}}},
                            "route": {"destination": {"host": f"{keys[0][1]}.{keys[0][0]}"}},
                        }
                    ],
                },
            }
        )
        for lane in LANES
    ]
    ready = {
        f"{ns}/{n}": ["base"] + [lane for j, lane in enumerate(LANES[1:]) if (i + j) % 3 == 0]
        for i, (ns, n) in enumerate(keys)
    }
    return group, lanes, Observations(ready=ready)


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """Best and median wall time of `runs` calls, in milliseconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement (default 5)")
    args = parser.parse_args()
    rows = []
    for size in SIZES:
        group, lanes, observed = synthetic(size)
        runs = args.runs if size < 10_000 else max(3, args.runs // 2)
        resolve_ms = timed(lambda: resolve(group, lanes, observed), runs)
        topology = resolve(group, lanes, observed)
        key = next(iter(topology.members))
        gained = [*observed.lanes_of(key), "gray"]
        for flavour in FLAVOURS:
            full = timed(lambda: render_group(group, lanes, observed, flavour), runs)
            objects = len(render_group(group, lanes, observed, flavour))
            one = timed(
                lambda: render_service(topology.reobserve(key, gained), key, flavour), runs * 200
            )
            rows.append((size, flavour, objects, resolve_ms, full, one))
    print(f"{'services x lanes':>16} {'flavour':>7} {'objects':>8} {'resolve ms':>14} "
          f"{'full render ms':>16} {'1 service ms':>14}")
    for size, flavour, objects, res, full, one in rows:
        print(
            f"{f'{size:,} x {len(LANES)}':>16} {flavour:>7} {objects:>8,} "
            f"{res[0]:>6.1f} / {res[1]:>5.1f} {full[0]:>7.1f} / {full[1]:>6.1f} "
            f"{one[0]:>6.3f} / {one[1]:>5.3f}"
        )
    print("(best / median)")


if __name__ == "__main__":
    main()
