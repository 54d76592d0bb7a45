"""The SwimLaneGroup controller: one group's reconcile, in the controller shape's steps.

Read a snapshot of the watches, finalize, observe which groups hold the shared services, plan
(parse, validate, render: pure), sync the generated objects, write status and events. The
steps run in a worker thread, so blocking API calls never stall kopf's event loop, and one
group never runs twice at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace

from lanes.kube.apply import ApplyReport, delete_owned, list_owned, sync_objects
from lanes.kube.kinds import GENERATED, SWIMLANE, SWIMLANEGROUP, Kind
from lanes.kube.lanesapi import FINALIZER, LanesApi, now
from lanes.kube.objects import Objects, error_message
from lanes.kube.ownership import foreign_routes, generated_by_any, owner_among, owners
from lanes.render import TraceAffinityModule
from lanes.render.names import fqdn
from lanes.render.observe import PodView, lane_services

from .conditions import (
    DEGRADED,
    SERVICES_NOT_FOUND,
    group_status,
    lane_status,
    orphan_lane_status,
    same_status,
)
from .controller import Controller, Done
from .metrics import Metrics
from .plan import GroupPlan, Inputs, listed_elsewhere, plan_group, service_keys

log = logging.getLogger("lanes.operator")
tracer = trace.get_tracer("lanes.operator")


@dataclass(frozen=True)
class Snapshot:
    """What the watches hold for one group when its reconcile starts; `others` are the other
    groups sharing a service with it, which may hold some of its services."""

    name: str
    group: Mapping[str, Any] | None
    lanes: Sequence[Mapping[str, Any]] = ()
    services: Mapping[str, Mapping[str, str] | None] = field(default_factory=dict)
    pods: Sequence[PodView] = ()
    others: Sequence[Mapping[str, Any]] = ()
    rollouts: Sequence[Mapping[str, Any]] = ()
    releases: Sequence[Mapping[str, Any]] = ()


@dataclass
class Outcome:
    """How a reconcile ended, for metrics, spans and tests."""

    result: str
    writes: int = 0
    report: ApplyReport | None = None
    plan: GroupPlan | None = None
    # What the installed CRDs drop of the desired objects, by object.
    dropped: dict[str, list[str]] = field(default_factory=dict)


def fingerprint(objects: Sequence[dict]) -> str:
    """A digest of desired objects, to skip re-reading live ones when nothing changed."""
    return hashlib.sha256(json.dumps(objects, sort_keys=True).encode()).hexdigest()


@dataclass
class GroupRun:
    """One reconcile of one group as it goes: what it read, and what it wrote so far."""

    snap: Snapshot
    force: bool
    writes: int = 0
    outcome: Outcome | None = None


class GroupController(Controller[GroupRun, GroupRun, Inputs, GroupPlan]):
    """Reconciles groups; remembers what it put in force to avoid needless reads and writes.

    `snapshot` takes a group's view of the watches in the event loop (the runtime's stores).
    """

    def __init__(
        self,
        objects: Objects,
        lanes_api: LanesApi,
        metrics: Metrics,
        clock: Callable[[], str] = now,
        trace_affinity: TraceAffinityModule | None = None,
        *,
        snapshot: Callable[[str], Snapshot] | None = None,
        workers: int = 4,
        debounce: float = 0.02,
    ):
        super().__init__(workers=workers, debounce=debounce, describe=error_message)
        self.snapshot = snapshot
        self.trace_affinity = trace_affinity
        self.objects = objects
        self.lanes_api = lanes_api
        self.metrics = metrics
        self.clock = clock
        self._in_force: dict[str, tuple[str, dict[str, list[str]]]] = {}
        # Invalidations so far, in all and per group: a reconcile that overlapped one must not
        # record what it put in force, since it may have read the live objects before they
        # changed (a generated object deleted while the reconcile ran).
        self._cleared = 0
        self._invalidated: dict[str, int] = {}
        self._status_written: dict[tuple[str, str], tuple[str | None, dict]] = {}
        self._lock = threading.Lock()

    def forget(self, name: str) -> None:
        """Drop what is remembered of a group that is gone."""
        self.invalidate(name)
        with self._lock:
            self._invalidated.pop(name, None)
            self._status_written.pop((SWIMLANEGROUP.plural, name), None)
        self.metrics.forget_group(name)

    def invalidate(self, name: str | None = None) -> None:
        """Forget what is in force for a group (all when None): live objects may have changed."""
        with self._lock:
            if name is None:
                self._in_force.clear()
                self._cleared += 1
            else:
                self._in_force.pop(name, None)
                self._invalidated[name] = self._invalidated.get(name, 0) + 1

    def _epoch(self, name: str) -> tuple[int, int]:
        """How often `name` was invalidated, alone and with every group (call under the lock)."""
        return self._invalidated.get(name, 0), self._cleared

    def prepare(self, key: str) -> Snapshot:
        """The group's snapshot, taken in the event loop that owns the stores."""
        assert self.snapshot is not None
        return self.snapshot(key)

    def run(self, prepared: Any, force: bool) -> float | None:
        """One reconcile (see `reconcile`); groups are never requeued on a timer."""
        self.reconcile(prepared, force)
        return None

    def reconcile(self, snap: Snapshot, force: bool = False) -> Outcome:
        """Reconcile one group, inside a span, recording metrics.

        Raises:
            Exception: an API error, after status says so; the scheduler retries.
        """
        started = time.monotonic()
        run = GroupRun(snap, force)
        with tracer.start_as_current_span("lanes.reconcile", attributes={"lanes.group": snap.name}) as span:
            try:
                self.steps(run, force)
            except Exception as error:
                self.invalidate(snap.name)
                self.metrics.errors.inc()
                self.metrics.reconciles.labels("error").inc()
                span.record_exception(error)
                span.set_status(trace.Status(trace.StatusCode.ERROR, str(error)))
                raise
            finally:
                self.metrics.duration.observe(time.monotonic() - started)
            outcome = run.outcome
            assert outcome is not None
            span.set_attribute("lanes.result", outcome.result)
            span.set_attribute("lanes.writes", outcome.writes)
        self.metrics.reconciles.labels(outcome.result).inc()
        return outcome

    def read(self, prepared: Any, force: bool) -> GroupRun:
        """The snapshot the event loop took (or the run `reconcile` made of it)."""
        return prepared if isinstance(prepared, GroupRun) else GroupRun(prepared, force)

    def finalize(self, run: GroupRun) -> GroupRun | Done:
        """A group gone: delete what it generated; one being deleted: that, then let it go."""
        group = run.snap.group
        if group is None:
            run.outcome = self._orphaned(run.snap)
            return Done()
        if (group.get("metadata") or {}).get("deletionTimestamp"):
            run.outcome = self._finalize(run.snap)
            return Done()
        if FINALIZER not in ((group.get("metadata") or {}).get("finalizers") or []):
            self.lanes_api.add_finalizer(SWIMLANEGROUP, group)
            run.writes += 1
        return run

    def validate(self, run: GroupRun) -> GroupRun:
        """Nothing here: a group is valid only with its lanes and beside the groups sharing
        its services, which planning checks (pure); `status` reports an invalid plan."""
        return run

    def observe(self, run: GroupRun) -> Inputs:
        """Which groups' routes are in force for the services this group shares, from the
        live DestinationRules, with everything the snapshot holds."""
        snap = run.snap
        assert snap.group is not None
        shared = listed_elsewhere(snap.group, snap.others)
        held = self._held(snap.name, shared, snap.others) if shared else {}
        routes = [obj for kind in GENERATED for obj in self.objects.list(kind)]
        foreign = foreign_routes(service_keys(snap.group), routes)
        return Inputs(snap.group, snap.lanes, snap.services, snap.pods, snap.others, held, snap.rollouts,
                      snap.releases, self.trace_affinity, foreign)

    def plan(self, run: GroupRun, inputs: Inputs) -> GroupPlan:
        """Parse, validate and render (pure)."""
        return plan_group(inputs)

    def carry_out(self, run: GroupRun, plan: GroupPlan) -> None:
        """Sync the generated objects unless what is in force is already the plan's.

        A failed sync is written to status before it is raised (the scheduler retries).
        """
        snap, group = run.snap, run.snap.group
        assert group is not None
        if not plan.valid:
            self.invalidate(snap.name)
            return
        assert plan.desired is not None
        digest = fingerprint(plan.desired)
        with self._lock:
            known = self._in_force.get(snap.name)
            epoch = self._epoch(snap.name)
        run.outcome = Outcome("unchanged", plan=plan, dropped=known[1] if known is not None else {})
        try:
            if run.force or known is None or known[0] != digest:
                report = sync_objects(self.objects, plan.desired, owners(snap.name))
                run.outcome.report, run.outcome.dropped = report, report.dropped
                with self._lock:
                    if self._epoch(snap.name) == epoch:
                        self._in_force[snap.name] = (digest, report.dropped)
        except Exception as error:
            failure = f"writing generated objects failed: {error_message(error)}"
            self._write_status(SWIMLANEGROUP, group, group_status(plan, group.get("status"), self.clock(), failure=failure))
            raise
        report = run.outcome.report
        if report is not None and report.changed:
            run.writes += len(report.created) + len(report.updated) + len(report.deleted)
            self.lanes_api.post_event(group, "RoutesChanged", report.summary())
            run.writes += 1
            run.outcome.result = "applied"
            log.info("group %s: %s", snap.name, report.summary())

    def status(self, run: GroupRun, plan: GroupPlan) -> None:
        """The group's status and its lanes', and the group's gauges."""
        snap, group = run.snap, run.snap.group
        assert group is not None
        if not plan.valid:
            run.writes += self._invalid(plan, group)
            run.writes += self._lane_statuses(plan, snap.lanes)
            run.outcome = Outcome("invalid", run.writes, plan=plan)
            return None
        assert plan.desired is not None and run.outcome is not None
        status = group_status(plan, group.get("status"), self.clock(), generated=len(plan.desired),
                              dropped=run.outcome.dropped)
        written = self._write_status(SWIMLANEGROUP, group, status)
        run.writes += written
        if written and (plan.absent or plan.aside):
            run.writes += self._say_absent(group, status)
        run.writes += self._lane_statuses(plan, snap.lanes)
        self.metrics.generated.labels(snap.name).set(len(plan.desired))
        with_pods = lane_services(plan.observed) if plan.observed else {}
        self.metrics.lanes_with_pods.labels(snap.name).set(len(with_pods))
        run.outcome.writes = run.writes
        return None

    def _held(
        self, name: str, shared: frozenset[str], others: Sequence[Mapping[str, Any]]
    ) -> dict[str, frozenset[str]]:
        """Which groups, this one included, have routes in force for each shared service: a
        DestinationRule for its host generated for that group."""
        names = [name, *((o.get("metadata") or {}).get("name", "") for o in others)]
        hosts = {fqdn(key): key for key in shared}
        held: dict[str, set[str]] = {}
        for obj in list_owned(self.objects, generated_by_any()):
            key = hosts.get((obj.get("spec") or {}).get("host")) if obj.get("kind") == "DestinationRule" else None
            owner = owner_among(names, obj) if key else None
            if owner is not None:
                held.setdefault(key, set()).add(owner)
        return {key: frozenset(groups) for key, groups in held.items()}

    def _invalid(self, plan: GroupPlan, group: Mapping[str, Any]) -> int:
        previous = group.get("status") or {}
        status = group_status(plan, previous, self.clock())
        written = self._write_status(SWIMLANEGROUP, group, status)
        old_message = next(
            (c.get("message") for c in previous.get("conditions") or [] if c.get("type") == "Ready"), None
        )
        if written and old_message != status["conditions"][0]["message"]:
            self.lanes_api.post_event(group, plan.reason, status["conditions"][0]["message"], "Warning")
            written += 1
            log.warning("group %s: %s", plan.name, status["conditions"][0]["message"])
        return written

    def _say_absent(self, group: Mapping[str, Any], status: Mapping[str, Any]) -> int:
        """A Warning event naming the group's absent services or the lanes it set aside, when
        that changed."""
        def degraded(found: Mapping[str, Any]) -> tuple[str, str] | None:
            return next(((c["reason"], c.get("message")) for c in found.get("conditions") or []
                         if c.get("type") == DEGRADED
                         and c.get("reason") in (SERVICES_NOT_FOUND, "InvalidSpec")), None)

        said = degraded(status)
        if said is None or said == degraded(group.get("status") or {}):
            return 0
        self.lanes_api.post_event(group, said[0], said[1], "Warning")
        log.warning("group %s: %s", (group.get("metadata") or {}).get("name"), said[1])
        return 1

    def _lane_statuses(self, plan: GroupPlan, lanes: Sequence[Mapping[str, Any]]) -> int:
        stamp = self.clock()
        return sum(self._write_status(SWIMLANE, lane, lane_status(plan, lane, stamp)) for lane in lanes)

    def _finalize(self, snap: Snapshot) -> Outcome:
        assert snap.group is not None
        deleted = delete_owned(self.objects, owners(snap.name))
        writes = len(deleted)
        if deleted:
            self.lanes_api.post_event(snap.group, "RoutesDeleted", f"deleted {', '.join(deleted)}")
            writes += 1
        self.lanes_api.remove_finalizer(SWIMLANEGROUP, snap.group)
        self.forget(snap.name)
        return Outcome("deleted", writes + 1)

    def _orphaned(self, snap: Snapshot) -> Outcome:
        deleted = delete_owned(self.objects, owners(snap.name))
        if deleted:
            log.info("group %s is gone: deleted %s", snap.name, ", ".join(deleted))
        stamp = self.clock()
        writes = len(deleted) + sum(
            self._write_status(SWIMLANE, lane, orphan_lane_status(lane, snap.name, stamp)) for lane in snap.lanes
        )
        self.forget(snap.name)
        return Outcome("orphaned" if deleted else "absent", writes)

    def _write_status(self, kind: Kind, body: Mapping[str, Any], status: dict) -> int:
        """Patch status unless it already holds `status`; 1 when written, else 0."""
        metadata = body.get("metadata") or {}
        key = (kind.plural, metadata.get("name", ""))
        version = metadata.get("resourceVersion")
        if same_status(status, body.get("status")):
            return 0
        with self._lock:
            last = self._status_written.get(key)
        if last is not None and last[0] == version and same_status(status, last[1]):
            return 0
        self.lanes_api.patch_status(kind, key[1], status)
        with self._lock:
            self._status_written[key] = (version, status)
        return 1

