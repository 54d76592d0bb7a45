"""How a release ends: promotion to the canary's revision, or roll back to the stable one,
then the release's post-rollout hooks.

Like the steps, each handler makes at most one transition; roll back restores the stable
template before it unpauses the base, so no running pod restarts.
"""

from __future__ import annotations

from typing import Any

from lanes.api.analysis import AnalysisStatus
from lanes.api.workloadrollout import FailedRevision

from .actions import LANE_RELEASE_ANNOTATION, DeleteCanary, RestoreBaseTemplate, UnpauseBase
from .checks import ANALYSIS_REASONS, PROGRESS_DEADLINE_EXCEEDED, failure_reason, failure_summary
from .draft import PROMOTED, Draft, rolled_back, succeeded_reason
from .hooks import answered, answers, failures, is_done, mark_done, names, release_hooks
from .status import parse_time, timestamp, utc

LANE_FAILED = "LaneReleaseFailed"
ABORTED = "Aborted"
"""The failed revision's reason when a person aborted its release."""

# Seconds the canary Deployment outlives the end of a release whose steps split untagged
# traffic: the routes stop sending untagged requests to the canary as the phase leaves the
# steps, and the proxies need a moment to take the new routes before the canary's pods go.
ROUTES_SETTLE_SECONDS = 2.0


def _routes_settled(d: Draft) -> bool:
    """Whether the canary may go: its release sent no untagged requests to it, or the phase
    that stopped them (Promoting, RollingBack) began `ROUTES_SETTLE_SECONDS` ago."""
    steps = d.rollout.spec.strategy.canary.steps
    if d.canary is None or not any(step.traffic or step.matches for step in steps):
        return True
    since = parse_time(d.last_update)
    left = ROUTES_SETTLE_SECONDS - ((utc(d.now) - since).total_seconds() if since else 0.0)
    if left > 0:
        d.wake(left)
        return False
    return True


def enter_promotion(d: Draft) -> None:
    """After the last step: let the base roll to the canary's revision."""
    d.move(phase="Promoting", state="Completed")
    if d.base.paused:
        d.act(UnpauseBase(d.base.name))
    d.message = f"promoting revision {d.canary_revision}: Deployment {d.base.name} rolls to it"
    d.event("Promoting", d.message)


def promote(d: Draft) -> None:
    """Wait for the base to run the new revision everywhere, then drop the canary."""
    base = d.base
    if base.paused:
        d.act(UnpauseBase(base.name))
    holder = d.rollout.metadata.annotations.get(LANE_RELEASE_ANNOTATION)
    if base.rolled_out and holder:
        d.message = (
            f"Deployment {base.name} runs revision {d.canary_revision}; canary kept until "
            f"lanerelease/{holder} has moved its lane's traffic off it"
        )
        return
    if base.rolled_out and not _routes_settled(d):
        d.message = (
            f"Deployment {base.name} runs revision {d.canary_revision}; canary kept until "
            "the routes have stopped sending untagged requests to it"
        )
        return
    if base.rolled_out:
        if d.canary is not None:
            d.act(DeleteCanary(d.canary.name))
        _settle(d, "Promoted", stable=d.canary_revision, replicas=0, outcome=PROMOTED)
        return
    d.message = (
        f"promoting revision {d.canary_revision}: Deployment {base.name} has "
        f"{base.updated_replicas}/{base.replicas} updated, "
        f"{base.available_replicas}/{base.replicas} available"
    )


def enter_rollback(d: Draft, message: str, failed: bool = True, reason: str | None = None) -> None:
    """Start rolling back: restore the stable template and drop the canary.

    A release that failed (its analysis, a webhook, its lane release's checks) records its
    revision, so the same template applied again is not released again; one undone by a person
    or whose template was set back to the stable revision by its owner did not fail.
    """
    if failed and d.canary_revision is not None:
        reason = reason or failure_reason(d.analysis) or LANE_FAILED
        d.failed = FailedRevision(revision=d.canary_revision, reason=reason, message=message,
                                  time=timestamp(d.now))
    d.move(phase="RollingBack")
    d.event("RollingBack", message)
    roll_back(d, finish=False)


