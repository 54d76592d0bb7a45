"""The WorkloadRollout state machine: (rollout, observed workloads, now) -> Plan.

Phases, and what moves a rollout between them (one move per reconcile, OpenKruise style, so
a restarted operator resumes from the stored status alone):

- Initial -> Healthy once the base Deployment exists; its running revision becomes stable.
- Healthy -> Progressing when the base's template differs from the stable revision: the base
  is paused and the canary Deployment runs the new template (step 1, StepUpgrade).
- In each step: StepUpgrade -> StepPaused when the step's canary pods are available
  (phase Paused while it waits for approve, Progressing while a timed pause runs) ->
  StepReady on approve or when the pause ends -> the next step's StepUpgrade; StepReady on
  the last step -> Promoting (StepState Completed), the base unpaused.
- Promoting -> Healthy (Succeeded=True, Promoted) once the base runs the new revision on
  every replica; the canary Deployment is deleted and the new revision becomes stable.
- Undo, or the base's template set back to the stable revision -> RollingBack -> Healthy
  (Succeeded=False, RolledBack) once the base runs the stable revision unpaused.
- A release rolled back by its analysis, a webhook or its lane release's failed checks records
  its revision (`status.failedRevision`); while the base carries that revision a Healthy
  rollout holds the base and starts nothing, until retry (`lanes.dev/retry`) or another
  revision. A person's undo records nothing: the same template applied again is released.
- A template that is neither stable nor the canary's restarts the canary at step 1.
- Canary pods not available within the rollout's `progressDeadlineSeconds` of the step's
  start -> RollingBack, as a failed analysis does: the revision is recorded as failed and the
  release ends Healthy with Succeeded=False, reason ProgressDeadlineExceeded.
- Without one, canary pods not available within the base's `progressDeadlineSeconds` -> Failed.
  The canary and the held base stay as they are; the step carries on if the pods become
  available, a new template restarts it, and undo rolls back.
- Abort (`lanes.dev/abort`) rolls back as undo does, but records the revision as failed
  (reason `Aborted`), so it is held like a revision its analysis rolled back.
- Promote --full (`lanes.dev/promote-full`) in the steps -> Promoting at once: the remaining
  steps, their pauses, analysis and gates (confirm-promotion included) are skipped, and a
  pause request is lifted.
- Restart (`lanes.dev/restart`) is not a move: the canary's pod template carries its value,
  so a new one rolls the canary pods (`lanes.rollout.canary.canary_template`).
- Pause (spec.strategy.paused or the pause intent) stops the steps (phase Paused) while the
  base stays held; promotion and roll back are not interrupted.
- A second rollout on a Deployment that another rollout already drives -> Failed (Conflict)
  without touching anything; it starts from Initial once the other one is gone.
- A Healthy rollout releases a hold it (or the webhook) put on a base whose template is back
  on the stable revision, e.g. a change reverted before the release started.

Metric analysis (`strategy.canary.analysis`, or a step's own `analysis` for that step; the
rules of one check are in `lanes.analysis.verdict`, how each kind of pause waits in `checks`):

- Checks run only while a step's canary pods are ready (StepPaused) and the rollout is not
  paused, the first one an `interval` after the step's `lastUpdateTime` (when the pods became
  ready, or the step was resumed), so its window holds the step's traffic. A plan made without readings asks for one when it is due (`Plan.check`) and
  otherwise requeues at the next due time; the operator queries, calls the `rollout`
  webhooks (and the `hooks_due`, below) and plans again with the same `now` and the readings (`Observed.readings`,
  `Observed.hooks`). Planning again from the returned status with the same readings judges
  nothing twice: the next check is not due until `interval` has passed.
- The judged check is stored in `status.analysis` (with the step it was made at) and its
  events are posted. `pass`: a step without `pause` goes to StepReady in the same
  reconcile; `pause: {duration}` goes once the duration is also over; `pause: {}` waits for
  approve, accepted only while the step's latest check passed. `halt` (a failed check) and
  `hold` (Prometheus unavailable) stay at the step. Failed checks count for the whole
  release: a pass resets nothing.
- `rollback` (failed checks reached `threshold`, or Prometheus unavailable for
  threshold x interval) enters RollingBack as undo does (base never restarted, canary
  deleted) and ends Healthy with Succeeded=False, reason AnalysisFailed or
  AnalysisUnavailable, the message naming each failing metric, its value and its range.
- A new release (a new canary revision) starts with no `status.analysis`; the last
  release's stays after it ends, to show why it ended.

Webhooks of the other types (rules in `hooks`; the release's own are gathered from every
analysis of the rollout, `rollout` and `rollback` ones are the checking analysis's). The plan
names the hooks to call now in `Plan.hooks_due`, each with its payload phase; the operator
calls them (before the check's metrics, when a check is also due) and plans again with their
answers in `Observed.hooks`, at the same `now`, exactly as for a check:

- `confirm-rollout` (payload phase `Waiting`): a release entering step 1 stays Progressing at
  StepUpgrade with no canary Deployment and the base held, asking every `interval`, until every
  such hook answers 2xx; then the canary is applied and the step's progress deadline starts.
- `pre-rollout` (`Progressing`): called with the first check of the release; a failure is a
  failed check whose metrics are not judged, retried with the next check, and `threshold` of
  them roll back with reason `PreRolloutFailed`. Once they pass they are not called again.
- `rollback` (`Progressing`): called with every check; a 2xx rolls back at once, reason
  `RolledBackByWebhook`, the message naming the hook.
- `confirm-traffic-increase` (`Progressing`): a ready step whose next step raises `traffic`
  stays at StepReady (its share in force, no checks) asking every `interval` until every such
  hook answers 2xx; the answer that opens it is the move to the next step, so each increase
  asks again. Step 1's share is not gated (pre-rollout and confirm-rollout gate the start).
- `confirm-promotion` (`WaitingPromotion`): after the last step is ready (its analysis passed,
  or approve), the release stays at StepReady, base held, asking every `interval` until they
  answer 2xx; then promotion starts. No checks run while it waits (Flagger keeps checking).
- `post-rollout` (`Succeeded` or `Failed`): once the release is Healthy again, called once
  before anything else (a next release included); the answer is only an event.
- `event`: `Plan.event_hooks`, called by the operator with each event it posts.

What they did lives in `status.analysis` (`hooksDone`, `lastGateTime`, `reason`), so a
restarted operator neither asks a passed gate again nor calls post-rollout twice, and a plan
made again from the returned status with the same answers asks for nothing new.
- Without analysis nothing of this applies: a step without `pause` waits for approve.
"""

