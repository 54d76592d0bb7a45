"""The operator's shared state: what the watches hold, and which groups an event concerns.

This module keeps what the watch events bring (groups, lanes by group, Service selectors,
rollouts and releases by namespace, lane pods by label), each indexed by what a group's
reconcile asks for, so one event and one snapshot cost the same however many services the
cluster holds. It turns watch events into triggers of the groups they affect and assembles a
group's Snapshot. It holds no kopf import, so the mapping from events to groups stays plain
code.

kopf's own indices are not used: until every indexed object has been listed, kopf holds every
other object's handlers on one condition that each indexed object notifies, which makes the
start quadratic in the number of objects (minutes at 2,000 Services). Instead `prime` lists
what reconciles read once at start-up, before the workers start, so no group is planned from
a partial view.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from lanes.api.common import GROUP_LABEL
from lanes.kube.connect import MeteredApiClient, connect
from lanes.kube.kinds import LANERELEASE, SWIMLANE, SWIMLANEGROUP, WORKLOADROLLOUT, Kind
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
        self.lane_keys: set[str] = set()
        self.groups: dict[str, dict] = {}
        self.group_services: dict[str, frozenset[str]] = {}
        # The groups listing each service key, so sharing and pod events look up, not scan.
        self.service_groups: dict[str, set[str]] = {}
        # Groups by the owner labels their generated objects carry, per flavour.
        self.owner_marks: dict[tuple[str, tuple], set[str]] = {}
        self.lanes: dict[str, dict[str, dict]] = {}
        self.lane_groups: dict[str, str] = {}
        self.selectors: dict[str, dict[str, str]] = {}
        # Service keys by (namespace, label, value) of their selectors: the Services that may
        # select a pod are found from its labels.
        self.services_by_label: dict[tuple[str, str, str], set[str]] = {}
        self.rollouts: dict[str, dict[str, dict]] = {}
        self.releases: dict[str, dict[str, dict]] = {}
        self.seen: dict[tuple[str, str], tuple] = {}
        self.pods_seen: dict[tuple[str, str], tuple[tuple, bool, frozenset[str]]] = {}
        # Lane pods by (namespace, label, value): a group's snapshot reads only the pods its
        # Services select, so a reconcile costs the same however many pods share the namespace.
        self.pod_views: dict[tuple[str, str], PodView] = {}
        self.pods_by_label: dict[tuple[str, str, str], set[tuple[str, str]]] = {}

    def _list(self, kind: Kind) -> list[dict]:
        try:
            return self.lanes_api.list_kind(kind)
        except ApiException as error:
            if error.status == 404:
                return []
            raise

    def prime(self) -> None:
        """List what reconciles read, once, before the workers start (run in a thread).

        The watches bring the same objects again; those events change nothing then. Lanes go
        first, so the pod filter knows every lane label key before pods are listed.
        """
        lanes = self._list(SWIMLANE)
        for lane in lanes:
            self.lane_keys.update(((lane.get("spec") or {}).get("labelSelector") or {}).keys())
        services = self.lanes_api.service_selectors()
        pods = [body for key in sorted(self.lane_keys) for body in self.lanes_api.list_pods(key)]
        groups, rollouts = self._list(SWIMLANEGROUP), self._list(WORKLOADROLLOUT)
        releases = self._list(LANERELEASE)
        for key, selector in services.items():
            self.set_selector(key, selector)
        for body in groups:
            self.on_group(None, body["metadata"]["name"], body)
        for body in lanes:
            self.on_lane(None, body["metadata"]["name"], body)
        for body in pods:
            self.on_pod(None, body)
        for body in rollouts:
            self.on_rollout(None, body)
        for body in releases:
            self.on_release(None, body)

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
                self.on_pod(None, body)

    def trigger(self, group: str, *, force: bool = False) -> None:
        """Queue a reconcile of one group."""
        self.scheduler.trigger(group, force=force)

    def trigger_all(self, *, force: bool = False, background: bool = False) -> None:
        """Queue every known group, e.g. after a CRD changed or on resync (in the background)."""
        for name in list(self.group_services):
            self.scheduler.trigger(name, force=force, background=background)

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
        """A group changed: keep its body, reconcile it and the groups sharing a service.

        Its status writes are kept too (the next reconcile compares against them) but
        trigger nothing. A group kept from a service another group holds gets its turn once
        that one lets go.
        """
        if event_type == "DELETED":
            self.groups.pop(name, None)
            self._mark_owner(name, add=False)
        else:
            if name not in self.groups:
                self._mark_owner(name, add=True)
            self.groups[name] = copy.deepcopy(dict(body))
        if not self.changed("group", event_type, body):
            return
        before = self.group_services.pop(name, frozenset())
        for key in before:
            self.service_groups[key].discard(name)
            if not self.service_groups[key]:
                del self.service_groups[key]
        if event_type != "DELETED":
            self.group_services[name] = service_keys(body)
            for key in self.group_services[name]:
                self.service_groups.setdefault(key, set()).add(name)
        self.trigger(name)
        for other in self.sharing(name, before | self.group_services.get(name, frozenset())):
            self.trigger(other)

    def sharing(self, name: str, keys: frozenset[str] | None = None) -> set[str]:
        """The other groups listing one of `keys` (by default, the services of group `name`)."""
        if keys is None:
            keys = self.group_services.get(name, frozenset())
        return {g for key in keys for g in self.service_groups.get(key, ()) if g != name}

    def on_lane(self, event_type: str | None, name: str, body: Mapping[str, Any]) -> None:
        """A lane changed: reconcile the group it joins, and the one it left."""
        labels = (body.get("metadata") or {}).get("labels") or {}
        group = None if event_type == "DELETED" else labels.get(GROUP_LABEL)
        previous = self.lane_groups.pop(name, None)
        if previous is not None:
            self.lanes.get(previous, {}).pop(name, None)
            if not self.lanes.get(previous, True):
                del self.lanes[previous]
        if group:
            self.lane_groups[name] = group
            self.lanes.setdefault(group, {})[name] = copy.deepcopy(dict(body))
        if not self.changed("lane", event_type, body):
            return
        for affected in {group, previous} - {None}:
            self.trigger(affected)

    def on_service(self, event_type: str | None, namespace: str, name: str, selector: Mapping[str, str] | None) -> None:
        """A Service changed: its selector decides pod membership."""
        key = f"{namespace}/{name}"
        selector = None if event_type == "DELETED" else dict(selector or {})
        if self.selectors.get(key) == selector:
            return
        self.set_selector(key, selector)
        for group in self.service_groups.get(key, ()):
            self.trigger(group)

    def set_selector(self, key: str, selector: Mapping[str, str] | None) -> None:
        """Keep `selectors` and `services_by_label` in step with one Service (None: it is gone)."""
        namespace = key.split("/", 1)[0]
        for label in (self.selectors.pop(key, None) or {}).items():
            bucket = self.services_by_label.get((namespace, *label))
            if bucket is not None:
                bucket.discard(key)
                if not bucket:
                    del self.services_by_label[(namespace, *label)]
        if selector is None:
            return
        self.selectors[key] = dict(selector)
        for label in selector.items():
            self.services_by_label.setdefault((namespace, *label), set()).add(key)

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
        self._keep(self.rollouts, body, splits)
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
        for group in self.groups_in(metadata.get("namespace") or "default"):
            self.trigger(group)

    def groups_in(self, namespace: str) -> set[str]:
        """The groups with a service in `namespace`."""
        return {g for g, keys in self.group_services.items() if any(k.split("/", 1)[0] == namespace for k in keys)}

    @staticmethod
    def _keep(store: dict[str, dict[str, dict]], body: Mapping[str, Any], kept: bool) -> None:
        """Keep (or drop) a namespaced body in a store by namespace and name."""
        metadata = body.get("metadata") or {}
        namespace, name = metadata.get("namespace") or "default", metadata.get("name", "")
        if kept:
            store.setdefault(namespace, {})[name] = copy.deepcopy(dict(body))
        elif name in store.get(namespace, {}):
            del store[namespace][name]
            if not store[namespace]:
                del store[namespace]

    def on_release(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A lane release's entry weight or phase may have moved: reconcile its lane's group.

        Only the phase, step and weight count, so its progress messages trigger nothing.
        """
        metadata = body.get("metadata") or {}
        key = ("lanerelease", f"{metadata.get('namespace')}/{metadata.get('name')}")
        status = body.get("status") or {}
        self._keep(self.releases, body, event_type != "DELETED")
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
        for name in self.groups_in(metadata.get("namespace") or "default"):
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
            keys = [k for k in flavour.owner_labels("x") if k not in managed]
            mark = (flavour.name, tuple((k, labels.get(k)) for k in keys))
            known = self.owner_marks.get(mark)
            if known:
                found |= known
            elif not found:
                found.update(labels[k] for k in keys if k in labels)
        return found

    def _mark_owner(self, name: str, add: bool) -> None:
        """Keep `owner_marks` in step with one group: its owner labels in every flavour."""
        for flavour in FLAVOURS.values():
            managed = flavour.managed_labels()
            owned = owner_selector(name, flavour.name)
            mark = (flavour.name, tuple((k, v) for k, v in owned.items() if k not in managed))
            if add:
                self.owner_marks.setdefault(mark, set()).add(name)
            elif name in self.owner_marks.get(mark, ()):
                self.owner_marks[mark].discard(name)
                if not self.owner_marks[mark]:
                    del self.owner_marks[mark]

    def groups_selecting(self, namespace: str, labels: Mapping[str, str]) -> set[str]:
        """Groups with a service in `namespace` whose Service selects these labels.

        Only Services whose selector shares a label with the pod are looked at.
        """
        candidates = {
            key for label in labels.items() for key in self.services_by_label.get((namespace, *label), ())
        }
        groups = set()
        for key in candidates:
            owners = self.service_groups.get(key)
            if owners and selects(self.selectors.get(key), labels):
                groups |= owners
        return groups

    def snapshot(self, name: str) -> Snapshot:
        """What the watches hold for one group, copied so the worker thread reads a still view.

        `others` holds only the groups sharing a service with this one: the only ones that
        can hold one of its services.
        """
        group = self.groups.get(name)
        keys = service_keys(group) if group is not None else frozenset()
        selectors = {key: self.selectors[key] for key in keys if key in self.selectors}
        namespaces = {key.split("/", 1)[0] for key in keys}
        found: dict[tuple[str, str], PodView] = {}
        for key, selector in selectors.items():
            for view in self.pods_selected(key.split("/", 1)[0], selector):
                found[(view.namespace, view.name)] = view
        others = [self.groups[other] for other in sorted(self.sharing(name, keys)) if other in self.groups]
        steps = [body for namespace in namespaces for body in self.rollouts.get(namespace, {}).values()
                 if splits_traffic(body)]
        releases = [body for namespace in namespaces for body in self.releases.get(namespace, {}).values()]
        return Snapshot(
            name, group, list(self.lanes.get(name, {}).values()), selectors, list(found.values()),
            others, steps, releases,
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
            self.trigger_all(force=True, background=True)