def roll_back(d: Draft, finish: bool = True) -> None:
    """Bring the base back to the stable revision without restarting its running pods.

    The stable ReplicaSet's template is written back while the base is still paused, so the
    Deployment controller adopts that ReplicaSet as current; only once the restored template
    is observed is the base unpaused, and then it has nothing to roll. A canary that got
    untagged requests is deleted once the routes back to base have settled.
    """
    base, canary = d.base, d.canary
    d.replicas = 0
    if canary is not None and not _routes_settled(d):
        canary = None
    if base.revision != d.stable:
        stable = d.observed.replica_set_of(d.stable or "")
        if stable is not None:
            d.act(RestoreBaseTemplate(base.name, stable.deployment_template))
        if canary is not None:
            d.act(DeleteCanary(canary.name))
        d.message = (
            f"rolling back: restoring Deployment {base.name} to revision {d.stable}"
            if stable is not None
            else f"no ReplicaSet of Deployment {base.name} runs stable revision {d.stable}; "
            "restore its template by hand"
        )
        return
    if canary is not None:
        d.act(DeleteCanary(canary.name))
    if base.paused:
        d.act(UnpauseBase(base.name))
    if finish and not base.paused and base.rolled_out and d.canary is None:
        outcome = rolled_back(d.analysis, d.failed, d.canary_revision)
        _settle(d, "RolledBack", index=0, state=None, outcome=outcome)
        return
    d.message = (
        f"rolling back to revision {d.stable}: Deployment {base.name} has "
        f"{base.available_replicas}/{base.replicas} available"
    )


def _settle(d: Draft, reason: str, **changes: Any) -> None:
    """End the release: Healthy again, saying how it ended."""
    _ended(d)
    d.move(phase="Healthy", **changes)
    d.message = healthy_message(d)
    d.event(reason, d.message)


def _ended(d: Draft) -> None:
    """A release that ends with post-rollout hooks keeps an analysis status to record the
    call in, even if it never made a check."""
    if d.analysis is None and release_hooks(d.rollout, "post-rollout"):
        d.analysis = AnalysisStatus()


def post_rollout(d: Draft) -> bool:
    """Call the release's post-rollout hooks once after it ended; True while asking for them.

    Their answers are only reported (an event each way); the outcome stays as it is.
    """
    hooks = release_hooks(d.rollout, "post-rollout")
    if not hooks or d.analysis is None or is_done(d.analysis, "post-rollout"):
        return False
    if not answered(d.observed.hooks, "post-rollout"):
        ended = d.outcome[1][1] if d.outcome else succeeded_reason(d.rollout)
        d.call(hooks, "Succeeded" if ended == "Promoted" else "Failed")
        return True
    results = answers(d.observed.hooks, hooks)
    d.analysis = mark_done(d.analysis, "post-rollout")
    if all(r.ok for r in results):
        d.event("PostRolloutCalled", f"post-rollout webhook(s) {names(hooks)} answered 2xx")
    else:
        d.event("PostRolloutFailed", f"post-rollout {failures(results)}", warning=True)
    return False


def healthy_message(d: Draft) -> str:
    """What a settled rollout says, from how its last release ended."""
    ended = d.outcome[1][1] if d.outcome else succeeded_reason(d.rollout)
    if ended == "Promoted":
        return f"revision {d.stable} promoted; Deployment {d.base.name} runs it"
    if ended in ANALYSIS_REASONS and d.analysis is not None:
        return (
            f"revision {d.canary_revision} rolled back: {failure_summary(d.analysis)}; "
            f"Deployment {d.base.name} runs revision {d.stable}"
        )
    if ended == PROGRESS_DEADLINE_EXCEEDED:
        return (
            f"revision {d.canary_revision} rolled back: its canary pods were not available "
            f"within the progress deadline; Deployment {d.base.name} runs revision {d.stable}"
        )
    if ended == "RolledBack":
        return (
            f"revision {d.canary_revision} rolled back; "
            f"Deployment {d.base.name} runs revision {d.stable}"
        )
    return f"Deployment {d.base.name} runs revision {d.stable}"