from __future__ import annotations

from datetime import datetime

from lanes.api.workloadrollout import WorkloadRollout

from .actions import (
    ApplyAutoscaler,
    ApplyCanary,
    ClearIntent,
    DeleteAutoscaler,
    DeleteCanary,
    Plan,
    UnpauseBase,
)
from .autoscaler import autoscaler_drifted, canary_autoscaler, owns_autoscaler
from .draft import Draft
from .endings import (
    ABORTED,
    enter_promotion,
    enter_rollback,
    healthy_message,
    post_rollout,
    promote,
    roll_back,
)
from .engine import screen_intents
from .intents import ANNOTATIONS, Intent, check_intent, requested
from .observed import Observed
from .progress import hold_base, run_steps, start_canary
from .status import IN_PROGRESS, IN_STEPS, utc


def plan_step(rollout: WorkloadRollout, observed: Observed, now: datetime) -> Plan:
    """The next status of a rollout and the actions that get there, moving at most one step.

    Planning again from the returned status with the same observations asks for nothing new:
    the canary Deployment is requested only on the transition that needs it.
    """
    d = Draft.of(rollout, observed, utc(now))
    canary = d.canary
    d.ready = canary.available_replicas if canary is not None else 0
    if not rollout.spec.strategy.canary.enable_extra_workload_for_canary:
        d.fail("Unsupported", "only enableExtraWorkloadForCanary: true is supported")
    elif observed.base is None:
        _no_base(d)
    elif observed.driven_by is not None:
        d.fail(
            "Conflict",
            f"Deployment {observed.base.name} is already driven by workloadrollout/"
            f"{observed.driven_by}; a Deployment takes one rollout at a time",
        )
    elif not _take_intent(d):
        _advance(d)
    _follow_autoscaler(d)
    return d.plan()


