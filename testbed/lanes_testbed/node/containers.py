"""One container as a local process: start, readiness probing, restart with back-off, stop.

Everything here is driven by `tick()` from the node's single sync thread, which never
waits on a process: stopping sends SIGTERM and notes when SIGKILL is due. The processes
are started from that thread with PR_SET_PDEATHSIG, so if the node dies (even by SIGKILL)
the kernel kills them too; the thread lives as long as the node (see lanes_testbed.processes
for why the forking thread matters). Each runs in its own session so signals reach
anything it forked.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from lanes_testbed import processes
from lanes_testbed.node.images import Program
from lanes_testbed.node.objects import ContainerView, Termination
from lanes_testbed.node.probes import Probe

_RUNTIME_SCHEME = "lanes-local://"
MAX_BACKOFF_S = 30.0
BACKOFF_RESET_S = 60.0


@dataclass
class Container:
    """A container of a pod and its current process, if any."""

    name: str
    image: str
    image_id: str
    restart_policy: str
    probe: Probe
    log_path: Path
    restart_count: int = 0
    process: subprocess.Popen[bytes] | None = None
    started_at: datetime | None = None
    started_mono: float = 0.0
    ready: bool = False
    ended: Termination | None = None
    last: Termination | None = None
    waiting: tuple[str, str] | None = None
    restart_at: float | None = 0.0
    backoff_s: float = 0.0
    kill_at: float | None = None
    stopping: bool = False
    _probe_due: float = 0.0
    _probe_result: Future[bool] | None = field(default=None, repr=False)
    _successes: int = 0
    _failures: int = 0

    @property
    def running(self) -> bool:
        return self.process is not None

    @property
    def container_id(self) -> str:
        """The process id as containerID (`lanes-local://PID`), so `kill` and `ps` can find it."""
        return f"{_RUNTIME_SCHEME}{self.process.pid}" if self.process else ""

    def start(self, program: Program, env: Mapping[str, str]) -> None:
        """Run `program` now; a failure to exec counts as a crash with exit code 128."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        now = datetime.now(UTC)
        if self.ended is not None:
            self.last, self.ended = self.ended, None
            self.restart_count += 1
        try:
            self.process = processes.start_in_session(
                program.argv, self.log_path, env=env, die_with_parent=True
            )
        except OSError as error:
            self.ended = Termination(128, "StartError", now, now, "")
            self.waiting = ("RunContainerError", str(error))
            self._schedule_restart(time.monotonic())
            return
        self.started_at, self.started_mono = now, time.monotonic()
        self.ready, self.restart_at, self.kill_at, self.waiting = False, None, None, None
        self._successes = self._failures = 0
        self._probe_due = self.started_mono + self.probe.initial_delay_s

    def tick(self, now: float, probes: Executor) -> None:
        """Notice an exit, schedule the restart the policy asks for, and run the probe."""
        if self.process is None:
            return
        if processes.exited(self.process.pid):
            self._reap()
            self._schedule_restart(now)
            return
        if self.kill_at is not None and now >= self.kill_at:
            processes.signal_group(self.process.pid, signal.SIGKILL)
            return
        if not self.stopping:
            self._advance_probe(now, probes)

    def terminate(self, grace_s: float) -> None:
        """SIGTERM now, SIGKILL after `grace_s` (kubelet's graceful stop); no restart after."""
        self.stopping, self.restart_at, self.ready = True, None, False
        if self.process is not None and self.kill_at is None:
            processes.signal_group(self.process.pid, signal.SIGTERM)
            self.kill_at = time.monotonic() + max(grace_s, 0.0)

    def kill_now(self) -> None:
        """SIGKILL and reap at once, for when nothing may be left running."""
        self.stopping, self.restart_at = True, None
        if self.process is not None:
            processes.signal_group(self.process.pid, signal.SIGKILL)
            self._reap()

    def view(self) -> ContainerView:
        """The container as the pod status shows it: running, backing off, ended, or waiting."""
        common = dict(name=self.name, image=self.image, image_id=self.image_id,
                      restart_count=self.restart_count)
        if self.process is not None:
            return ContainerView(**common, state="running", started_at=self.started_at,
                                 container_id=self.container_id, ready=self.ready, last=self.last)
        if self.waiting is not None:
            reason, message = self.waiting
        elif self.ended is not None and self.restart_at is None:
            return ContainerView(**common, state="terminated", ended=self.ended, last=self.last)
        elif self.ended is not None:
            reason = "CrashLoopBackOff"
            message = f"back-off {self.backoff_s:.0f}s restarting failed container={self.name}"
        else:
            reason, message = "ContainerCreating", ""
        return ContainerView(**common, state="waiting", reason=reason, message=message,
                             last=self.ended or self.last)

    def _reap(self) -> None:
        assert self.process is not None
        pid = self.process.pid
        processes.signal_group(pid, signal.SIGKILL)
        code = self.process.wait()
        exit_code = 128 - code if code < 0 else code
        self.ended = Termination(
            exit_code=exit_code,
            reason="Completed" if exit_code == 0 else "Error",
            started_at=self.started_at or datetime.now(UTC),
            finished_at=datetime.now(UTC),
            container_id=f"{_RUNTIME_SCHEME}{pid}",
        )
        self.process, self.ready, self.kill_at, self._probe_result = None, False, None, None

    def _schedule_restart(self, now: float) -> None:
        assert self.ended is not None
        should = not self.stopping and (
            self.restart_policy == "Always"
            or (self.restart_policy == "OnFailure" and self.ended.exit_code != 0)
        )
        if not should:
            self.restart_at = None
            return
        ran_s = now - self.started_mono if self.started_mono else 0.0
        streak = 0 if ran_s >= BACKOFF_RESET_S else self.restart_count
        self.backoff_s = 0.0 if streak == 0 else min(MAX_BACKOFF_S, 2.0 ** (streak - 1))
        self.restart_at = now + self.backoff_s

    def _advance_probe(self, now: float, probes: Executor) -> None:
        result = self._probe_result
        if result is not None:
            if not result.done():
                return
            self._probe_result = None
            if result.result():
                self._successes, self._failures = self._successes + 1, 0
                if self._successes >= self.probe.success_threshold:
                    self.ready = True
            else:
                self._successes, self._failures = 0, self._failures + 1
                if self._failures >= self.probe.failure_threshold:
                    self.ready = False
            self._probe_due = now + (self.probe.period_s if self.ready else self.probe.startup_period_s)
        if now >= self._probe_due:
            self._probe_result = probes.submit(self.probe.check)
