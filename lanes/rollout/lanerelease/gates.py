"""The gates and checks of a lane release: its webhooks (pre-rollout, rollout, rollback,
confirm-promotion, post-rollout) and the lane-wide analysis check, judged over every member.

The rules shared with a WorkloadRollout are the engine's (`lanes.rollout.engine`); what is
the lane's own is that a check judges every member's service on its lane subset, and fails
for the lane when any member's does.
"""

from __future__ import annotations

import hashlib

from lanes.analysis.verdict import judge
from lanes.api.analysis import Analysis, AnalysisStatus
from lanes.api.lanerelease import LaneReleaseStatus, ServiceCheck

from ..checks import (
    PRE_ROLLOUT_FAILED,
    ROLLED_BACK_BY_WEBHOOK,
    complete_readings,
    next_check_in,
)
from ..engine import check_due, look_at_gate, rollback_fired
from ..hooks import answers, failures, hooks_of, names
from .unit import ANALYSIS_FAILED, ANALYSIS_UNAVAILABLE, ReleaseDraft, enter_rollback


def release_checksum(status: LaneReleaseStatus | None) -> str:
    """The `checksum` of the release's webhook payloads: one per set of member revisions."""
    members = sorted(f"{m.name}={m.revision or ''}" for m in (status.rollouts if status else ()))
    return hashlib.sha256(",".join(members).encode()).hexdigest()[:16] if members else ""


def flagger_phase(status: LaneReleaseStatus | None) -> str:
    """The phase a webhook payload carries, in Flagger's words, for a release's status."""
    phase = status.phase if status is not None else "Initial"
    return {"Initial": "Initializing", "Waiting": "Initializing", "Paused": "Progressing",
            "RollingBack": "Failed"}.get(phase, phase)


def under_analysis(analysis: Analysis | None) -> bool:
    """Whether an analysis makes checks: it has metrics, or `rollout` or `rollback` hooks."""
    return analysis is not None and (
        bool(analysis.metrics) or bool(hooks_of(analysis, "rollout"))
        or bool(hooks_of(analysis, "rollback"))
    )


def pre_rollout(d: ReleaseDraft) -> bool:
    """Call the `pre-rollout` hooks before any traffic enters the lane. True once they passed
    (or there are none); a failure rolls the release back with the entry weight still 0."""
    hooks = d.hooks("pre-rollout")
    if not hooks or d.done("pre-rollout"):
        return True
    results = d.answers(hooks)
    if results is None:
        d.call(hooks, "Initializing")
        d.say(f"calling pre-rollout webhook(s) {names(hooks)} before lane {d.lane} gets traffic")
        return False
    d.mark_done("pre-rollout")
    if all(r.ok for r in results):
        d.event("PreRollout", f"{d.name}: pre-rollout webhook(s) {names(hooks)} passed")
        return True
    enter_rollback(d, PRE_ROLLOUT_FAILED,
                    f"Rolling back lane {d.lane} before any traffic entered it: pre-rollout "
                    f"{failures(results)}")
    return False


def check(d: ReleaseDraft, analysis: Analysis) -> bool:
    """Make or ask for the check due at this step. True when the step's check has passed."""
    interval = analysis.interval_seconds
    due_in = next_check_in(analysis, AnalysisStatus(last_check_time=d.status.last_check_time),
                           d.now)
    hooks = d.hooks("rollout") + d.hooks("rollback")
    if not check_due(d, analysis, due_in, hooks, flagger_phase(d.status)):
        return d.check is None and d.status.step_passed
    hook = rollback_fired(d.observed.hooks, analysis)
    if hook is not None:
        d.move(checks=d.status.checks + 1, last_check_time=d.now.isoformat())
        enter_rollback(d, ROLLED_BACK_BY_WEBHOOK,
                        f"Rolling back lane {d.lane}: rollback webhook {hook.name} asked to roll "
                        f"back ({hook.message or '2xx'})")
        return False
    before = d.status
    verdict, services, lane_status, failures = judge_lane(d, analysis)
    hooks = [r for r in answers(d.observed.hooks, d.hooks("rollout")) if not r.ok]
    if hooks:
        failures = failures + [f"webhook {r.name}: {r.message or 'failed'}" for r in hooks]
        if verdict not in ("halt", "rollback"):
            failed = lane_status.failed_checks + 1
            verdict = "rollback" if failed >= analysis.threshold else "halt"
            lane_status = lane_status.model_copy(update={
                "failed_checks": failed, "phase": "Failed" if verdict == "rollback" else "Halted",
                "checks": max(lane_status.checks, d.status.checks + 1),
                "last_check_time": d.now.isoformat(),
            })
    index, count = d.status.current_step_index, len(d.steps)
    d.move(
        checks=lane_status.checks, failed_checks=lane_status.failed_checks,
        last_check_time=lane_status.last_check_time,
        unavailable_since=lane_status.unavailable_since, no_data=lane_status.no_data,
        no_traffic_since=lane_status.no_traffic_since, analysis_phase=lane_status.phase,
        services=services, check_step=index,
    )
    d.requeue = interval
    if verdict == "pass":
        d.move(step_passed=True)
        summary = "; ".join(
            f"{s.service}: " + ", ".join(m.message for m in s.metrics) for s in services
        )
        d.say(f"step {index}/{count}: check passed ({summary})")
        return True
    if verdict == "hold":
        message = f"step {index}/{count}: {lane_status.message}"
        if d.status.message != message and _entering_hold(before, lane_status):
            d.event(_HOLD_REASON[_hold_kind(lane_status)], f"{d.name}: {lane_status.message}",
                    warning=True)
        d.say(message)
        return False
    said = "; ".join(failures)
    threshold = analysis.threshold
    if verdict == "rollback":
        reason = ANALYSIS_UNAVAILABLE if lane_status.unavailable_since and not failures \
            else ANALYSIS_FAILED
        detail = said or lane_status.message or ""
        enter_rollback(d, reason, f"Rolling back lane {d.lane}: failed checks threshold "
                                   f"reached {lane_status.failed_checks}/{threshold} ({detail})"
                        if failures else f"Rolling back lane {d.lane}: {detail}")
        return False
    d.say(f"step {index}/{count}: halt advancement: {said} (failed checks "
          f"{lane_status.failed_checks}/{threshold})")
    for failure in failures:
        d.event("HaltAdvancement", f"Halt {d.name} advancement: {failure} (failed checks "
                                   f"{lane_status.failed_checks}/{threshold})", warning=True)
    return False