def _follow_autoscaler(d: Draft) -> None:
    """Keep the canary's copy of the base's autoscaler while a canary Deployment runs, with
    the planned step's replicas as its floor; delete the copy once the canary is gone or
    going (promotion done, roll back, no base), whatever handler decided that."""
    found = d.observed.canary_autoscaler
    ours = found is not None and owns_autoscaler(d.rollout, found)
    applying = any(isinstance(a, ApplyCanary) for a in d.actions)
    deleting = any(isinstance(a, DeleteCanary) for a in d.actions)
    running = applying or (d.canary is not None and not deleting)
    source = d.observed.autoscaler
    wanted = (d.rollout.spec.autoscaler_ref is not None and source is not None and running
              and d.replicas > 0 and d.phase in IN_PROGRESS and d.phase != "RollingBack")
    if wanted and (ours or found is None):
        assert source is not None and d.observed.base is not None
        desired = canary_autoscaler(d.rollout, d.base.name, d.base.namespace, source, d.replicas)
        if autoscaler_drifted(found, desired):
            d.act(ApplyAutoscaler(desired))
    elif not wanted and ours:
        assert found is not None
        d.act(DeleteAutoscaler(found.name))


def _advance(d: Draft) -> None:
    if d.phase == "Initial" or d.stable is None:
        if d.phase == "Failed":
            d.fresh = True
        stable = d.observed.running_revision()
        d.move(phase="Healthy", stable=stable, canary_revision=None, index=0, state=None)
        d.message = healthy_message(d)
    elif d.phase == "Healthy":
        _healthy(d)
    elif not _template_changed(d):
        if d.phase == "Promoting":
            promote(d)
        elif d.phase == "RollingBack":
            roll_back(d)
        else:
            run_steps(d)


def _no_base(d: Draft) -> None:
    if d.canary is not None:
        d.act(DeleteCanary(d.canary.name))
    namespace = d.rollout.metadata.namespace or "default"
    d.missing = True
    d.message = (f"spec.workloadRef.name: Deployment {d.rollout.spec.workload_ref.name} not "
                 f"found in namespace {namespace}")
    if d.phase != "Initial":
        d.move(phase="Initial", stable=None, canary_revision=None, index=0, state=None)
        d.replicas = 0


def _healthy(d: Draft) -> None:
    """Settled: drop a leftover canary, or start a release on a new template.

    A canary left from a start whose status write was lost is reused by the release that
    starts again, not deleted and re-created, so its pods are not restarted. The last
    release's post-rollout hooks are called first.
    """
    if post_rollout(d):
        return
    revision = d.base.revision
    failed = d.failed is not None and revision == d.failed.revision
    if d.canary is not None and (revision == d.stable or d.is_paused or failed):
        d.act(DeleteCanary(d.canary.name))
    if revision == d.stable:
        if d.base.paused and d.held:
            d.act(UnpauseBase(d.base.name))
        d.message = healthy_message(d)
    elif failed:
        _hold_failed(d)
    elif d.is_paused:
        hold_base(d)
        d.message = f"paused; revision {revision} of Deployment {d.base.name} waits for resume"
    else:
        start_canary(d, revision, "CanaryStarted")


def _hold_failed(d: Draft) -> None:
    """The base carries a revision whose release failed: keep it on the stable one.

    Nothing is written to the template (the roll back already restored it once; a GitOps
    self-heal that applies the failed template again would only be undone again, in a loop),
    and no canary starts. The first reconcile that sees it says so in an event.
    """
    assert d.failed is not None
    hold_base(d)
    message = (
        f"revision {d.failed.revision} of Deployment {d.base.name} failed ({d.failed.reason}"
        f" at {d.failed.time}) and is not released again; the base stays on revision "
        f"{d.stable}. Run `kubectl lane retry rollout/{d.rollout.metadata.name}` or apply "
        "a new revision"
    )
    if d.message != message:
        d.event("FailedRevisionHeld", message, warning=True)
    d.message = message


def _undo(d: Draft, value: str) -> None:
    """Roll back on request. A person's undo does not make the revision failed (applying it
    again releases it again); a lane release's undo after its lane failed its checks does
    (its value: `<time> lanerelease/NAME <reason>`), so the member's template applied again
    starts nothing, as a rollout's own failed analysis does."""
    _, release, reason = (value.split(" ", 2) + ["", ""])[:3]
    if release.startswith("lanerelease/") and reason:
        enter_rollback(d, f"{release} rolled its lane back ({reason}): rolling back revision "
                          f"{d.canary_revision} to {d.stable}", failed=True, reason=reason)
        return
    enter_rollback(
        d, f"undo requested: rolling back revision {d.canary_revision} to {d.stable}",
        failed=False,
    )


def _template_changed(d: Draft) -> bool:
    """React to the base's template moving under a release in progress."""
    revision = d.base.revision
    if revision == d.canary_revision:
        return False
    if d.is_paused and d.phase in IN_STEPS:
        return False
    if revision == d.stable:
        if d.phase == "RollingBack":
            return False
        enter_rollback(
            d, f"Deployment {d.base.name} is back on stable revision {d.stable}; rolling back",
            failed=False,
        )
        return True
    start_canary(d, revision, "CanaryRestarted")
    return True


def _take_intent(d: Draft) -> bool:
    """Act on the first applicable intent; drop the ones that cannot apply. True if one did."""
    present = requested(d.rollout, ANNOTATIONS)
    if "pause" in present and "resume" in present:
        for intent in ("pause", "resume"):
            d.act(ClearIntent(ANNOTATIONS[intent]))
    chosen = list(screen_intents(d, present, lambda i: check_intent(d.rollout, i), d.index,
                                 d.where))
    if not chosen:
        return False
    d.act(ClearIntent(ANNOTATIONS[chosen[0]]))
    _apply_intent(d, chosen[0], present[chosen[0]])
    return True


def _apply_intent(d: Draft, intent: Intent, value: str = "") -> None:
    if intent == "undo":
        _undo(d, value)
    elif intent == "abort":
        enter_rollback(d, f"abort requested: rolling back revision {d.canary_revision} to "
                          f"{d.stable}", failed=True, reason=ABORTED)
    elif intent == "promote":
        d.move(paused=False)
        d.event("FullPromotionRequested", f"promote --full requested at {d.where}: the "
                "remaining steps, their analysis and gates are skipped")
        enter_promotion(d)
    elif intent == "approve":
        d.move(state="StepReady", phase="Progressing")
        d.message = f"{d.where} approved"
        d.event("Approved", d.message)
    elif intent == "retry":
        assert d.failed is not None
        revision = d.failed.revision
        d.failed = None
        d.event("Retried", f"retry requested: revision {revision} may be released again")
        if d.base.revision == revision and not d.is_paused:
            start_canary(d, revision, "CanaryStarted")
        else:
            d.move()
            d.message = healthy_message(d)
    elif intent == "pause":
        d.move(paused=True)
        if d.phase in IN_STEPS:
            hold_base(d)
            d.move(phase="Paused")
            d.message = f"paused at {d.where}; resume to continue"
        d.event("Paused", f"{d.name} paused")
    else:
        d.move(paused=False)
        if d.phase == "Paused" and not d.awaiting_approval:
            d.move(phase="Progressing")
            d.message = f"resumed at {d.where}"
        d.event("Resumed", f"{d.name} resumed")
