"""The controller shape: the steps run in order, a step may end the reconcile, a 409 replans."""

from __future__ import annotations

import asyncio

import pytest
from kubernetes.client.exceptions import ApiException

from lanes.operator.controller import NOW, Controller, Done


class Recording(Controller[dict, dict, dict, dict]):
    """Writes down each step; `stop_at` ends the reconcile there, `conflict_at` raises 409."""

    def __init__(self, stop_at: str | None = None, conflict_at: str | None = None, asks: bool = False):
        super().__init__(workers=1, debounce=0)
        self.stop_at, self.conflict_at, self.asks = stop_at, conflict_at, asks
        self.steps_taken: list[str] = []

    def _step(self, name: str, value: dict) -> dict | Done:
        self.steps_taken.append(name)
        if name == self.conflict_at:
            raise ApiException(status=409)
        return Done(7.0) if name == self.stop_at else value

    def read(self, prepared, force):
        return self._step("read", {"key": prepared})

    def finalize(self, state):
        return self._step("finalize", state)

    def validate(self, state):
        return self._step("validate", state)

    def observe(self, valid):
        return self._step("observe", {"answered": False})

    def plan(self, valid, seen):
        self.steps_taken.append("plan")
        return {"asks": self.asks and not seen["answered"]}

    def call_out(self, valid, seen, plan):
        self.steps_taken.append("call out")
        return {"answered": True} if plan["asks"] else None

    def carry_out(self, valid, plan):
        self._step("carry out", plan)

    def status(self, valid, plan):
        self._step("status", plan)
        return 30.0


@pytest.mark.parametrize("asks, taken", [
    pytest.param(False, ["read", "finalize", "validate", "observe", "plan", "call out", "carry out", "status"],
                 id="nothing-to-ask"),
    pytest.param(True, ["read", "finalize", "validate", "observe", "plan", "call out", "plan", "carry out",
                        "status"], id="plan-again-with-answers"),
])
def test_the_steps_run_in_order(asks: bool, taken: list[str]) -> None:
    controller = Recording(asks=asks)
    assert controller.run("ns/a", False) == 30.0
    assert controller.steps_taken == taken


def test_a_step_may_end_the_reconcile() -> None:
    controller = Recording(stop_at="finalize")
    assert controller.run("ns/a", False) == 7.0
    assert controller.steps_taken == ["read", "finalize"]


@pytest.mark.parametrize("step", ["observe", "carry out", "status"])
def test_a_conflict_plans_again_at_once(step: str) -> None:
    assert Recording(conflict_at=step).run("ns/a", False) == NOW


def test_a_reconcile_asking_to_run_later_keeps_one_timer_until_stopped() -> None:
    async def main() -> tuple[list[str], int]:
        controller = Recording(stop_at="read")
        controller.start()
        controller.trigger("ns/a")
        for _ in range(100):
            await asyncio.sleep(0.01)
            if controller.timers:
                break
        timers = list(controller.timers)
        await controller.stop()
        return timers, len(controller.timers)

    assert asyncio.run(main()) == (["ns/a"], 0)
