"""Which webhooks of a release the plan asks for, and what their answers mean. Pure.

Besides `rollout` hooks (called with every check, a failure is a failed check) a release can
have, as in Flagger:

- `confirm-rollout`: a gate before the canary Deployment is created; asked every `interval`
  until every such hook answers 2xx.
- `pre-rollout`: called with the release's first check, once step 1's canary pods are ready
  and before that check's metrics are judged; a failure is a failed check (no metric is
  judged), retried with the next check, and `threshold` failed checks roll back with reason
  `PreRolloutFailed`.
- `confirm-traffic-increase`: a gate after a step's analysis passed (or its approve), before a
  next step that raises the canary's `traffic`; asked every `interval` until every such hook
  answers 2xx.
- `confirm-promotion`: a gate after the last step's analysis passed, before promotion.
- `rollback`: called with every check; any 2xx answer rolls the release back at once
  (reason `RolledBackByWebhook`, naming the hook).
- `post-rollout`: called once after the release is promoted or rolled back; its answer is only
  reported (an event), never changes the outcome.
- `event`: called by the operator with every event the release posts, best effort.

`rollout` and `rollback` hooks are those of the analysis in force at the check; the other
types belong to the release as a whole, gathered from `strategy.canary.analysis` and every
step's own analysis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from lanes.analysis.verdict import HookResult
from lanes.api.analysis import Analysis, AnalysisStatus, Webhook, WebhookType
from lanes.api.workloadrollout import WorkloadRollout, WorkloadRolloutStatus

from .checks import PRE_ROLLOUT_FAILED, ROLLED_BACK_BY_WEBHOOK
from .conditions import SUCCEEDED, find_condition
from .status import parse_time

DEFAULT_GATE_INTERVAL = 60.0


@dataclass(frozen=True)
class HookCall:
    """One webhook the plan asks the operator to call, with the `phase` its payload carries."""

    hook: Webhook
    phase: str

    @property
    def type(self) -> str:
        """The hook's type."""
        return self.hook.type


class CallsOut:
    """A plan that may ask the operator to call out before it is carried out: a check due
    (`check`) or webhooks to call (`hooks_due`). Mixed into both units' plans."""

    check: Analysis | None
    hooks_due: tuple[HookCall, ...]

    @property
    def asks(self) -> bool:
        """Whether the operator must read a check or call hooks and plan again with them."""
        return self.check is not None or bool(self.hooks_due)


def analyses(rollout: WorkloadRollout) -> list[Analysis]:
    """Every analysis of the rollout: the release's, then each step's own."""
    canary = rollout.spec.strategy.canary
    found = [canary.analysis] if canary.analysis is not None else []
    return found + [s.analysis for s in canary.steps if s.analysis is not None]


def hooks_of(analysis: Analysis | None, kind: WebhookType) -> tuple[Webhook, ...]:
    """The webhooks of one type in one analysis."""
    return tuple(h for h in (analysis.webhooks if analysis else ()) if h.type == kind)


def release_hooks(rollout: WorkloadRollout, kind: WebhookType) -> tuple[Webhook, ...]:
    """The release's webhooks of one type, from all its analyses; a name counts once."""
    seen: dict[str, Webhook] = {}
    for analysis in analyses(rollout):
        for hook in hooks_of(analysis, kind):
            seen.setdefault(hook.name, hook)
    return tuple(seen.values())


def gate_interval(rollout: WorkloadRollout) -> float:
    """How often a waiting gate is asked again: the interval of the release's first analysis."""
    found = analyses(rollout)
    return found[0].interval_seconds if found else DEFAULT_GATE_INTERVAL


def answers(results: Sequence[HookResult], hooks: Sequence[Webhook]) -> list[HookResult]:
    """One answer per hook; a hook the operator did not call counts as failed."""
    by_name = {(r.type, r.name): r for r in results}
    return [
        by_name.get((h.type, h.name)) or HookResult(h.name, False, "not called", h.type)
        for h in hooks
    ]


