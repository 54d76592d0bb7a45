"""The developer's long-lived local control plane behind `kubectl lane dev cluster`.

`up` starts a detached supervisor (`python -m lanes.dev.cluster serve STATE_DIR`) that
owns a ControlPlane and stops it on SIGTERM; `down` signals that supervisor. State (etcd
data, certificates, kubeconfig, logs) stays in the state directory across restarts.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import lanes
from lanes.dev import processes
from lanes.dev.binaries import ensure_binaries
from lanes.dev.controlplane import ControlPlane

SUPERVISOR_MODULE = "lanes.dev.cluster"
UP_TIMEOUT_S = 180.0
DOWN_TIMEOUT_S = 60.0


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "lanes" / "dev"


def kubeconfig_path(state_dir: Path) -> Path:
    return state_dir / "kubeconfig"


def export_line(state_dir: Path) -> str:
    """The shell line that points kubectl, kopf and our CLI at the local control plane."""
    return f"export KUBECONFIG={shlex.quote(str(kubeconfig_path(state_dir)))}"


def supervisor_pid(state_dir: Path) -> int | None:
    """The running supervisor's pid, or None; pids reused by other programs do not count."""
    try:
        pid = int((state_dir / "supervisor.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if SUPERVISOR_MODULE in processes.command_line(pid) else None


def is_running(state_dir: Path) -> bool:
    return supervisor_pid(state_dir) is not None and (state_dir / "ready").exists()


def up(state_dir: Path, progress: TextIO | None = sys.stderr) -> Path:
    """Start the control plane in the background unless it runs; return its kubeconfig.

    Binaries are built here, in the foreground, so a first run shows build progress.
    """
    state_dir = state_dir.resolve()
    with _locked(state_dir):
        _refuse_if_stack_runs(state_dir)
        if is_running(state_dir):
            return kubeconfig_path(state_dir)
        ensure_binaries(progress)
        _stop_supervisor(state_dir)
        (state_dir / "ready").unlink(missing_ok=True)
        log_path = state_dir / "logs" / "supervisor.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            supervisor = subprocess.Popen(
                [sys.executable, "-m", SUPERVISOR_MODULE, "serve", str(state_dir)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=_supervisor_env(),
            )
        (state_dir / "supervisor.pid").write_text(f"{supervisor.pid}\n")
        deadline = time.monotonic() + UP_TIMEOUT_S
        while not (state_dir / "ready").exists():
            if supervisor.poll() is not None or time.monotonic() > deadline:
                _stop_supervisor(state_dir)
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
                raise RuntimeError(f"the local control plane did not start; {log_path}:\n{tail}")
            time.sleep(0.2)
    return kubeconfig_path(state_dir)


def down(state_dir: Path) -> bool:
    """Stop the control plane; return whether anything was running."""
    state_dir = state_dir.resolve()
    with _locked(state_dir):
        _refuse_if_stack_runs(state_dir)
        stopped = _stop_supervisor(state_dir)
        for pid_path in sorted((state_dir / "run").glob("*.pid")):
            stopped = processes.stop_stale(pid_path, marker=str(state_dir)) or stopped
        (state_dir / "ready").unlink(missing_ok=True)
    return stopped


def serve(state_dir: Path) -> int:
    """Run the control plane until SIGTERM/SIGINT/SIGHUP, or until a component dies."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    plane = ControlPlane(state_dir)
    plane.start()
    try:
        (state_dir / "ready").write_text(f"{plane.server}\n")
        print(f"local control plane ready at {plane.server}", flush=True)
        while not stop.wait(1.0):
            dead = plane.dead_components()
            if dead:
                print(f"{', '.join(dead)} exited; stopping; see {plane.log_dir}", flush=True)
                return 1
        return 0
    finally:
        (state_dir / "ready").unlink(missing_ok=True)
        plane.stop()
        print("local control plane stopped", flush=True)


def _refuse_if_stack_runs(state_dir: Path) -> None:
    """The full stack (`dev up`) owns this directory's control plane; leave it to `dev down`."""
    from lanes.dev import stackd

    if stackd.supervisor_pid(state_dir) is not None:
        raise RuntimeError(
            f"the full local stack runs in {state_dir} (`kubectl lane dev up`); "
            "stop it with `kubectl lane dev down`"
        )


def _stop_supervisor(state_dir: Path) -> bool:
    pid = supervisor_pid(state_dir)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        if not processes.wait_gone(pid, DOWN_TIMEOUT_S):
            os.kill(pid, signal.SIGKILL)
            processes.wait_gone(pid, 5.0)
    (state_dir / "supervisor.pid").unlink(missing_ok=True)
    return pid is not None


def _supervisor_env() -> dict[str, str]:
    """Let the supervisor import this very copy of lanes, installed or not."""
    env = dict(os.environ)
    root = str(Path(lanes.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


@contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "serve":
        sys.exit(f"usage: python -m {SUPERVISOR_MODULE} serve STATE_DIR")
    sys.exit(serve(Path(sys.argv[2])))
