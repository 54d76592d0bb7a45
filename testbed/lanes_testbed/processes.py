"""Start and stop long-running child processes so that none outlives its owner.

Each child runs in its own session (process group), so stopping it reaches anything it
forked and a Ctrl-C in the terminal reaches only us, who then stop children in order.
Children started from the main thread also get SIGKILL from the kernel if we die without
cleaning up (PR_SET_PDEATHSIG), which covers SIGKILL of the owner. SIGKILL rather than
SIGTERM: all children get it at once, and kube-apiserver's graceful shutdown hangs on an
etcd that is going away at the same moment.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1


@dataclass
class Child:
    """A running child process and where its output and pid are kept."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    pid_path: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


class Served:
    """A server run as one child process: `start()` it, or use it as a context manager.

    Subclasses set `self._child` in `start()`; stopping leaves no process behind.
    """

    _child: Child | None = None

    def start(self) -> None:
        raise NotImplementedError

    def alive(self) -> bool:
        """Whether the process runs, for supervisors to notice a crash."""
        return self._child is not None and self._child.alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process; no process is left behind."""
        child = self.take_child()
        if child is not None:
            stop(child, timeout)

    def take_child(self) -> Child | None:
        """The running process, which the caller now stops (several at once, say)."""
        child, self._child = self._child, None
        return child

    def __enter__(self):  # noqa: ANN204 (returns the subclass)
        if self._child is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port() -> int:
    """Ask the kernel for an unused loopback port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    pid_path: Path,
    env: Mapping[str, str] | None = None,
    die_with_parent: bool | None = None,
) -> Child:
    """Start `argv` in a new session with output to `log_path` and its pid in `pid_path`.

    `env`, when given, is the child's whole environment; otherwise it inherits ours.
    `die_with_parent` (see `start_in_session`) defaults to whether this is the main thread.
    """
    pid_path.parent.mkdir(parents=True, exist_ok=True)
    if die_with_parent is None:
        die_with_parent = _in_main_thread()
    process = start_in_session(argv, log_path, env=env, die_with_parent=die_with_parent)
    pid_path.write_text(f"{process.pid}\n")
    return Child(name=name, process=process, log_path=log_path, pid_path=pid_path)


def start_in_session(
    argv: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    die_with_parent: bool,
) -> subprocess.Popen[bytes]:
    """Start `argv` in a new session with output appended to `log_path`.

    `die_with_parent` asks the kernel to SIGKILL it when the calling thread exits, which is
    only right when that thread lives as long as its owner (see `_in_main_thread`).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(env) if env is not None else None,
            preexec_fn=_die_with_parent() if die_with_parent else None,
        )


def stop(child: Child, timeout: float = 15.0) -> None:
    """SIGTERM the child's process group, SIGKILL it after `timeout`, then reap it.

    The leader is left a zombie until the end so its pid, which names the group, cannot
    be reused while we still signal the group.
    """
    pid = child.process.pid
    if child.process.returncode is None:
        signal_group(pid, signal.SIGTERM)
        if not _exited_within(pid, timeout):
            signal_group(pid, signal.SIGKILL)
            _exited_within(pid, timeout)
        signal_group(pid, signal.SIGKILL)
        child.process.wait()
    child.pid_path.unlink(missing_ok=True)


def stop_all(children: Iterable[Child], timeout: float = 15.0) -> None:
    """`stop` every child, signalling them all first so their grace periods run side by side."""
    children = list(children)
    for child in children:
        if child.process.returncode is None:
            signal_group(child.process.pid, signal.SIGTERM)
    for child in children:
        stop(child, timeout)


def exited(pid: int) -> bool:
    """Whether our child `pid` exited, leaving it unreaped so its group id stays ours to signal."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _exited_within(pid: int, timeout: float) -> bool:
    """Wait for `pid` to exit without reaping it."""
    deadline = time.monotonic() + timeout
    while True:
        if exited(pid):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def stop_stale(pid_path: Path, marker: str, timeout: float = 15.0) -> bool:
    """Stop a process recorded by an earlier owner that did not clean up.

    The pid is only trusted while its command line still contains `marker`, since the
    kernel reuses pids.
    """
    try:
        pid = int(pid_path.read_text().strip())
    except (FileNotFoundError, ValueError):
        pid_path.unlink(missing_ok=True)
        return False
    stopped = False
    if marker in command_line(pid):
        signal_group(pid, signal.SIGTERM)
        if not wait_gone(pid, timeout):
            signal_group(pid, signal.SIGKILL)
            wait_gone(pid, 5.0)
        stopped = True
    pid_path.unlink(missing_ok=True)
    return stopped


def command_line(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait for a process we did not start (so cannot reap) to exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _exists(pid):
            return True
        time.sleep(0.1)
    return not _exists(pid)


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    watch: Sequence[Child] = (),
    interval: float = 0.2,
) -> None:
    """Poll `ready` until it holds; fail early, with its log, if a watched child exits."""
    deadline = time.monotonic() + timeout
    while True:
        for child in watch:
            if not child.alive():
                raise RuntimeError(
                    f"{child.name} exited with code {child.process.returncode} while waiting "
                    f"for {what}; last lines of {child.log_path}:\n{child.log_tail()}"
                )
        if ready():
            return
        if time.monotonic() > deadline:
            logs = "".join(f"\n--- {c.log_path}:\n{c.log_tail()}" for c in watch)
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{logs}")
        time.sleep(interval)


def _exists(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return status.rsplit(")", 1)[-1].split()[0] != "Z"


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the process group `pid` leads; one already gone is no error."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _in_main_thread() -> bool:
    # PR_SET_PDEATHSIG fires when the forking *thread* exits, so only the main thread's
    # lifetime matches the owner's: https://man7.org/linux/man-pages/man2/prctl.2.html
    return threading.current_thread() is threading.main_thread()


def _die_with_parent() -> Callable[[], None]:
    libc = ctypes.CDLL(None, use_errno=True)
    prctl = libc.prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec
