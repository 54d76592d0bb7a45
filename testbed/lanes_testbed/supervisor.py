"""A detached supervisor process that owns a state directory's long-lived local processes.

`dev cluster` and `dev up` each start one (`python -m MODULE serve STATE_DIR ...`) in a
session of its own, so it outlives the command that started it; its pid file is trusted only
while that pid still runs MODULE, since the kernel reuses pids. Both take the same lock on the
state directory, so they never race each other.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from lanes_testbed import processes

T = TypeVar("T")


class Supervised(Protocol):
    """What a supervisor runs: a control plane or a whole stack."""

    log_dir: Path

    def dead_components(self) -> list[str]: ...

    def restart_component(self, name: str) -> None: ...


# Back-off between restarts of one component, as kubelet's: doubled from 1 s up to 30 s, and
# back to 1 s once the component stayed up for a minute.
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
RESET_AFTER_S = 60.0


@dataclass
class _Restarts:
    count: int = 0
    backoff_s: float = 0.0
    due: float = 0.0
    last_start: float = 0.0


@dataclass(frozen=True)
class Supervisor:
    """The supervisor running `module`, known by its pid file, logging to `log_path`."""

    module: str
    pid_path: Path
    log_path: Path
    stop_timeout_s: float

    def pid(self) -> int | None:
        """The running supervisor's pid, or None; pids reused by other programs do not count."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if self.module in processes.command_line(pid) else None

    def stop(self) -> bool:
        """SIGTERM it, SIGKILL it if it lingers; return whether one was running."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            if not processes.wait_gone(pid, self.stop_timeout_s):
                os.kill(pid, signal.SIGKILL)
                processes.wait_gone(pid, 5.0)
        self.pid_path.unlink(missing_ok=True)
        return pid is not None

    def start(
        self,
        args: Sequence[str],
        env: Mapping[str, str],
        ready: Callable[[], T],
        *,
        what: str,
        timeout_s: float,
        cleanup: Callable[[], object] = lambda: None,
    ) -> T:
        """Start `python -m MODULE serve ARGS...` detached and wait until `ready()` is truthy.

        Raises:
            RuntimeError: it exited or timed out first (then it is stopped, `cleanup` runs,
                and the message ends with its last log lines).
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", self.module, "serve", *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=dict(env),
            )
        self.pid_path.write_text(f"{child.pid}\n")
        deadline = time.monotonic() + timeout_s
        while not (result := ready()):
            if child.poll() is not None or time.monotonic() > deadline:
                self.stop()
                cleanup()
                tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])
                raise RuntimeError(f"{what} did not start; {self.log_path}:\n{tail}")
            time.sleep(0.2)
        return result


@contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """The state directory's lock, which `dev cluster` and `dev up` both take."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def stop_on_signals() -> threading.Event:
    """An event SIGTERM, SIGINT and SIGHUP set, for a supervisor's main loop."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def run_until_stopped(
    stop: threading.Event, supervised: Supervised, clock: Callable[[], float] = time.monotonic,
    tick_s: float = 1.0,
) -> int:
    """Wait for `stop`, restarting every part that exits, as kubelet restarts a container.

    Each restart waits its component's back-off first, logged with the restart count, so a
    fault injected into the stack (a killed Prometheus, operator or API server) is recovered
    from while the rest keeps running. A restart that fails is tried again after the next
    back-off. Returns the supervisor's exit code: 0 once stopped.
    """
    restarts: dict[str, _Restarts] = {}
    while not stop.wait(tick_s):
        now = clock()
        for name in supervised.dead_components():
            state = restarts.setdefault(name, _Restarts())
            if state.due == 0.0:
                if now - state.last_start > RESET_AFTER_S:
                    state.backoff_s = 0.0
                state.backoff_s = min(MAX_BACKOFF_S, state.backoff_s * 2 or FIRST_BACKOFF_S)
                state.due = now + state.backoff_s
                print(f"{name} exited; restarting it in {state.backoff_s:.0f}s "
                      f"(restart {state.count + 1}); see {supervised.log_dir}", flush=True)
            if now < state.due:
                continue
            state.count += 1
            state.last_start, state.due = now, 0.0
            try:
                supervised.restart_component(name)
            except Exception as error:  # noqa: BLE001 (tried again after the next back-off)
                print(f"{name} did not start again: {error}", flush=True)
            else:
                print(f"{name} restarted (restart {state.count})", flush=True)
    return 0
