"""One analysis check: (analysis, its status, what each metric and webhook read, now) -> Judgement.

Values in, verdict out; querying Prometheus and calling webhooks happen at the edges, and the
rollout machine acts on the verdict. The rules:

- A check is due once `interval` has passed since the last one (the first is due at once here;
  the rollout machine also waits an `interval` from the step's start before a step's first
  check, `lanes.rollout.checks.next_check_in`).
- Every metric must have a value within its range, and every `rollout` webhook must succeed; a
  dry-run metric is judged and reported the same, but never fails a check.
  A value outside the range, a value nobody classified (None, NaN) or a failed query or webhook
  is a failed check; the release does not advance on it. When failed checks reach `threshold`,
  the verdict is to roll back.
- Prometheus not answering is not a verdict on the canary: the check holds (no advance, no
  failed check) until it has been unavailable for `threshold` x `interval`, the time in which
  that many failed checks would have rolled back, and then rolls back. Flagger instead counts
  each unanswered query as a failed check.
- **No data** (Prometheus answers, but a series that had values has no samples in the window:
  a scrape gap, Prometheus restarted) is held the same way, on the same clock and deadline
  (`unavailableSince`, with `noData`): the canary is not to blame for a gap in the scrapes.
- **No traffic** (no request reached the canary in the window: 0/0, or no series of it yet)
  holds too, with the reason in the status and a `NoTraffic` event, for up to
  `threshold` x `interval` from the first such check (`noTrafficSince`); the step cannot advance
  meanwhile, since only a passing check moves it. Past that deadline each check without traffic
  is a failed check (`no traffic`), so a canary no request ever reaches still rolls back.
  Flagger and Argo count "no values" as a failure at once, which fails canaries whose traffic
  has not arrived yet (flagger#518, flagger#1689).
- Failed checks are counted for the whole release, as Flagger counts them: a passing check
  does not reset them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from lanes.api.analysis import Analysis, AnalysisStatus, Metric, MetricStatus

Verdict = Literal["wait", "pass", "halt", "hold", "rollback"]
UNITS = {"request-success-rate": "%", "request-duration": "ms"}


@dataclass(frozen=True)
class Silence:
    """A query answered without a value, and why.

    `no-traffic`: no request reached the canary in the window (a rate over no requests, 0/0,
    or no series of the canary at all yet). `no-data`: the query had values before but its
    series have no samples in the window (a scrape gap, an outage of Prometheus).
    """

    kind: Literal["no-traffic", "no-data"]
    detail: str


@dataclass(frozen=True)
class Reading:
    """What one metric read: a value, None for no value, or why it could not be read.

    `unavailable` means Prometheus did not answer (the check holds); `error` means it answered
    with an error for this query (a failed check); `no_data` and `no_traffic` (see `Silence`)
    say why there is no value (the check holds, `no_traffic` up to its deadline).
    """

    metric: str
    value: float | None = None
    unavailable: str | None = None
    error: str | None = None
    no_traffic: str | None = None
    no_data: str | None = None

    @classmethod
    def of(cls, metric: str, answer: float | Silence | None) -> Reading:
        """The reading of a provider's answer: a value, or a classified silence."""
        if isinstance(answer, Silence):
            if answer.kind == "no-data":
                return cls(metric, no_data=answer.detail)
            return cls(metric, no_traffic=answer.detail)
        return cls(metric, value=answer)


@dataclass(frozen=True)
class HookResult:
    """The outcome of one webhook call; `type` is the hook's (`rollout`, `rollback`, ...)."""

    name: str
    ok: bool
    message: str = ""
    type: str = "rollout"


