"""Memory of the local stack serving the mock chain: `.venv/bin/python bench/stack.py`.

Starts the dev stack (control plane, operator, local node, mesh, Prometheus) in a temporary
directory, applies the mock-chain sample (its Deployments, Services, Gateway, and the lane
group), waits until a canary-tagged request through the gateway is served by every hop, and
then reads the resident memory of every process the stack runs (this process included),
grouped by program. Prints how long the stack took to start and to serve the chain.
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from lanes_testbed.stack import Stack

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "mock-chain"
PAGE = os.sysconf("SC_PAGE_SIZE")


def descendants(root: int) -> list[int]:
    """`root` and every process below it, from /proc."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children[int(fields[1])].append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def program(pid: int) -> str:
    """A short name for what `pid` runs: the executable, or the Python module it runs."""
    try:
        argv = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [a.decode(errors="replace") for a in argv if a]
    if not words:
        return "?"
    name = Path(words[0]).name
    if name.startswith("python") and "-m" in words:
        return f"python -m {words[words.index('-m') + 1]}"
    if name.startswith("python"):
        return "python (this bench)" if pid == os.getpid() else "python"
    return name


def rss_bytes(pid: int) -> int:
    try:
        return int((Path("/proc") / str(pid) / "statm").read_text().split()[1]) * PAGE
    except OSError:
        return 0


def serves_chain(gateway: str) -> bool:
    host, port = gateway.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", "/mock", headers={"x-asm-prefer-tag": "base", "my-request-id": "bench"})
        response = conn.getresponse()
        return response.status == 200 and response.read().decode().count("->") == 3
    except OSError:
        return False
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lanes-bench-stack-") as tmp:
        started = time.monotonic()
        with Stack(Path(tmp) / "stack", gateway_port=0) as stack:
            up = time.monotonic() - started
            env = {**os.environ, "KUBECONFIG": str(stack.kubeconfig)}
            for name in ("app.yaml", "lanes.yaml"):
                subprocess.run([str(stack.plane.binaries.kubectl), "apply", "-f", str(SAMPLE / name)],
                               env=env, check=True, capture_output=True)
            deadline = time.monotonic() + args.timeout
            while not serves_chain(stack.gateway_url):
                if time.monotonic() > deadline:
                    raise SystemExit(f"the chain was not served within {args.timeout:.0f}s")
                time.sleep(0.5)
            serving = time.monotonic() - started
            time.sleep(5)  # past start-up spikes
            by_program: dict[str, list[int]] = defaultdict(list)
            for pid in descendants(os.getpid()):
                by_program[program(pid)].append(rss_bytes(pid))
    total = sum(sum(v) for v in by_program.values())
    print(f"\nstack up in {up:.1f}s; mock chain served through the gateway {serving:.1f}s after start\n")
    print(f"{'program':<40} {'processes':>9} {'RSS MiB':>9}")
    for name, sizes in sorted(by_program.items(), key=lambda item: -sum(item[1])):
        print(f"{name:<40} {len(sizes):>9} {sum(sizes) / 2**20:>9.1f}")
    print(f"{'total':<40} {sum(len(v) for v in by_program.values()):>9} {total / 2**20:>9.1f}")


if __name__ == "__main__":
    main()
