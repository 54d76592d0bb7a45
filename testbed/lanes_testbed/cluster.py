"""The developer's long-lived local control plane behind `kubectl lane dev cluster`.

`up` starts a detached supervisor (`python -m lanes_testbed.cluster serve STATE_DIR`) that
owns a ControlPlane and stops it on SIGTERM; `down` signals that supervisor. State (etcd
data, certificates, kubeconfig, logs) stays in the state directory across restarts.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import TextIO

from lanes_testbed import import_path
from lanes_testbed import processes
from lanes_testbed.binaries import ensure_binaries
from lanes_testbed.controlplane import ControlPlane
from lanes_testbed.supervisor import Supervisor, locked, run_until_stopped, stop_on_signals

SUPERVISOR_MODULE = "lanes_testbed.cluster"
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
    return _supervisor(state_dir).pid()


def is_running(state_dir: Path) -> bool:
    return supervisor_pid(state_dir) is not None and (state_dir / "ready").exists()


def up(state_dir: Path, progress: TextIO | None = sys.stderr) -> Path:
    """Start the control plane in the background unless it runs; return its kubeconfig.

    Binaries are built here, in the foreground, so a first run shows build progress.
    """
    state_dir = state_dir.resolve()
    with locked(state_dir):
        _refuse_if_stack_runs(state_dir)
        if is_running(state_dir):
            return kubeconfig_path(state_dir)
        ensure_binaries(progress)
        supervisor = _supervisor(state_dir)
        supervisor.stop()
        (state_dir / "ready").unlink(missing_ok=True)
        supervisor.start(
            [str(state_dir)], _supervisor_env(), (state_dir / "ready").exists,
            what="the local control plane", timeout_s=UP_TIMEOUT_S,
        )
    return kubeconfig_path(state_dir)


def down(state_dir: Path) -> bool:
    """Stop the control plane; return whether anything was running."""
    state_dir = state_dir.resolve()
    with locked(state_dir):
        _refuse_if_stack_runs(state_dir)
        stopped = _supervisor(state_dir).stop()
        for pid_path in sorted((state_dir / "run").glob("*.pid")):
            stopped = processes.stop_stale(pid_path, marker=str(state_dir)) or stopped
        (state_dir / "ready").unlink(missing_ok=True)
    return stopped


def serve(state_dir: Path) -> int:
    """Run the control plane until SIGTERM/SIGINT/SIGHUP, or until a component dies."""
    stop = stop_on_signals()
    plane = ControlPlane(state_dir)
    plane.start()
    try:
        (state_dir / "ready").write_text(f"{plane.server}\n")
        print(f"local control plane ready at {plane.server}", flush=True)
        return run_until_stopped(stop, plane)
    finally:
        (state_dir / "ready").unlink(missing_ok=True)
        plane.stop()
        print("local control plane stopped", flush=True)


def _refuse_if_stack_runs(state_dir: Path) -> None:
    """The full stack (`dev up`) owns this directory's control plane; leave it to `dev down`."""
    from lanes_testbed import stackd

    if stackd.supervisor_pid(state_dir) is not None:
        raise RuntimeError(
            f"the full local stack runs in {state_dir} (`kubectl lane dev up`); "
            "stop it with `kubectl lane dev down`"
        )


def _supervisor(state_dir: Path) -> Supervisor:
    return Supervisor(
        SUPERVISOR_MODULE, state_dir / "supervisor.pid", state_dir / "logs" / "supervisor.log",
        DOWN_TIMEOUT_S,
    )


def _supervisor_env() -> dict[str, str]:
    """Let the supervisor import this very copy of lanes, installed or not."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (import_path(), env.get("PYTHONPATH")) if p)
    return env


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "serve":
        sys.exit(f"usage: python -m {SUPERVISOR_MODULE} serve STATE_DIR")
    sys.exit(serve(Path(sys.argv[2])))
