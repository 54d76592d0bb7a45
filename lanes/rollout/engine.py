"""The step engine: the rules of a release written once, for both units it serves.

A unit is what one release moves as a whole. A WorkloadRollout moves one workload: its canary
is a Deployment, its traffic a `traffic` percentage per step. A LaneRelease moves the
WorkloadRollouts of one lane together: its canary is the lane, its traffic the lane's entry
weight at the gateway. Each unit keeps its own draft of the status being planned
(`lanes.rollout.draft.Draft`, `lanes.rollout.lanerelease.unit.ReleaseDraft`) on `Drafting`,
and supplies only what differs: what its canary is, how its traffic is expressed, its
members. The rules it shares are here:

- `look_at_gate`: a gate of webhooks (confirm-rollout, confirm-traffic-increase,
  confirm-promotion) waits out its interval, is asked, then opens on every answer 2xx.
- `screen_intents`: the user's intents (approve, undo, pause, resume, abort and promote
  --full) in priority order, those that cannot apply rejected with the reason, a
  stale approve among them.
- `check_due`: an analysis check is asked for once due, with the webhooks that go with it,
  and judged in the plan made again with its readings.
- `rollback_fired`: a `rollback` webhook that answered 2xx rolls the release back.
- `settle_left`: how long the routes still need before what they stopped using may go.

When a check is due is `lanes.rollout.checks.next_check_in`; conditions are set by
`lanes.rollout.conditions`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from lanes.analysis.verdict import HookResult
from lanes.api.analysis import Analysis, Webhook

from .actions import Event
from .hooks import HookCall, answered, answers, gate_wait, hooks_of
from .intents import PRIORITY, Intent


class Drafting:
    """What every unit's draft does: post events, name webhooks to call, say when to plan
    again. A unit's draft says how it keeps an event (`post`)."""

    now: datetime
    observed: Any
    """What the operator read for the unit: `hooks` (the answers of the webhooks the plan
    named) and `readings` (a check's, None until one was made)."""
    calls: list[HookCall]
    check: Analysis | None
    requeue: float | None

    def post(self, event: Event) -> None:
        """Keep an event of the plan."""
        raise NotImplementedError

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        """Add an Event on the unit."""
        self.post(Event(reason, message, "Warning" if warning else "Normal"))

    def call(self, hooks: Sequence[Webhook], phase: str) -> None:
        """Ask the operator to call webhooks, each once, with `phase` in their payload."""
        for hook in hooks:
            if all(c.hook.name != hook.name or c.type != hook.type for c in self.calls):
                self.calls.append(HookCall(hook, phase))

    def wake(self, seconds: float) -> None:
        """Plan again within `seconds` without a new observation (the earliest wins)."""
        self.requeue = seconds if self.requeue is None else min(self.requeue, seconds)

    @property
    def name(self) -> str:
        """How messages name the unit (`kind/name`)."""
        raise NotImplementedError

    def reject(self, intent: Intent, error: str) -> None:
        """An intent that cannot apply now: say why."""
        self.event("IntentRejected", error, warning=True)


def look_at_gate(
    d: Drafting, hooks: Sequence[Webhook], phase: str, last_asked: str | None,
    interval: float, ask_again: float,
) -> list[HookResult] | None:
    """One look at a gate of webhooks of one type; their answers once they came, else None.

    A gate whose answers said no (`last_asked`) waits `interval` before it is asked again;
    asking names the hooks with payload phase `phase` and wakes the draft within `ask_again`.
    """
    hooks_seen: Sequence[HookResult] = d.observed.hooks
    wait = gate_wait(interval, last_asked, d.now)
    if wait > 0:
        d.wake(wait)
        return None
    if not answered(hooks_seen, hooks[0].type):
        d.call(hooks, phase)
        d.wake(ask_again)
        return None
    return answers(hooks_seen, hooks)


def screen_intents(
    d: Drafting, present: Mapping[Intent, str], refuse: Callable[[Intent], str | None],
    index: int, where: str,
) -> Iterator[Intent]:
    """The requested intents that apply, in priority order (`PRIORITY`: abort, undo, retry,
    resume, pause, promote, approve).

    Each is judged when it is reached, so one applied earlier (a pause) counts for the next.
    Those that cannot apply are rejected (`Drafting.reject`): pause and resume requested
    together, what `refuse` refuses, and an approve of another step than `index` (stale: a
    late or repeated approve never skips a step).
    """
    wanted = dict(present)
    if "pause" in wanted and "resume" in wanted:
        del wanted["pause"], wanted["resume"]
        d.event("IntentRejected", "both pause and resume were requested; ignored both", True)
    for intent in PRIORITY:
        if intent not in wanted:
            continue
        error = refuse(intent)
        if error is None and intent == "approve" and wanted[intent].strip() != str(index):
            error = f"approve of step {wanted[intent]} is stale: {d.name} is at {where}"
        if error is not None:
            d.reject(intent, error)
        else:
            yield intent


def check_due(
    d: Drafting, analysis: Analysis, due_in: float, hooks: Sequence[Webhook], phase: str,
) -> bool:
    """Whether a check is due and its readings are here to judge.

    Not due yet: the draft wakes when it is. Due, planned without readings: the plan asks the
    operator for the check (`check`) and for `hooks` with payload phase `phase`, to plan again
    with their answers; meanwhile it wakes within an interval, so an operator that cannot
    check retries then.
    """
    if due_in > 0:
        d.wake(due_in)
        return False
    if d.observed.readings is None:
        d.check = analysis
        d.call(hooks, phase)
        d.wake(analysis.interval_seconds)
        return False
    return True


def rollback_fired(hooks: Sequence[HookResult], analysis: Analysis | None) -> HookResult | None:
    """The first `rollback` webhook of the check's analysis that answered 2xx, if any."""
    return next((r for r in answers(hooks, hooks_of(analysis, "rollback")) if r.ok), None)


def settle_left(since: datetime | None, seconds: float, now: datetime) -> float:
    """Seconds the routes still need to settle, having changed at `since` (all of them when
    that is not known)."""
    return seconds - ((now - since).total_seconds() if since is not None else 0.0)
