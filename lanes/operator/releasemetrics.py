"""Release metrics: where every WorkloadRollout and LaneRelease stands, read from their status.

The controllers already store each release's state machine in status, so the metrics are
derived from it in this one place rather than set by the controllers as they go: a scrape
reads the bodies the operator's watches hold (`ReleaseCollector`), and the one counter, of
promotions and roll backs, counts the endings the watches bring (`ReleaseOutcomes`). The
shapes are the familiar ones: an info gauge with the phase as a label (Argo Rollouts'
`rollout_info`), weight, checks and metric values per release (Flagger's `flagger_canary_*`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import ValidationError

from lanes.api.lanerelease import LaneRelease
from lanes.api.workloadrollout import WorkloadRollout
from lanes.rollout.conditions import SUCCEEDED
from lanes.rollout.lanerelease import driven_rollouts, entry_weight
from lanes.rollout.traffic import step_in_force

WORKLOADROLLOUT = "WorkloadRollout"
LANERELEASE = "LaneRelease"
PROMOTED = "promoted"
ROLLED_BACK = "rolled_back"
FAILED = "failed"

Body = Mapping[str, Any]


@dataclass(frozen=True)
class MetricReading:
    """A metric's last value for one service, as the last check stored it."""

    service: str
    metric: str
    value: float | None
    in_range: bool


@dataclass(frozen=True)
class ReleaseReading:
    """What a scrape reports of one release, read from its body alone."""

    kind: str
    namespace: str
    name: str
    phase: str
    lane: str = ""
    paused: bool = False
    step: int = 0
    steps: int = 0
    weight: int = 0
    checks: int = 0
    failed_checks: int = 0
    metrics: tuple[MetricReading, ...] = field(default_factory=tuple)

    @property
    def key(self) -> tuple[str, str, str]:
        return self.kind, self.namespace, self.name


def _metadata(body: Body) -> tuple[str, str]:
    metadata = body.get("metadata") or {}
    return metadata.get("namespace") or "default", metadata.get("name", "")


def _readings(service: str, metrics: Iterable[Mapping[str, Any]]) -> list[MetricReading]:
    found = []
    for metric in metrics:
        value = metric.get("value")
        found.append(MetricReading(service, str(metric.get("name", "")),
                                   float(value) if isinstance(value, (int, float)) else None,
                                   bool(metric.get("ok"))))
    return found


def rollout_weight(body: Body, driven: bool = False) -> int:
    """The canary's share of untagged requests in force: the traffic of the step in force
    (what the routes carry); 0 before the first batch is ready, after the release, while a
    lane release drives the rollout (its entry weight decides then), or when the rollout does
    not parse."""
    if driven:
        return 0
    try:
        rollout = WorkloadRollout.model_validate(body)
    except ValidationError:
        return 0
    step = step_in_force(rollout)
    return step.weight if step is not None else 0


def read_rollout(body: Body, driven: bool = False) -> ReleaseReading:
    """A WorkloadRollout's reading: its phase, canary step, traffic weight and analysis;
    `driven` when a lane release drives it."""
    namespace, name = _metadata(body)
    spec, status = body.get("spec") or {}, body.get("status") or {}
    canary = status.get("canaryStatus") or {}
    analysis = status.get("analysis") or {}
    steps = ((spec.get("strategy") or {}).get("canary") or {}).get("steps") or []
    workload = (spec.get("workloadRef") or {}).get("name", "")
    return ReleaseReading(
        WORKLOADROLLOUT, namespace, name, status.get("phase") or "Initial",
        paused=bool(status.get("paused") or spec.get("paused")),
        step=int(canary.get("currentStepIndex") or 0), steps=len(steps) if isinstance(steps, list) else 0,
        weight=rollout_weight(body, driven),
        checks=int(analysis.get("checks") or 0), failed_checks=int(analysis.get("failedChecks") or 0),
        metrics=tuple(_readings(workload, analysis.get("metrics") or [])),
    )


