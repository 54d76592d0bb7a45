"""Metric analysis within a release's steps: which analysis a step is under, how a step ends,
and what a judged check leaves in the status. Pure; `lanes.analysis.verdict` judges the check.

A step is under its own `analysis` if it has one, else the release's
(`strategy.canary.analysis`), else none. Under analysis a step's pause means:

- absent: the step continues on its own once a check at this step passes;
- `{}`: it still waits for approval, and approve is accepted only once a check has passed;
- `{duration}`: it continues once the duration is over and a check at this step has passed.

Without analysis an absent pause waits for approval, exactly as before analysis existed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from lanes.analysis.verdict import Reading
from lanes.api.analysis import Analysis, AnalysisStatus
from lanes.api.workloadrollout import WorkloadRollout

from .status import current_step, parse_time

ANALYSIS_FAILED = "AnalysisFailed"
ANALYSIS_UNAVAILABLE = "AnalysisUnavailable"
PRE_ROLLOUT_FAILED = "PreRolloutFailed"
ROLLED_BACK_BY_WEBHOOK = "RolledBackByWebhook"
ANALYSIS_REASONS = (ANALYSIS_FAILED, ANALYSIS_UNAVAILABLE, PRE_ROLLOUT_FAILED, ROLLED_BACK_BY_WEBHOOK)
PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"


def analysis_at(rollout: WorkloadRollout, index: int) -> Analysis | None:
    """The analysis in force at step `index`: the step's own, else the release's, else None."""
    step = current_step(rollout, index)
    return step.analysis or rollout.spec.strategy.canary.analysis


def waits_for_approval(rollout: WorkloadRollout, index: int) -> bool:
    """Whether step `index`, once its pods are ready, waits for approve rather than a timer
    or a passing check."""
    step = current_step(rollout, index)
    if step.pause is None:
        return analysis_at(rollout, index) is None
    return step.pause.duration is None


def passed_at(status: AnalysisStatus | None, index: int) -> bool:
    """Whether the latest check was made at step `index` and passed."""
    return status is not None and status.step == index and status.phase == "Passed"


def next_check_in(
    analysis: Analysis, status: AnalysisStatus | None, now: datetime,
    since: datetime | None = None,
) -> float:
    """Seconds until the next check is due (0 when it is due now).

    A check is due an `interval` after the later of the last check and `since`, when the step
    started (its canary pods became ready): the first check of a step waits a whole interval,
    so its window holds the step's traffic rather than finding no values yet.
    """
    last = parse_time(status.last_check_time) if status is not None else None
    starts = [t for t in (last, since) if t is not None]
    if not starts:
        return 0.0
    due_at = max(starts) + timedelta(seconds=analysis.interval_seconds)
    return max((due_at - now).total_seconds(), 0.0)


def complete_readings(analysis: Analysis, readings: Mapping[str, Reading]) -> dict[str, Reading]:
    """One reading per metric of `analysis`; a metric the operator did not read is a failed
    query rather than a crash of the reconcile."""
    return {
        m.name: readings.get(m.name) or Reading(m.name, error="no reading was supplied")
        for m in analysis.metrics
    }


def failure_reason(status: AnalysisStatus | None) -> str | None:
    """`AnalysisFailed` or `AnalysisUnavailable` when the analysis ended the release, the
    status's own `reason` when a webhook did (`PreRolloutFailed`, `RolledBackByWebhook`), else
    None.

    A failed analysis that still records when Prometheus stopped answering failed on that:
    any check that was judged on values starts a status without `unavailableSince`.
    """
    if status is None or status.phase != "Failed":
        return None
    if status.reason:
        return status.reason
    return ANALYSIS_UNAVAILABLE if status.unavailable_since else ANALYSIS_FAILED


def failure_summary(status: AnalysisStatus) -> str:
    """Why the analysis rolled the release back, naming each failing metric, value and range."""
    if status.unavailable_since or status.reason:
        return status.message or status.reason or "Prometheus unavailable"
    failing = [f"{m.message} (range {m.range})" for m in status.metrics if not m.ok]
    if not failing:
        return status.message or "analysis failed"
    return f"analysis failed {status.failed_checks} check(s): {'; '.join(failing)}"


def progress_note(status: AnalysisStatus | None, index: int) -> str:
    """What the analysis of step `index` says so far, for the rollout's message."""
    if status is None or status.step != index:
        return "waiting for the first analysis check"
    return status.message or f"analysis {status.phase.lower()}"
