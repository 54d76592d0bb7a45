"""The operator's shared state: what the watches hold, and which groups an event concerns.

kopf indices hold the watched groups, lanes, Services and rollouts, and this module the lane
pods (by label, so a snapshot reads only the pods a group's Services select); it turns watch
events into triggers of the groups they affect and assembles a group's Snapshot. It holds no
kopf import, so the mapping from events to groups stays plain code.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lanes.api.common import GROUP_LABEL
from lanes.kube.connect import MeteredApiClient, connect
from lanes.kube.kinds import SWIMLANE
from lanes.kube.lanesapi import LanesApi
from lanes.kube.objects import Objects, error_message
from lanes.render import FLAVOURS, TraceAffinityModule, owner_selector
from lanes.render.observe import PodView, pod_view, selects

from .leader import Election
from .metrics import Metrics, MetricsServer
from .modules import ModuleServer, ServedModule
from .plan import service_keys
from .reconcile import GroupReconciler, Snapshot
from .scheduler import Scheduler

log = logging.getLogger("lanes.operator")

GROUP_INDEX = "swimlanegroup_index"
LANE_INDEX = "swimlane_index"
SERVICE_INDEX = "service_index"
ROLLOUT_INDEX = "workloadrollout_index"
RELEASE_INDEX = "lanerelease_index"


@dataclass(frozen=True)
class Options:
    """How the operator runs; the CLI fills it from flags."""

    kubeconfig: str | None = None
    context: str | None = None
    metrics_port: int | None = 9090
    metrics_host: str = "0.0.0.0"
    workers: int = 4
    # Rollouts reconciled at once; a reconcile that makes an analysis check waits on the API
    # server and Prometheus, so this bounds checks per second more than CPU does.
    rollout_workers: int = 4
    debounce: float = 0.02
    resync: float = 300.0
    # Analysis: the Prometheus asked when neither a MetricTemplate nor the analysis names one,
    # and the source of the built-in metrics when the analysis names none (`istio`, `envoy`).
    prometheus_url: str | None = None
    metric_source: str = "istio"
    # Where proxies fetch the trace-affinity module (WasmPlugins for groups in trace-ID mode).
    trace_affinity: TraceAffinityModule | None = None
    # The module this replica serves to proxies itself (`trace_affinity` then names its URL).
    served_module: ServedModule | None = None
    # Leader election on a Lease (None: this replica leads alone, as a single one does).
    election: Election | None = None


def _first(store: Iterable[Any] | None) -> Any:
    return next(iter(store), None) if store is not None else None


def splits_traffic(rollout: Mapping[str, Any]) -> bool:
    """Whether a rollout may have a traffic step in force: a release under way with a step
    that sends untagged requests (`traffic` or `matches`). Only such rollouts are parsed for
    a group's reconcile, not every rollout of its namespaces."""
    if ((rollout.get("status") or {}).get("phase")) not in ("Progressing", "Paused"):
        return False
    steps = (((rollout.get("spec") or {}).get("strategy") or {}).get("canary") or {}).get("steps") or []
    return any(isinstance(step, Mapping) and (step.get("traffic") or step.get("matches")) for step in steps)