def _lanerelease(body: Body) -> LaneRelease | None:
    try:
        return LaneRelease.model_validate(body)
    except ValidationError:
        return None


def read_lanerelease(body: Body) -> ReleaseReading:
    """A LaneRelease's reading: its phase, step, entry weight in force (what the gateway is
    told to route) and each service's metrics; no steps when its spec does not parse."""
    namespace, name = _metadata(body)
    spec, status = body.get("spec") or {}, body.get("status") or {}
    release = _lanerelease(body)
    metrics = [reading for service in status.get("services") or []
               for reading in _readings(str(service.get("service", "")), service.get("metrics") or [])]
    return ReleaseReading(
        LANERELEASE, namespace, name, status.get("phase") or "Initial",
        lane=(spec.get("swimLaneRef") or {}).get("name", ""),
        paused=bool(status.get("paused") or spec.get("paused")),
        step=int(status.get("currentStepIndex") or 0),
        steps=len(release.spec.all_steps) if release is not None else 0,
        weight=entry_weight(release) if release is not None else int(status.get("weight") or 0),
        checks=int(status.get("checks") or 0), failed_checks=int(status.get("failedChecks") or 0),
        metrics=tuple(metrics),
    )


ReadingCache = dict[tuple, ReleaseReading]
"""Readings by (kind, namespace, name, resourceVersion, driven): a body read once is not
parsed again at the next scrape while it stays the same."""


def read_releases(bodies: Iterable[tuple[str, Body]], cache: ReadingCache | None = None) -> list[ReleaseReading]:
    """Every release's reading; rollouts that a lane release drives report no traffic of their
    own. With a `cache`, unchanged bodies are not read again, and it keeps only this call's."""
    bodies = list(bodies)
    driven = {(_metadata(body)[0], name)
              for kind, body in bodies if kind == LANERELEASE and (release := _lanerelease(body)) is not None
              for name in driven_rollouts(release)}
    before = dict(cache or {})
    readings, kept = [], {}
    for kind, body in bodies:
        if kind not in (WORKLOADROLLOUT, LANERELEASE):
            continue
        is_driven = kind == WORKLOADROLLOUT and _metadata(body) in driven
        key = (kind, *_metadata(body), (body.get("metadata") or {}).get("resourceVersion"), is_driven)
        reading = before.get(key) if key[3] is not None else None
        if reading is None:
            reading = read_rollout(body, is_driven) if kind == WORKLOADROLLOUT else read_lanerelease(body)
        kept[key] = reading
        readings.append(reading)
    if cache is not None:
        cache.clear()
        cache.update(kept)
    return readings


@dataclass(frozen=True)
class Ending:
    """How a release ended, as its `Succeeded` condition says; `since` tells two endings with
    the same reason apart."""

    outcome: str
    reason: str
    since: str


def ending(kind: str, body: Body | None) -> Ending | None:
    """The ending a body's status records, or None while a release runs or before any.

    `Succeeded=True` is a promotion; `Succeeded=False` a roll back with its reason, except a
    WorkloadRollout left `Failed` (e.g. its progress deadline passed), which is a failure:
    nothing was rolled back.
    """
    if body is None:
        return None
    status = body.get("status") or {}
    found = next((c for c in status.get("conditions") or [] if c.get("type") == SUCCEEDED), None)
    if found is None or found.get("status") not in ("True", "False"):
        return None
    reason = str(found.get("reason") or "")
    if found.get("status") == "True":
        outcome = PROMOTED
    elif kind == WORKLOADROLLOUT and status.get("phase") == "Failed":
        outcome = FAILED
    else:
        outcome = ROLLED_BACK
    return Ending(outcome, reason, str(found.get("lastTransitionTime") or ""))


def new_ending(kind: str, old: Body | None, new: Body | None) -> Ending | None:
    """The ending one watch event brings: one `new` records and `old` did not.

    Without an `old` body (the operator's first sight of the object) nothing counts, so a
    restarted operator does not count again the releases that ended before it started.
    """
    if old is None:
        return None
    after = ending(kind, new)
    return after if after is not None and after != ending(kind, old) else None


