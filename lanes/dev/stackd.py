"""The developer's long-lived local stack behind `kubectl lane dev up` and `down`.

`up` starts a detached supervisor (`python -m lanes.dev.stackd serve STATE_DIR ...`) that owns
a `Stack` and stops it on SIGTERM, or when one of its parts dies; `down` signals it and then
stops anything a crashed supervisor left. The state directory is the one `dev cluster` uses,
so etcd data, certificates and the kubeconfig carry over; only one of the two runs at a time.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from lanes.dev import cluster, processes
from lanes.dev.binaries import ensure_binaries
from lanes.dev.stack import DEFAULT_GATEWAY_PORT, Stack, child_env

SUPERVISOR_MODULE = "lanes.dev.stackd"
UP_TIMEOUT_S = 240.0
DOWN_TIMEOUT_S = 90.0


def supervisor_pid(state_dir: Path) -> int | None:
    """The running stack supervisor's pid, or None; pids reused by other programs do not count."""
    try:
        pid = int((state_dir / "stack.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if SUPERVISOR_MODULE in processes.command_line(pid) else None


def running(state_dir: Path) -> dict[str, Any] | None:
    """What a running, ready stack told us: kubeconfig, gateway URL, flavour, logs; else None."""
    if supervisor_pid(state_dir) is None:
        return None
    try:
        return json.loads((state_dir / "stack.json").read_text())
    except (FileNotFoundError, ValueError):
        return None


def exports(info: dict[str, Any]) -> str:
    """Shell lines pointing kubectl, our CLI and curl at the stack."""
    return f"export KUBECONFIG={info['kubeconfig']}\nexport LANES_GATEWAY={info['gateway_url']}"


def up(
    state_dir: Path,
    flavour: str = "istio",
    gateway_port: int = DEFAULT_GATEWAY_PORT,
    progress: TextIO | None = sys.stderr,
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
        _stop_supervisor(state_dir)
        (state_dir / "stack.json").unlink(missing_ok=True)
        log_path = state_dir / "logs" / "stack.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", SUPERVISOR_MODULE, "serve", str(state_dir),
                "--flavour", flavour, "--gateway-port", str(gateway_port)]
        with log_path.open("ab") as log:
            supervisor = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env=child_env(),
            )
        (state_dir / "stack.pid").write_text(f"{supervisor.pid}\n")
        deadline = time.monotonic() + UP_TIMEOUT_S
        while (info := running(state_dir)) is None:
            if supervisor.poll() is not None or time.monotonic() > deadline:
                _stop_supervisor(state_dir)
                _sweep(state_dir)
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
                raise RuntimeError(f"the local stack did not start; {log_path}:\n{tail}")
            time.sleep(0.2)
    return info


def down(state_dir: Path) -> bool:
    """Stop the stack, pods included; return whether anything was running."""
    state_dir = state_dir.resolve()
    with locked(state_dir):
        stopped = _stop_supervisor(state_dir)
        stopped = _sweep(state_dir) or stopped
        (state_dir / "stack.json").unlink(missing_ok=True)
    return stopped


def serve(state_dir: Path, flavour: str, gateway_port: int) -> int:
    """Run the stack until SIGTERM/SIGINT/SIGHUP, or until one of its parts dies."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    stack = Stack(state_dir, flavour=flavour, gateway_port=gateway_port,
                  progress=lambda text: print(text, flush=True))
    stack.start()
    try:
        info = {
            "kubeconfig": str(stack.kubeconfig),
            "gateway_url": stack.gateway_url,
            "flavour": flavour,
            "logs": str(stack.log_dir),
            "pods": str(state_dir / "pods"),
        }
        (state_dir / "stack.json").write_text(json.dumps(info, indent=1) + "\n")
        print(f"local stack ready: gateway {stack.gateway_url}", flush=True)
        while not stop.wait(1.0):
            dead = stack.dead_components()
            if dead:
                print(f"{', '.join(dead)} exited; stopping; see {stack.log_dir}", flush=True)
                return 1
        return 0
    finally:
        (state_dir / "stack.json").unlink(missing_ok=True)
        stack.stop()
        print("local stack stopped", flush=True)


@contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """The state directory's lock, the same file `dev cluster` takes, so the two never race."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _stop_supervisor(state_dir: Path) -> bool:
    pid = supervisor_pid(state_dir)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        if not processes.wait_gone(pid, DOWN_TIMEOUT_S):
            os.kill(pid, signal.SIGKILL)
            processes.wait_gone(pid, 5.0)
    (state_dir / "stack.pid").unlink(missing_ok=True)
    return pid is not None


def _sweep(state_dir: Path) -> bool:
    """Stop children a supervisor that died without cleaning up left behind."""
    stopped = False
    for pid_path in [*sorted((state_dir / "run").glob("*.pid")), state_dir / "mesh" / "envoy.pid"]:
        stopped = processes.stop_stale(pid_path, marker=str(state_dir)) or stopped
    return stopped


def main(argv: list[str]) -> int:
    """`python -m lanes.dev.stackd serve STATE_DIR [--flavour F] [--gateway-port N]`."""
    import argparse

    parser = argparse.ArgumentParser(prog=f"python -m {SUPERVISOR_MODULE}")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("state_dir", type=Path)
    parser.add_argument("--flavour", default="istio")
    parser.add_argument("--gateway-port", type=int, default=DEFAULT_GATEWAY_PORT)
    args = parser.parse_args(argv)
    return serve(args.state_dir.resolve(), args.flavour, args.gateway_port)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
