"""The developer's long-lived local stack behind `kubectl lane dev up` and `down`.

`up` starts a detached supervisor (`python -m lanes_testbed.stackd serve STATE_DIR ...`) that owns
a `Stack` and stops it on SIGTERM, or when one of its parts dies; `down` signals it and then
stops anything a crashed supervisor left. The state directory is the one `dev cluster` uses,
so etcd data, certificates and the kubeconfig carry over; only one of the two runs at a time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

from lanes_testbed import cluster, processes
from lanes_testbed.binaries import ensure_binaries
from lanes_testbed.prometheus import ensure_prometheus
from lanes_testbed.stack import DEFAULT_GATEWAY_PORT, Stack, child_env
from lanes_testbed.supervisor import Supervisor, locked, run_until_stopped, stop_on_signals

SUPERVISOR_MODULE = "lanes_testbed.stackd"
UP_TIMEOUT_S = 240.0
DOWN_TIMEOUT_S = 90.0


def supervisor_pid(state_dir: Path) -> int | None:
    """The running stack supervisor's pid, or None; pids reused by other programs do not count."""
    return _supervisor(state_dir).pid()


def running(state_dir: Path) -> dict[str, Any] | None:
    """What a running, ready stack told us: kubeconfig, gateway URL, flavour, logs; else None."""
    if supervisor_pid(state_dir) is None:
        return None
    try:
        return json.loads((state_dir / "stack.json").read_text())
    except (FileNotFoundError, ValueError):
        return None


def exports(info: dict[str, Any]) -> str:
    """Shell lines pointing kubectl, our CLI and curl at the stack (and at its Prometheus)."""
    lines = [f"export KUBECONFIG={info['kubeconfig']}", f"export LANES_GATEWAY={info['gateway_url']}"]
    if info.get("prometheus_url"):
        lines.append(f"export LANES_PROMETHEUS={info['prometheus_url']}")
    return "\n".join(lines)


def up(
    state_dir: Path,
    flavour: str = "istio",
    gateway_port: int = DEFAULT_GATEWAY_PORT,
    progress: TextIO | None = sys.stderr,
    serve_peers: bool = False,
) -> dict[str, Any]:
    """Start the stack in the background unless it runs; return what `running` returns.

    Raises:
        RuntimeError: a bare control plane runs in the same directory, the running stack has
            another flavour, or the stack did not start (with the supervisor's last lines).
    """
    state_dir = state_dir.resolve()
    with locked(state_dir):
        if cluster.supervisor_pid(state_dir) is not None:
            raise RuntimeError(
                f"a bare control plane runs in {state_dir} (`kubectl lane dev cluster up`); "
                "stop it with `kubectl lane dev cluster down` first"
            )
        info = running(state_dir)
        if info is not None:
            if info["flavour"] != flavour:
                raise RuntimeError(
                    f"the stack in {state_dir} runs flavour {info['flavour']}; "
                    "`kubectl lane dev down` first to change it"
                )
            return info
        ensure_binaries(progress)
        ensure_prometheus(progress)
        supervisor = _supervisor(state_dir)
        supervisor.stop()
        (state_dir / "stack.json").unlink(missing_ok=True)
        info = supervisor.start(
            [str(state_dir), "--flavour", flavour, "--gateway-port", str(gateway_port),
             *(["--serve-peers"] if serve_peers else [])],
            child_env(), lambda: running(state_dir),
            what="the local stack", timeout_s=UP_TIMEOUT_S, cleanup=lambda: _sweep(state_dir),
        )
    return info


def down(state_dir: Path) -> bool:
    """Stop the stack, pods included; return whether anything was running."""
    state_dir = state_dir.resolve()
    with locked(state_dir):
        stopped = _supervisor(state_dir).stop()
        stopped = _sweep(state_dir) or stopped
        (state_dir / "stack.json").unlink(missing_ok=True)
    return stopped


def serve(state_dir: Path, flavour: str, gateway_port: int, serve_peers: bool = False) -> int:
    """Run the stack until SIGTERM/SIGINT/SIGHUP, or until one of its parts dies."""
    stop = stop_on_signals()
    stack = Stack(state_dir, flavour=flavour, gateway_port=gateway_port,
                  progress=lambda text: print(text, flush=True), serve_peers=serve_peers)
    stack.start()
    try:
        info = {
            "kubeconfig": str(stack.kubeconfig),
            "gateway_url": stack.gateway_url,
            "prometheus_url": stack.prometheus_url,
            "flavour": flavour,
            "logs": str(stack.log_dir),
            "pods": str(state_dir / "pods"),
            "gateway_admin": stack.mesh.gateway_admin_url.removeprefix("http://"),
            "sidecars": str(stack.sidecar_targets),
        }
        (state_dir / "stack.json").write_text(json.dumps(info, indent=1) + "\n")
        print(f"local stack ready: gateway {stack.gateway_url}, Prometheus {stack.prometheus_url}",
              flush=True)
        return run_until_stopped(stop, stack)
    finally:
        (state_dir / "stack.json").unlink(missing_ok=True)
        stack.stop()
        print("local stack stopped", flush=True)


def _supervisor(state_dir: Path) -> Supervisor:
    return Supervisor(
        SUPERVISOR_MODULE, state_dir / "stack.pid", state_dir / "logs" / "stack.log", DOWN_TIMEOUT_S
    )


def _sweep(state_dir: Path) -> bool:
    """Stop children a supervisor that died without cleaning up left behind."""
    stopped = False
    pid_paths = [
        *sorted((state_dir / "run").glob("*.pid")),
        *sorted((state_dir / "mesh").glob("**/*.pid")),
        state_dir / "prometheus" / "prometheus.pid",
    ]
    for pid_path in pid_paths:
        stopped = processes.stop_stale(pid_path, marker=str(state_dir)) or stopped
    return stopped


def main(argv: list[str]) -> int:
    """`python -m lanes_testbed.stackd serve STATE_DIR [--flavour F] [--gateway-port N]
    [--serve-peers]`."""
    import argparse

    parser = argparse.ArgumentParser(prog=f"python -m {SUPERVISOR_MODULE}")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("state_dir", type=Path)
    parser.add_argument("--flavour", default="istio")
    parser.add_argument("--gateway-port", type=int, default=DEFAULT_GATEWAY_PORT)
    parser.add_argument("--serve-peers", action="store_true")
    args = parser.parse_args(argv)
    return serve(args.state_dir.resolve(), args.flavour, args.gateway_port, args.serve_peers)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