class ReleaseOutcomes:
    """`lanes_release_outcomes_total`: promotions, roll backs and failures by reason."""

    def __init__(self, registry: CollectorRegistry):
        self.counter = Counter(
            "lanes_release_outcomes",
            "Releases ended, by kind, object, outcome (promoted, rolled_back, failed) and reason.",
            ["kind", "namespace", "name", "outcome", "reason"], registry=registry,
        )

    def observe(self, kind: str, old: Body | None, new: Body | None) -> None:
        """Count the ending a watch event brings, if it brings one."""
        found = new_ending(kind, old, new)
        if found is None or new is None:
            return
        namespace, name = _metadata(new)
        self.counter.labels(kind, namespace, name, found.outcome, found.reason).inc()


Source = Callable[[], Iterable[tuple[str, Body]]]
"""The bodies a scrape reads: (kind, body) pairs, as the watches hold them now."""

_LABELS = ["kind", "namespace", "name"]


def release_families(readings: Iterable[ReleaseReading]) -> list[Metric]:
    """The gauge families of a set of readings; pure, so the exposition is tested directly."""
    info = GaugeMetricFamily("lanes_release_info", "Every release, 1, with its phase and lane (Argo's rollout_info).",
                             labels=[*_LABELS, "phase", "lane"])
    paused = GaugeMetricFamily("lanes_release_paused", "1 while a release is paused.", labels=_LABELS)
    step = GaugeMetricFamily("lanes_release_step", "The step a release is at (1-based; 0 before the first).",
                             labels=_LABELS)
    steps = GaugeMetricFamily("lanes_release_steps", "How many steps a release has.", labels=_LABELS)
    weight = GaugeMetricFamily(
        "lanes_release_weight",
        "Percent of untagged requests the release sends to its canary (WorkloadRollout) or into its lane "
        "(LaneRelease: the entry weight).", labels=_LABELS)
    checks = GaugeMetricFamily("lanes_release_checks", "Analysis checks made in the current release.",
                               labels=_LABELS)
    failed = GaugeMetricFamily("lanes_release_failed_checks", "Failed analysis checks in the current release.",
                               labels=_LABELS)
    value = GaugeMetricFamily("lanes_release_metric_value",
                              "Each metric's last value, per service (absent when no value was found).",
                              labels=[*_LABELS, "service", "metric"])
    in_range = GaugeMetricFamily("lanes_release_metric_in_range",
                                 "1 when a metric's last value was in its range, else 0.",
                                 labels=[*_LABELS, "service", "metric"])
    for reading in sorted(readings, key=lambda r: r.key):
        labels = list(reading.key)
        info.add_metric([*labels, reading.phase, reading.lane], 1)
        paused.add_metric(labels, 1 if reading.paused else 0)
        step.add_metric(labels, reading.step)
        steps.add_metric(labels, reading.steps)
        weight.add_metric(labels, reading.weight)
        checks.add_metric(labels, reading.checks)
        failed.add_metric(labels, reading.failed_checks)
        for metric in reading.metrics:
            metric_labels = [*labels, metric.service, metric.metric]
            if metric.value is not None:
                value.add_metric(metric_labels, metric.value)
            in_range.add_metric(metric_labels, 1 if metric.in_range else 0)
    return [info, paused, step, steps, weight, checks, failed, value, in_range]


class ReleaseCollector(Collector):
    """Reads every release body at scrape time, so a gauge never outlives its object."""

    def __init__(self, source: Source):
        self.source = source
        self.cache: ReadingCache = {}

    def collect(self) -> Iterator[Metric]:
        yield from release_families(read_releases(self.source(), self.cache))

    def describe(self) -> Iterator[Metric]:
        # Describing by name only, so registering does not read the (still empty) source.
        yield from release_families([])