_SEVERITY = {"wait": 0, "pass": 1, "hold": 2, "halt": 3, "rollback": 4}
_HOLD_REASON = {"unavailable": "MetricsUnavailable", "no-data": "NoData", "none": "Holding",
                "no-traffic": "NoTraffic"}


def _hold_kind(status: AnalysisStatus | LaneReleaseStatus) -> str:
    if status.unavailable_since is not None:
        return "no-data" if status.no_data else "unavailable"
    return "no-traffic" if status.no_traffic_since is not None else "none"


def _entering_hold(before: LaneReleaseStatus, after: AnalysisStatus) -> bool:
    """Whether the lane's check holds for another reason than the last one did: an event
    is posted once per hold, not every check."""
    return before.analysis_phase != "Holding" or _hold_kind(before) != _hold_kind(after)


def judge_lane(
    d: ReleaseDraft, analysis: Analysis
) -> tuple[str, list[ServiceCheck], AnalysisStatus, list[str]]:
    """Judge every member's readings as one check of the lane.

    Each member is judged by `judge` from the lane's own counts, so a failure of any one is
    the lane's failed check (counted once), the threshold is the lane's, and the lane's
    verdict is the most severe of its members'.
    """
    before = AnalysisStatus(
        phase="Waiting", failed_checks=d.status.failed_checks, checks=d.status.checks,
        last_check_time=d.status.last_check_time, unavailable_since=d.status.unavailable_since,
        no_data=d.status.no_data, no_traffic_since=d.status.no_traffic_since,
    )
    readings = d.observed.readings or {}
    services, failures = [], []
    worst = None
    for rollout in d.members:
        name = rollout.metadata.name
        service = d.service_of(rollout)
        judgement = judge(analysis, before, complete_readings(analysis, readings.get(name, {})),
                          d.now)
        metrics = list(judgement.status.metrics)
        services.append(ServiceCheck(service=service, rollout=name,
                                     ok=judgement.verdict == "pass", metrics=metrics))
        failures += [f"{service}: {m.message} (range {m.range})" for m in metrics if not m.ok]
        if worst is None or _SEVERITY[judgement.verdict] > _SEVERITY[worst.verdict]:
            worst = judgement
    assert worst is not None
    return worst.verdict, services, worst.status, failures


def confirm_promotion(d: ReleaseDraft) -> bool:
    """Ask the `confirm-promotion` gate before promoting; True once every hook said 2xx. A
    closed gate is asked again every `interval`, the lane holding its last entry weight."""
    hooks = d.hooks("confirm-promotion")
    if not hooks or d.done("confirm-promotion"):
        return True
    analysis = d.release.spec.analysis
    assert analysis is not None
    results = look_at_gate(d, hooks, "Progressing", d.status.last_gate_time,
                           analysis.interval_seconds, 0.0)
    if results is None:
        return False
    if all(r.ok for r in results):
        d.mark_done("confirm-promotion")
        return True
    d.move(last_gate_time=d.now.isoformat())
    message = (f"{d.name}: confirm-promotion gate closed, promotion of lane {d.lane} waits "
               f"({failures(results)})")
    if d.status.message != message:
        d.event("WaitingForPromotion", message)
    d.say(message)
    d.requeue = analysis.interval_seconds
    return False


def end(d: ReleaseDraft, phase: str, reason: str | None, message: str) -> None:
    """End the release (`Succeeded` or `Failed`), calling its post-rollout hooks once; their
    answer is only reported."""
    hooks = d.hooks("post-rollout") if not d.done("post-rollout") else ()
    results = d.answers(hooks)
    if hooks and results is None:
        d.call(hooks, phase)
    d.move(phase=phase, weight=0, reason=reason)
    d.say(message)
    d.event("Succeeded" if phase == "Succeeded" else "RolledBack", message,
            warning=phase != "Succeeded")
    if results is not None:
        d.mark_done("post-rollout")
        bad = failures(results)
        d.event("PostRollout", f"{d.name}: post-rollout webhook(s) {names(hooks)} "
                               + (f"failed: {bad}" if bad else "passed"), warning=bool(bad))