def answered(results: Sequence[HookResult], kind: str) -> bool:
    """Whether the observations carry answers of hooks of this type (the operator called them)."""
    return any(r.type == kind for r in results)


def is_done(status: AnalysisStatus | None, kind: str) -> bool:
    """Whether hooks of this type have done their part for the release."""
    return status is not None and kind in status.hooks_done


def mark_done(status: AnalysisStatus | None, kind: WebhookType) -> AnalysisStatus:
    """The status recording that hooks of this type are done; a gate's wait ends with it."""
    before = status or AnalysisStatus()
    done = [*before.hooks_done, kind] if kind not in before.hooks_done else before.hooks_done
    return before.model_copy(update={"hooks_done": done, "last_gate_time": None})


def gate_wait(interval: float, last_asked: str | None, now: datetime) -> float:
    """Seconds until a gate last asked at `last_asked` may be asked again (0: now)."""
    last = parse_time(last_asked)
    if last is None:
        return 0.0
    return max((last + timedelta(seconds=interval) - now).total_seconds(), 0.0)


def failures(results: Sequence[HookResult]) -> str:
    """What the failed answers said, one hook after the other."""
    return "; ".join(f"webhook {r.name}: {r.message or 'failed'}" for r in results if not r.ok)


def names(hooks: Sequence[Webhook]) -> str:
    """The hooks' names, for messages."""
    return ", ".join(h.name for h in hooks)


def carry(new: AnalysisStatus, old: AnalysisStatus | None) -> AnalysisStatus:
    """A freshly judged status keeping what the release's hooks already did."""
    if old is None:
        return new
    return new.model_copy(update={"hooks_done": old.hooks_done, "reason": new.reason or old.reason})


def pre_rollout_failed(
    analysis: Analysis, status: AnalysisStatus | None, results: Sequence[HookResult], stamp: str
) -> tuple[AnalysisStatus, bool]:
    """The check a failed pre-rollout makes: a failed check, and whether it reached `threshold`."""
    before = status or AnalysisStatus()
    failed = before.failed_checks + 1
    reason = failures(results)
    rollback = failed >= analysis.threshold
    message = (
        f"pre-rollout failed {failed} check(s), the threshold: {reason}"
        if rollback
        else f"Halt advancement: pre-rollout {reason} (failed checks {failed}/{analysis.threshold})"
    )
    return before.model_copy(update={
        "phase": "Failed" if rollback else "Halted",
        "failed_checks": failed,
        "checks": before.checks + 1,
        "last_check_time": stamp,
        "message": message,
        "reason": PRE_ROLLOUT_FAILED if rollback else None,
    }), rollback


def rolled_back_by(
    status: AnalysisStatus | None, hook: HookResult, stamp: str, step: int
) -> AnalysisStatus:
    """The status of a release a `rollback` hook ended."""
    before = status or AnalysisStatus()
    return before.model_copy(update={
        "phase": "Failed",
        "checks": before.checks + 1,
        "last_check_time": stamp,
        "message": f"rollback webhook {hook.name} asked to roll back ({hook.message or '2xx'})",
        "reason": ROLLED_BACK_BY_WEBHOOK,
        "step": step,
    })


def flagger_phase(status: WorkloadRolloutStatus | None) -> str:
    """The phase a webhook payload carries, in Flagger's words, for a rollout's status.

    `Initializing` before the base is known, `Progressing` in the steps, `Promoting`,
    `Failed` while rolling back or failed, and once settled `Succeeded` or `Failed` by how the
    last release ended (`Initialized` when none has).
    """
    if status is None or status.phase == "Initial":
        return "Initializing"
    if status.phase in ("Progressing", "Paused"):
        return "Progressing"
    if status.phase == "Promoting":
        return "Promoting"
    if status.phase in ("RollingBack", "Failed"):
        return "Failed"
    ended = find_condition(status.conditions, SUCCEEDED)
    if ended is None or ended.status == "Unknown":
        return "Initialized"
    return "Succeeded" if ended.status == "True" else "Failed"
