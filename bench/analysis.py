"""How fast metric analysis decides a release, against Flagger's own formulas.

Usage: python bench/analysis.py [--interval S] [--threshold N] [--trials N]

Starts the dev stack (control plane, operator, local node, Envoy mesh, a real Prometheus that
scrapes Envoy every second), applies the mock-chain sample and gives rollouts-mockb an analysis
on the canary's success rate (Envoy metrics, min 99 %) with two steps and no pauses, while
canary-tagged requests flow through the gateway. Each trial times:

- a healthy release: `kubectl set image` -> the rollout Succeeded (Promoted). Flagger's formula
  for the same settings is interval x steps (each step waits one interval, then promotion);
- a failing release (the canary answers 500 to every request): the canary's first pod ready,
  i.e. the canary starting to fail -> the rollback in force (the canary subset gone from mockb's
  DestinationRule). Flagger's formula is interval x threshold; the target is at most
  threshold x interval + 2 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from lanes_testbed.stack import Stack

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "mock-chain"
IMAGE = "registry.cn-beijing.aliyuncs.com/aliacs-app-catalog/go-http-sample"


def until(check: Callable[[], object], what: str, timeout: float = 180.0) -> float:
    """Poll `check` every 0.1 s; the monotonic time it first held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(0.1)
    raise TimeoutError(what)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--threshold", type=int, default=3)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    interval = f"{args.interval:g}s"
    steps = [{"replicas": 1, "traffic": "20%"}, {"replicas": 1}]
    with tempfile.TemporaryDirectory(prefix="lanes-bench-analysis-") as tmp, \
            Stack(Path(tmp) / "stack", gateway_port=0) as stack:

        def kubectl(*argv: str) -> str:
            result = subprocess.run(
                [str(stack.plane.binaries.kubectl), f"--kubeconfig={stack.kubeconfig}", *argv],
                capture_output=True, text=True, timeout=120, check=True)
            return result.stdout

        def status() -> dict:
            return json.loads(kubectl("get", "wro/rollouts-mockb", "-o", "json")).get("status") or {}

        def succeeded() -> tuple[str, str] | None:
            for c in status().get("conditions") or []:
                if c["type"] == "Succeeded":
                    return c["status"], c["reason"]
            return None

        def canary_subset() -> bool:
            for dr in json.loads(kubectl("get", "destinationrules", "-o", "json"))["items"]:
                if dr["spec"]["host"].startswith("mockb."):
                    return any(s["name"] == "canary" for s in dr["spec"]["subsets"])
            return False

        for name in ("app.yaml", "lanes.yaml", "rollouts.yaml"):
            kubectl("apply", "-f", str(SAMPLE / name))
        analysis = {"interval": interval, "threshold": args.threshold, "metrics": [
            {"name": "request-success-rate", "interval": f"{2 * args.interval:g}s",
             "thresholdRange": {"min": 99}}]}
        kubectl("patch", "wro/rollouts-mockb", "--type=merge", "-p", json.dumps(
            {"spec": {"strategy": {"canary": {"steps": steps, "analysis": analysis}}}}))
        until(lambda: status().get("phase") == "Healthy", "rollouts-mockb healthy")

        stop = threading.Event()

        def load() -> None:
            import http.client
            host, port = stack.gateway_url.removeprefix("http://").split(":")
            while not stop.is_set():
                try:
                    conn = http.client.HTTPConnection(host, int(port), timeout=5)
                    conn.request("GET", "/mock", headers={"x-asm-prefer-tag": "canary"})
                    conn.getresponse().read()
                    conn.close()
                except OSError:
                    pass
                time.sleep(0.01)

        threading.Thread(target=load, daemon=True).start()
        promote, rollback = [], []
        try:
            for trial in range(args.trials):
                kubectl("set", "env", "deployment/mockb-v1", "fail_percent-")
                start = time.monotonic()
                kubectl("set", "image", "deployment/mockb-v1", f"default={IMAGE}:{2 + trial}.0")
                until(lambda: status().get("phase") not in (None, "Healthy"), "release started", 60)
                done = until(lambda: status().get("phase") == "Healthy"
                             and succeeded() == ("True", "Promoted"), "promoted")
                promote.append(done - start)
                until(lambda: not canary_subset(), "healthy canary gone")

                kubectl("set", "env", "deployment/mockb-v1", "fail_percent=100")
                failing = until(canary_subset, "failing canary ready")
                back = until(lambda: not canary_subset()
                             and succeeded() == ("False", "AnalysisFailed"), "rolled back")
                rollback.append(back - failing)
                until(lambda: status().get("phase") == "Healthy", "healthy after rollback")
        finally:
            stop.set()

    print(f"interval {interval}, threshold {args.threshold}, {len(steps)} steps, {args.trials} trials")
    print(f"{'':34}{'median':>10}{'max':>10}{'Flagger formula':>18}")
    print(f"{'healthy release -> promoted':34}{statistics.median(promote):>9.1f}s{max(promote):>9.1f}s"
          f"{args.interval * len(steps):>17.1f}s")
    print(f"{'canary failing -> rollback in force':34}{statistics.median(rollback):>9.1f}s"
          f"{max(rollback):>9.1f}s{args.interval * args.threshold:>17.1f}s")
    target = args.threshold * args.interval + 2
    print(f"target for rollback: <= {target:.1f}s -> {'met' if max(rollback) <= target else 'MISSED'}")


if __name__ == "__main__":
    main()