@dataclass(frozen=True)
class Event:
    """An event for people, worded like Flagger's."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Judgement:
    """The verdict of a check, the analysis status to store, and the events to post."""

    verdict: Verdict
    status: AnalysisStatus
    events: tuple[Event, ...] = field(default=())

    @property
    def message(self) -> str:
        return self.status.message or ""


def due(analysis: Analysis, status: AnalysisStatus | None, now: datetime) -> bool:
    """Whether a check is due: none made yet, or `interval` passed since the last."""
    if status is None or status.last_check_time is None:
        return True
    last = datetime.fromisoformat(status.last_check_time)
    return now - last >= timedelta(seconds=analysis.interval_seconds)


def judge(
    analysis: Analysis,
    status: AnalysisStatus | None,
    readings: Mapping[str, Reading],
    now: datetime,
    hooks: Sequence[HookResult] = (),
) -> Judgement:
    """Judge one check made at `now`; `readings` has one entry per metric of `analysis`.

    Raises:
        KeyError: when a metric of `analysis` has no reading.
    """
    before = status or AnalysisStatus()
    if not due(analysis, before, now):
        return Judgement("wait", before)
    stamp = now.isoformat()
    read = [readings[m.name] for m in analysis.metrics]
    unavailable = [r for m, r in zip(analysis.metrics, read, strict=True)
                   if r.unavailable is not None and not m.dry_run]
    if unavailable:
        return _hold(analysis, before, unavailable[0], now)
    gaps = [r for r in read if r.no_data is not None]
    if gaps:
        return _hold(analysis, before, gaps[0], now)
    quiet = [r for r in read if r.no_traffic is not None]
    if quiet:
        held = _hold_for_traffic(analysis, before, quiet[0], now)
        if held is not None:
            return held
    quiet_since = (before.no_traffic_since or stamp) if quiet else None
    metrics = [_metric_status(m, r) for m, r in zip(analysis.metrics, read, strict=True)]
    failures = [m.message for m in metrics if not m.ok and not m.dry_run]
    failures += [
        f"webhook {h.name}: {h.message or 'failed'}"
        for h in hooks
        if not h.ok and h.type == "rollout"
    ]
    checks = before.checks + 1
    if not failures:
        summary = ", ".join(m.message for m in metrics) or "no metrics"
        passed = AnalysisStatus(
            phase="Passed", failed_checks=before.failed_checks, checks=checks,
            last_check_time=stamp, metrics=metrics, message=f"check passed: {summary}",
            no_traffic_since=quiet_since,
        )
        return Judgement("pass", passed)
    failed = before.failed_checks + 1
    reason = "; ".join(failures)
    if failed >= analysis.threshold:
        message = f"Rolling back: failed checks threshold reached {failed} ({reason})"
        verdict: Verdict = "rollback"
        phase = "Failed"
        event = Event("Warning", "AnalysisFailed", message)
    else:
        message = f"Halt advancement: {reason} (failed checks {failed}/{analysis.threshold})"
        verdict, phase = "halt", "Halted"
        event = Event("Warning", "HaltAdvancement", message)
    next_status = AnalysisStatus(
        phase=phase, failed_checks=failed, checks=checks, last_check_time=stamp,
        metrics=metrics, message=message, no_traffic_since=quiet_since,
    )
    return Judgement(verdict, next_status, (event,))


def unavailable_deadline(analysis: Analysis) -> float:
    """Seconds Prometheus may stay unavailable before the release rolls back."""
    return analysis.threshold * analysis.interval_seconds


def no_traffic_deadline(analysis: Analysis) -> float:
    """Seconds the checks may find no traffic to the canary before each counts as failed."""
    return analysis.threshold * analysis.interval_seconds


def _hold_for_traffic(
    analysis: Analysis, before: AnalysisStatus, reading: Reading, now: datetime
) -> Judgement | None:
    """Hold a check that found no traffic, or None once past the deadline (a failed check)."""
    since = before.no_traffic_since or now.isoformat()
    waited = (now - datetime.fromisoformat(since)).total_seconds()
    deadline = no_traffic_deadline(analysis)
    if waited >= deadline:
        return None
    message = (
        f"Holding: no traffic to the canary in the {analysis.interval} window "
        f"({reading.metric}: {reading.no_traffic}); no advance and no failed check, checks "
        f"without traffic fail after {deadline:g}s"
    )
    status = before.model_copy(update={
        "phase": "Holding", "no_traffic_since": since, "unavailable_since": None,
        "no_data": False, "last_check_time": now.isoformat(), "message": message,
    })
    events = () if before.no_traffic_since else (Event("Warning", "NoTraffic", message),)
    return Judgement("hold", status, events)


def _hold(analysis: Analysis, before: AnalysisStatus, reading: Reading, now: datetime) -> Judgement:
    """Hold a check Prometheus could not answer, or answered with no data, up to the
    deadline; past it, roll back."""
    if reading.no_data is not None:
        return _hold_for_data(analysis, before, reading, now)
    since = before.unavailable_since or now.isoformat()
    waited = (now - datetime.fromisoformat(since)).total_seconds()
    deadline = unavailable_deadline(analysis)
    if waited >= deadline:
        message = (
            f"Rolling back: Prometheus unavailable for {waited:.0f}s, past the {deadline:g}s "
            f"deadline (threshold x interval): {reading.unavailable}"
        )
        status = _unavailable(before, "Failed", since, now, message)
        return Judgement("rollback", status, (Event("Warning", "AnalysisUnavailable", message),))
    message = (
        f"Holding: Prometheus unavailable ({reading.unavailable}); no advance and no failed "
        f"check, rolls back after {deadline:g}s unavailable"
    )
    status = _unavailable(before, "Holding", since, now, message)
    entering = not before.unavailable_since or before.no_data
    events = (Event("Warning", "MetricsUnavailable", message),) if entering else ()
    return Judgement("hold", status, events)


def _hold_for_data(
    analysis: Analysis, before: AnalysisStatus, reading: Reading, now: datetime
) -> Judgement:
    since = before.unavailable_since or now.isoformat()
    waited = (now - datetime.fromisoformat(since)).total_seconds()
    deadline = unavailable_deadline(analysis)
    if waited >= deadline:
        message = (
            f"Rolling back: no data for {waited:.0f}s, past the {deadline:g}s deadline "
            f"(threshold x interval): {reading.metric}: {reading.no_data}"
        )
        status = _unavailable(before, "Failed", since, now, message, no_data=True)
        return Judgement("rollback", status, (Event("Warning", "AnalysisUnavailable", message),))
    message = (
        f"Holding: no data for {reading.metric} ({reading.no_data}); no advance and no failed "
        f"check, rolls back after {deadline:g}s without data"
    )
    status = _unavailable(before, "Holding", since, now, message, no_data=True)
    entering = not before.unavailable_since or not before.no_data
    return Judgement("hold", status, (Event("Warning", "NoData", message),) if entering else ())


def _unavailable(
    before: AnalysisStatus, phase: str, since: str, now: datetime, message: str,
    no_data: bool = False,
) -> AnalysisStatus:
    return before.model_copy(update={
        "phase": phase, "unavailable_since": since, "last_check_time": now.isoformat(),
        "message": message, "no_data": no_data,
    })


def _metric_status(metric: Metric, reading: Reading) -> MetricStatus:
    """The metric's reading judged against its range; a dry-run metric's message says so."""
    status = _judged(metric, reading)
    if not metric.dry_run:
        return status
    return status.model_copy(update={"dry_run": True, "message": f"{status.message} (dry run)"})


def _judged(metric: Metric, reading: Reading) -> MetricStatus:
    bounds = metric.threshold_range
    unit = UNITS.get(metric.name, "")
    common = {"name": metric.name, "range": bounds.describe()}
    if reading.error is not None:
        return MetricStatus(**common, message=f"{metric.name}: query failed: {reading.error}")
    if reading.no_traffic is not None:
        return MetricStatus(**common, message=f"{metric.name}: no traffic ({reading.no_traffic})")
    value = reading.value
    if value is None or value != value:
        return MetricStatus(**common, message=f"{metric.name}: no values found")
    shown = f"{metric.name} {value:.4g}{unit}"
    if bounds.min is not None and value < bounds.min:
        return MetricStatus(**common, value=value, message=f"{shown} < {bounds.min:g}{unit}")
    if bounds.max is not None and value > bounds.max:
        return MetricStatus(**common, value=value, message=f"{shown} > {bounds.max:g}{unit}")
    return MetricStatus(**common, value=value, ok=True, message=shown)


def metric_interval(analysis: Analysis, metric: Metric) -> str:
    """The range a metric's query covers: its own interval, else the analysis interval."""
    return metric.interval or analysis.interval

