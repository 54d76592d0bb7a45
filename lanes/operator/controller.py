"""One controller shape: the steps of every reconcile, and the loop that runs them.

    read -> finalize -> validate -> observe -> plan -> call out -> plan again -> carry out -> status

Each controller says what each step means for its kind; the loop, the queue (coalescing,
backoff, timed requeues) and what a Conflict means are written here once. Planning stays pure:
`plan` computes, every other step reads or writes. A step ends the reconcile early by
returning `Done` (an object being deleted, a spec that does not parse).

A write made at a resourceVersion that has moved since the read fails with 409 Conflict: what
was planned from is stale, so the loop plans again at once from a fresh read, whichever step
wrote.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from kubernetes.client.exceptions import ApiException

from .scheduler import Describe, RequeuingQueue

State = TypeVar("State")
Valid = TypeVar("Valid")
Seen = TypeVar("Seen")
Plan = TypeVar("Plan")

NOW = 0.0
"""Run again at once."""


@dataclass(frozen=True)
class Done:
    """A step ended the reconcile: when to run again (None: only on a change)."""

    requeue_after: float | None = None


def is_conflict(error: BaseException) -> bool:
    """Whether a write failed because the object moved since it was read (409)."""
    return isinstance(error, ApiException) and error.status == 409


class Controller(RequeuingQueue, ABC, Generic[State, Valid, Seen, Plan]):
    """One kind's reconcile in steps, on its own queue of keys.

    `prepare` runs in the event loop (to take a snapshot of the watches' store, say); every
    step after it runs in a worker thread, where blocking API calls are fine. A key is never
    reconciled twice at once. What the reconcile returns (`status`'s answer) says when to run
    again: None on a change only, 0 at once, else in that many seconds.
    """

    def __init__(self, *, workers: int = 4, debounce: float = 0.02, describe: Describe = str):
        super().__init__(workers=workers, describe=describe, debounce=debounce)

    def trigger(self, key: str, *, force: bool = False, background: bool = False) -> None:
        """Queue a reconcile of `key`; `force` asks for a full check, not a shortcut."""
        self.scheduler.trigger(key, force=force, background=background)

    @property
    def busy(self) -> bool:
        """True while a reconcile is queued or running."""
        return self.scheduler.busy

    def run(self, prepared: Any, force: bool) -> float | None:
        """The loop: every step in order, a Conflict meaning "plan again at once"."""
        try:
            return self.steps(prepared, force)
        except ApiException as error:
            if is_conflict(error):
                return NOW
            raise

    def steps(self, prepared: Any, force: bool) -> float | None:
        """Read, finalize, validate, observe, plan, call out, plan again, carry out, status."""
        state = self.read(prepared, force)
        if isinstance(state, Done):
            return state.requeue_after
        kept = self.finalize(state)
        if isinstance(kept, Done):
            return kept.requeue_after
        valid = self.validate(kept)
        if isinstance(valid, Done):
            return valid.requeue_after
        seen = self.observe(valid)
        if isinstance(seen, Done):
            return seen.requeue_after
        plan = self.plan(valid, seen)
        answered = self.call_out(valid, seen, plan)
        if answered is not None:
            plan = self.plan(valid, answered)
        self.carry_out(valid, plan)
        return self.status(valid, plan)

    @abstractmethod
    def read(self, prepared: Any, force: bool) -> State | Done:
        """What the object and its inputs are now; Done when there is nothing to do."""

    @abstractmethod
    def finalize(self, state: State) -> State | Done:
        """Clean up after an object being deleted (Done), else make sure the finalizer is on."""

    @abstractmethod
    def validate(self, state: State) -> Valid | Done:
        """Parse the object; one that does not parse gets a status naming each field (Done)."""

    @abstractmethod
    def observe(self, valid: Valid) -> Seen | Done:
        """Read what the plan is made from (workloads, live objects)."""

    @abstractmethod
    def plan(self, valid: Valid, seen: Seen) -> Plan:
        """Pure: what to change, and the status to write."""

    def call_out(self, valid: Valid, seen: Seen, plan: Plan) -> Seen | None:
        """Make the checks and call the webhooks `plan` asks for; what was seen with their
        answers, to plan again from; None when it asks for none (the default)."""
        return None

    @abstractmethod
    def carry_out(self, valid: Valid, plan: Plan) -> None:
        """Make the planned changes, in order, stopping at the first failure."""

    @abstractmethod
    def status(self, valid: Valid, plan: Plan) -> float | None:
        """Write the planned status (and events); returns when to run again."""