class Runtime:
    """Everything the handlers share, reachable from kopf's memo as `memo.runtime`."""

    def __init__(self, options: Options, api: MeteredApiClient | None = None):
        self.options = options
        self.metrics = Metrics()
        self.api = api or connect(options.kubeconfig, options.context)
        self.api.on_write = self.metrics.count_write
        self.objects = Objects(self.api)
        self.lanes_api = LanesApi(self.api)
        self.reconciler = GroupReconciler(
            self.objects, self.lanes_api, self.metrics, trace_affinity=options.trace_affinity
        )
        self.metrics_server: MetricsServer | None = None
        self.module_server: ModuleServer | None = None
        self.scheduler = Scheduler(
            self.work, workers=options.workers, debounce=options.debounce, describe=error_message
        )
        self.indices: Mapping[str, Any] = {}
        self.lane_keys: set[str] = set()
        self.primed: dict[tuple[str, str], PodView] = {}
        self.group_services: dict[str, frozenset[str]] = {}
        self.lane_groups: dict[str, str] = {}
        self.seen: dict[tuple[str, str], tuple] = {}
        self.pods_seen: dict[tuple[str, str], tuple[tuple, bool, frozenset[str]]] = {}
        # Lane pods by (namespace, label, value): a group's snapshot reads only the pods its
        # Services select, so a reconcile costs the same however many pods share the namespace.
        self.pod_views: dict[tuple[str, str], PodView] = {}
        self.pods_by_label: dict[tuple[str, str, str], set[tuple[str, str]]] = {}

    def bind(self, indices: Mapping[str, Any]) -> None:
        """Keep kopf's live indices (passed to every handler) for snapshots."""
        if not self.indices:
            self.indices = {
                k: indices[k]
                for k in (GROUP_INDEX, LANE_INDEX, SERVICE_INDEX, ROLLOUT_INDEX)
            }
            if RELEASE_INDEX in indices:
                self.indices[RELEASE_INDEX] = indices[RELEASE_INDEX]

    def seed_lane_keys(self) -> None:
        """Learn lane label keys before pods are first listed, so the pod filter is right."""
        for lane in self.lanes_api.list_kind(SWIMLANE):
            self.lane_keys.update(((lane.get("spec") or {}).get("labelSelector") or {}).keys())

    def pod_has_lane_key(self, labels: Mapping[str, str]) -> bool:
        """The pod filter: only pods carrying a label key some lane selects on matter."""
        return not self.lane_keys.isdisjoint(labels)

    async def learn_lane_keys(self, keys: Iterable[str]) -> None:
        """Add label keys of a new lane; list the pods already carrying them.

        The pod index only sees pods through the filter as their events arrive, so pods that
        carried a new key before the lane existed are listed once here.
        """
        new = set(keys) - self.lane_keys
        if not new:
            return
        self.lane_keys |= new
        for key in sorted(new):
            pods = await asyncio.to_thread(self.lanes_api.list_pods, key)
            for body in pods:
                view = pod_view(body)
                self.primed[(view.namespace, view.name)] = view
                self.on_pod(None, body)

    def trigger(self, group: str, *, force: bool = False) -> None:
        """Queue a reconcile of one group."""
        self.scheduler.trigger(group, force=force)

    def trigger_all(self, *, force: bool = False) -> None:
        """Queue every known group, e.g. after a CRD changed or on resync."""
        for name in list(self.group_services):
            self.trigger(name, force=force)

    def changed(self, kind: str, event_type: str | None, body: Mapping[str, Any]) -> bool:
        """Whether an event changes what reconciles read: not our own status writes.

        Without this, every status patch would echo back as an event and a reconcile, and a
        failing group would retry at once instead of after its backoff.
        """
        metadata = body.get("metadata") or {}
        key = (kind, metadata.get("name", ""))
        if event_type == "DELETED":
            self.seen.pop(key, None)
            return True
        essence = (
            metadata.get("generation"),
            tuple(sorted((metadata.get("labels") or {}).items())),
            tuple(metadata.get("finalizers") or ()),
            metadata.get("deletionTimestamp"),
        )
        if self.seen.get(key) == essence:
            return False
        self.seen[key] = essence
        return True

    def on_group(self, event_type: str | None, name: str, body: Mapping[str, Any]) -> None:
        """A group changed: remember its services, reconcile it and the groups sharing one.

        A group kept from a service another group holds gets its turn once that one lets go.
        """
        if not self.changed("group", event_type, body):
            return
        before = self.group_services.pop(name, frozenset())
        if event_type != "DELETED":
            self.group_services[name] = service_keys(body)
        self.trigger(name)
        for other in self.sharing(name, before | self.group_services.get(name, frozenset())):
            self.trigger(other)

    def sharing(self, name: str, keys: frozenset[str] | None = None) -> set[str]:
        """The other groups listing one of `keys` (by default, the services of group `name`)."""
        if keys is None:
            keys = self.group_services.get(name, frozenset())
        return {g for g, theirs in self.group_services.items() if g != name and not theirs.isdisjoint(keys)}

    def on_lane(self, event_type: str | None, name: str, body: Mapping[str, Any]) -> None:
        """A lane changed: reconcile the group it joins, and the one it left."""
        if not self.changed("lane", event_type, body):
            return
        labels = (body.get("metadata") or {}).get("labels") or {}
        group = None if event_type == "DELETED" else labels.get(GROUP_LABEL)
        previous = self.lane_groups.pop(name, None)
        if group:
            self.lane_groups[name] = group
        for affected in {group, previous} - {None}:
            self.trigger(affected)

    def on_service(self, namespace: str, name: str) -> None:
        """A Service changed (its selector decides pod membership)."""
        key = f"{namespace}/{name}"
        for group, keys in self.group_services.items():
            if key in keys:
                self.trigger(group)

    def on_rollout(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A rollout's step may have moved: reconcile the groups with a service beside it.

        Only what decides the traffic step counts (spec, phase, step and state), so the
        rollout's own status writes of progress messages trigger nothing; and only a rollout
        that may split traffic, now or at its last event, concerns routes at all (a release
        without traffic steps moves pods, whose own events reconcile the groups).
        """
        metadata = body.get("metadata") or {}
        key = ("rollout", f"{metadata.get('namespace')}/{metadata.get('name')}")
        status = body.get("status") or {}
        canary = status.get("canaryStatus") or {}
        splits = event_type != "DELETED" and splits_traffic(body)
        essence = (
            metadata.get("generation"), status.get("phase"),
            canary.get("currentStepIndex"), canary.get("currentStepState"), splits,
        )
        before = self.seen.get(key)
        if event_type == "DELETED":
            self.seen.pop(key, None)
        elif before == essence:
            return
        else:
            self.seen[key] = essence
        if not splits and not (before is not None and before[-1]):
            return
        namespace = metadata.get("namespace") or "default"
        for group, keys in self.group_services.items():
            if any(k.split("/", 1)[0] == namespace for k in keys):
                self.trigger(group)

    def on_release(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A lane release's entry weight or phase may have moved: reconcile its lane's group.

        Only the phase, step and weight count, so its progress messages trigger nothing.
        """
        metadata = body.get("metadata") or {}
        key = ("lanerelease", f"{metadata.get('namespace')}/{metadata.get('name')}")
        status = body.get("status") or {}
        essence = (metadata.get("generation"), status.get("phase"),
                   status.get("currentStepIndex"), status.get("weight"))
        if event_type == "DELETED":
            self.seen.pop(key, None)
        elif self.seen.get(key) == essence:
            return
        else:
            self.seen[key] = essence
        lane = ((body.get("spec") or {}).get("swimLaneRef") or {}).get("name")
        group = self.lane_groups.get(lane) if lane else None
        if group is not None:
            self.trigger(group)
            return
        namespace = metadata.get("namespace") or "default"
        for name, keys in self.group_services.items():
            if any(k.split("/", 1)[0] == namespace for k in keys):
                self.trigger(name)

    def on_pod(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A pod changed: reconcile the groups whose services select it, before or now.

        Pods never carrying a lane key are dismissed at once; a pod's event only triggers
        when its labels or readiness changed, not on every status update.
        """
        view = pod_view(body)
        key = (view.namespace, view.name)
        seen = self.pods_seen.get(key)
        if seen is None and not self.pod_has_lane_key(view.labels):
            return
        if event_type is not None:
            self.primed.pop(key, None)
        state = (tuple(sorted(view.labels.items())), view.ready)
        if event_type != "DELETED" and seen is not None and seen[:2] == state:
            return
        groups = self.groups_selecting(view.namespace, view.labels)
        if event_type == "DELETED":
            self.pods_seen.pop(key, None)
            self.index_pod(key, None)
        else:
            self.pods_seen[key] = (*state, frozenset(groups))
            self.index_pod(key, view)
        for group in groups | (seen[2] if seen is not None else frozenset()):
            self.trigger(group)

    def index_pod(self, key: tuple[str, str], view: PodView | None) -> None:
        """Keep `pod_views` and `pods_by_label` in step with one pod (None: it is gone)."""
        old = self.pod_views.pop(key, None)
        if old is not None:
            for label in old.labels.items():
                bucket = self.pods_by_label.get((key[0], *label))
                if bucket is not None:
                    bucket.discard(key)
                    if not bucket:
                        del self.pods_by_label[(key[0], *label)]
        if view is not None:
            self.pod_views[key] = view
            for label in view.labels.items():
                self.pods_by_label.setdefault((key[0], *label), set()).add(key)

    def pods_selected(self, namespace: str, selector: Mapping[str, str] | None) -> list[PodView]:
        """The lane pods of `namespace` a Service selector selects, from the label index."""
        if not selector:
            return []
        buckets = [self.pods_by_label.get((namespace, *label), set()) for label in selector.items()]
        keys = set.intersection(*buckets) if buckets else set()
        return [self.pod_views[key] for key in keys]

    def on_generated(self, labels: Mapping[str, str]) -> None:
        """A generated object changed or vanished: check its group's objects again.

        Groups sharing a service with that group are queued too: one kept from a service
        by a Conflict may now take it over.
        """
        for name in self.owners_of(labels):
            self.reconciler.invalidate(name)
            self.trigger(name)
            for other in self.sharing(name):
                self.trigger(other)

    def owners_of(self, labels: Mapping[str, str]) -> set[str]:
        """Groups whose owner labels `labels` carry; the label value itself if none is known."""
        found = set()
        for flavour in FLAVOURS.values():
            managed = flavour.managed_labels()
            if not all(labels.get(k) == v for k, v in managed.items()):
                continue
            for name in self.group_services:
                if selects(owner_selector(name, flavour.name), labels):
                    found.add(name)
            if not found:
                value = {k: v for k, v in flavour.owner_labels("x").items() if k not in managed}
                found.update(labels[k] for k in value if k in labels)
        return found

    def groups_selecting(self, namespace: str, labels: Mapping[str, str]) -> set[str]:
        """Groups with a service in `namespace` whose Service selects these labels."""
        services = self.indices.get(SERVICE_INDEX) if self.indices else None
        groups = set()
        for group, keys in self.group_services.items():
            for key in keys:
                if key.split("/", 1)[0] != namespace:
                    continue
                selector = _first(services.get(key)) if services is not None else None
                if selects(selector, labels):
                    groups.add(group)
                    break
        return groups

    def snapshot(self, name: str) -> Snapshot:
        """What the indices hold for one group, copied so the worker thread reads a still view."""
        groups, lanes = self.indices[GROUP_INDEX], self.indices[LANE_INDEX]
        services = self.indices[SERVICE_INDEX]
        group = _first(groups.get(name))
        keys = service_keys(group) if group is not None else frozenset()
        selectors = {key: _first(services.get(key)) for key in keys if key in services}
        namespaces = {key.split("/", 1)[0] for key in keys}
        found: dict[tuple[str, str], PodView] = {}
        for key, selector in selectors.items():
            for view in self.pods_selected(key.split("/", 1)[0], selector):
                found[(view.namespace, view.name)] = view
        others = [body for key, store in groups.items() if key != name and (body := _first(store))]
        rollouts = self.indices[ROLLOUT_INDEX]
        steps = [body for namespace in namespaces for body in rollouts.get(namespace, ())
                 if splits_traffic(body)]
        store = self.indices.get(RELEASE_INDEX) or {}
        releases = [body for namespace in namespaces for body in store.get(namespace, ())]
        return Snapshot(
            name, group, list(lanes.get(name, ())), selectors, list(found.values()), others, steps,
            releases,
        )

    async def work(self, name: str, force: bool) -> None:
        """The scheduler's work: snapshot in the loop, reconcile in a thread."""
        snap = self.snapshot(name)
        await asyncio.to_thread(self.reconciler.reconcile, snap, force)

    async def resync(self) -> None:
        """Every `resync` seconds, compare every group's live objects in full (reads only)."""
        while True:
            await asyncio.sleep(self.options.resync)
            self.reconciler.invalidate()
            self.trigger_all(force=True)
