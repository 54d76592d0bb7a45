"""The supervisor restarts what exits, as kubelet does: with a doubling back-off, never giving up."""

from __future__ import annotations

import threading
from pathlib import Path

from lanes_testbed.supervisor import run_until_stopped


class Flaky:
    """A supervised stack whose `operator` exits again and again; restarts fail at first."""

    log_dir = Path("/logs")

    def __init__(self, clock: list[float], stop: threading.Event, failing_restarts: int) -> None:
        self.clock, self.stop = clock, stop
        self.down = {"operator"}
        self.failing = failing_restarts
        self.restarted_at: list[float] = []

    def dead_components(self) -> list[str]:
        self.clock[0] += 1.0  # each look is one tick of the supervisor's loop
        if self.clock[0] > 200:
            self.stop.set()
        return sorted(self.down)

    def restart_component(self, name: str) -> None:
        self.restarted_at.append(self.clock[0])
        if self.failing:
            self.failing -= 1
            raise RuntimeError("port in use")
        self.down.discard(name)


def test_a_part_that_exits_is_restarted_after_a_doubling_back_off(capsys) -> None:
    clock, stop = [0.0], threading.Event()
    stack = Flaky(clock, stop, failing_restarts=3)
    assert run_until_stopped(stop, stack, clock=lambda: clock[0], tick_s=0) == 0
    assert stack.restarted_at == [2.0, 5.0, 10.0, 19.0]  # 1 s, 2 s, 4 s, 8 s after each look
    assert stack.down == set()
    out = capsys.readouterr().out
    assert "operator exited; restarting it in 1s (restart 1); see /logs" in out
    assert "operator did not start again: port in use" in out
    assert "operator restarted (restart 4)" in out


def test_the_back_off_stops_doubling_at_30_seconds() -> None:
    clock, stop = [0.0], threading.Event()
    stack = Flaky(clock, stop, failing_restarts=7)
    run_until_stopped(stop, stack, clock=lambda: clock[0], tick_s=0)
    gaps = [b - a for a, b in zip(stack.restarted_at, stack.restarted_at[1:])]
    assert gaps == [3.0, 5.0, 9.0, 17.0, 31.0, 31.0, 31.0]
    assert stack.down == set()
