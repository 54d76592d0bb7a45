"""The operator's shared state: what the watches hold, and which groups an event concerns.

This module keeps what the watch events bring in stores with named indexes (`lanes.kube.store`:
groups by service, namespace and owner mark, lanes by group, Service selectors and lane pods by
label, rollouts and releases by namespace), each index a question a group's reconcile asks,
so one event and one snapshot cost the same however many services the cluster holds. It turns watch events into triggers of the groups they affect and assembles a
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
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from lanes.kube.connect import MeteredApiClient, connect
from lanes.kube.kinds import LANERELEASE, SWIMLANE, SWIMLANEGROUP, WORKLOADROLLOUT, Kind
from lanes.kube.lanesapi import LanesApi
from lanes.kube.objects import Objects
from lanes.kube.store import Store, metadata_essence
from lanes.kube.ownership import lane_group_of, marks_of, owner_marks
from lanes.render import TraceAffinityModule
from lanes.render.observe import PodView, pod_view, selects

from .leader import Election
from .metrics import Metrics
from .modules import ServedModule
from .plan import service_keys
from .reconcile import GroupController, Snapshot

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
    # Also serve ASM's swimlanes and Kruise's Rollouts as they are (`lanes.operator.peers`).
    serve_peers: bool = False


def splits_traffic(rollout: Mapping[str, Any]) -> bool:
    """Whether a rollout may have a traffic step in force: a release under way with a step
    that sends untagged requests (`traffic` or `matches`). Only such rollouts are parsed for
    a group's reconcile, not every rollout of its namespaces."""
    if ((rollout.get("status") or {}).get("phase")) not in ("Progressing", "Paused"):
        return False
    steps = (((rollout.get("spec") or {}).get("strategy") or {}).get("canary") or {}).get("steps") or []
    return any(isinstance(step, Mapping) and (step.get("traffic") or step.get("matches")) for step in steps)


@dataclass(frozen=True)
class LanePod:
    """A lane pod as the runtime keeps it: its view, and the groups it concerned last."""

    view: PodView
    groups: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Selector:
    """A Service's selector, with the namespace its labels select in."""

    namespace: str
    labels: Mapping[str, str]


def _labels_in_namespace(namespace: str, labels: Mapping[str, str]) -> list[tuple[str, str, str]]:
    return [(namespace, *label) for label in labels.items()]


def _namespace_name(body: Mapping[str, Any]) -> tuple[str, str]:
    metadata = body.get("metadata") or {}
    return metadata.get("namespace") or "default", metadata.get("name", "")


def rollout_essence(rollout: Mapping[str, Any]) -> tuple:
    """What of a rollout decides a traffic step: spec, phase, step and its state, and whether
    it may split traffic; its status writes of progress messages leave it as it was."""
    metadata, status = rollout.get("metadata") or {}, rollout.get("status") or {}
    canary = status.get("canaryStatus") or {}
    return (metadata.get("generation"), status.get("phase"), canary.get("currentStepIndex"),
            canary.get("currentStepState"), splits_traffic(rollout))


def release_essence(release: Mapping[str, Any]) -> tuple:
    """What of a lane release decides its entry weight: spec, phase, step and weight."""
    metadata, status = release.get("metadata") or {}, release.get("status") or {}
    return (metadata.get("generation"), status.get("phase"), status.get("currentStepIndex"),
            status.get("weight"))




class Runtime:
    """The SwimLaneGroup controller's side of the operator: the API client and metrics every
    controller shares, the stores its watches fill, and the mapping from an event to the
    groups it concerns (each queued on the group controller, `reconciler`)."""

    def __init__(self, options: Options, api: MeteredApiClient | None = None):
        self.options = options
        self.metrics = Metrics()
        self.api = api or connect(options.kubeconfig, options.context)
        self.api.on_write = self.metrics.count_write
        self.objects = Objects(self.api)
        self.lanes_api = LanesApi(self.api)
        self.reconciler = GroupController(
            self.objects, self.lanes_api, self.metrics, trace_affinity=options.trace_affinity,
            snapshot=self.snapshot, workers=options.workers, debounce=options.debounce,
        )
        self.scheduler = self.reconciler.scheduler
        self.lane_keys: set[str] = set()
        # Groups by name, found by the services they list (sharing, pod and Service events
        # look up, not scan), by those services' namespaces, and by their owner labels.
        self.groups: Store[dict] = Store(
            {"service": service_keys,
             "namespace": lambda body: {key.split("/", 1)[0] for key in service_keys(body)},
             "owner": lambda body: owner_marks((body.get("metadata") or {}).get("name", ""))},
            essence=metadata_essence,
        )
        self.lanes: Store[dict] = Store(
            {"group": lambda body: [g] if (g := lane_group_of(body)) else []}, essence=metadata_essence
        )
        # Service selectors by `namespace/name`, found by (namespace, label, value): the
        # Services that may select a pod are found from its labels.
        self.services: Store[Selector] = Store(
            {"label": lambda s: _labels_in_namespace(s.namespace, s.labels)}, essence=lambda s: s
        )
        # Rollouts by (namespace, name); only those that may split traffic are found by
        # namespace, the only ones a group's reconcile parses.
        self.rollouts: Store[dict] = Store(
            {"splitting": lambda body: [_namespace_name(body)[0]] if splits_traffic(body) else []},
            essence=rollout_essence,
        )
        self.releases: Store[dict] = Store(
            {"namespace": lambda body: [_namespace_name(body)[0]]}, essence=release_essence
        )
        # Lane pods by (namespace, name), found by (namespace, label, value): a group's
        # snapshot reads only the pods its Services select, however many share the namespace.
        self.pods: Store[LanePod] = Store(
            {"label": lambda pod: _labels_in_namespace(pod.view.namespace, pod.view.labels)},
            essence=lambda pod: (tuple(sorted(pod.view.labels.items())), pod.view.ready),
        )
        self.metrics.read_releases(self.release_bodies)

    def release_bodies(self) -> list[tuple[str, dict]]:
        """Every rollout and lane release the watches hold, for the release metrics."""
        return ([(WORKLOADROLLOUT.kind, body) for body in self.rollouts.values()]
                + [(LANERELEASE.kind, body) for body in self.releases.values()])

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
            self.set_selector(key, selector or {})  # a Service without a selector exists too
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
        for name in self.groups.keys():
            self.scheduler.trigger(name, force=force, background=background)

    def on_group(self, event_type: str | None, name: str, body: Mapping[str, Any]) -> None:
        """A group changed: keep its body, reconcile it and the groups sharing a service.

        Its status writes are kept too (the next reconcile compares against them) but
        trigger nothing. A group kept from a service another group holds gets its turn once
        that one lets go.
        """
        change = self.groups.record(event_type, name, body)
        if not change.changed:
            return
        before = service_keys(change.old) if change.old is not None else frozenset()
        self.trigger(name)
        for other in self.sharing(name, before | self.groups.indexed_values("service", name)):
            self.trigger(other)

    def sharing(self, name: str, keys: Iterable[str] | None = None) -> set[str]:
        """The other groups listing one of `keys` (by default, the services of group `name`)."""
        if keys is None:
            keys = self.groups.indexed_values("service", name)
        return {g for key in keys for g in self.groups.index_keys("service", key) if g != name}

    def on_lane(self, event_type: str | None, name: str, body: Mapping[str, Any]) -> None:
        """A lane changed: reconcile the group it joins, and the one it left."""
        change = self.lanes.record(event_type, name, body)
        if not change.changed:
            return
        previous = lane_group_of(change.old) if change.old is not None else None
        group = lane_group_of(change.new) if change.new is not None else None
        for affected in {group, previous} - {None}:
            self.trigger(affected)

    def on_service(self, event_type: str | None, namespace: str, name: str, selector: Mapping[str, str] | None) -> None:
        """A Service changed: its selector decides pod membership."""
        key = f"{namespace}/{name}"
        selector = None if event_type == "DELETED" else dict(selector or {})
        if not self.set_selector(key, selector):
            return
        for group in self.groups.index_keys("service", key):
            self.trigger(group)

    def set_selector(self, key: str, selector: Mapping[str, str] | None) -> bool:
        """Keep one Service's selector (None: it is gone); whether it changed."""
        if selector is None:
            return self.services.delete(key).old is not None
        return self.services.put(key, Selector(key.split("/", 1)[0], dict(selector))).changed

    def on_rollout(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A rollout's step may have moved: reconcile the groups with a service beside it.

        Only what decides the traffic step counts (spec, phase, step and state), so the
        rollout's own status writes of progress messages trigger nothing; and only a rollout
        that may split traffic, now or at its last event, concerns routes at all (a release
        without traffic steps moves pods, whose own events reconcile the groups).
        """
        key = _namespace_name(body)
        change = self.rollouts.record(event_type, key, body)
        self.metrics.release_outcomes.observe(WORKLOADROLLOUT.kind, change.old, change.new)
        if not change.changed:
            return
        splits = change.new is not None and splits_traffic(change.new)
        if not splits and not (change.old is not None and splits_traffic(change.old)):
            return
        for group in self.groups_in(key[0]):
            self.trigger(group)

    def groups_in(self, namespace: str) -> frozenset[str]:
        """The groups with a service in `namespace`."""
        return self.groups.index_keys("namespace", namespace)

    def on_release(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A lane release's entry weight or phase may have moved: reconcile its lane's group.

        Only the phase, step and weight count, so its progress messages trigger nothing.
        """
        key = _namespace_name(body)
        change = self.releases.record(event_type, key, body)
        self.metrics.release_outcomes.observe(LANERELEASE.kind, change.old, change.new)
        if not change.changed:
            return
        lane = ((body.get("spec") or {}).get("swimLaneRef") or {}).get("name")
        lane_body = self.lanes.get(lane) if lane else None
        group = lane_group_of(lane_body) if lane_body is not None else None
        if group is not None:
            self.trigger(group)
            return
        for name in self.groups_in(key[0]):
            self.trigger(name)

    def on_pod(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A pod changed: reconcile the groups whose services select it, before or now.

        Pods never carrying a lane key are dismissed at once; a pod's event only triggers
        when its labels or readiness changed, not on every status update.
        """
        view = pod_view(body)
        key = (view.namespace, view.name)
        seen = self.pods.get(key)
        if seen is None and not self.pod_has_lane_key(view.labels):
            return
        if event_type != "DELETED" and self.pods.unchanged(key, LanePod(view)):
            return
        groups = self.groups_selecting(view.namespace, view.labels)
        if event_type == "DELETED":
            self.pods.delete(key)
        else:
            self.pods.put(key, LanePod(view, frozenset(groups)))
        for group in groups | (seen.groups if seen is not None else frozenset()):
            self.trigger(group)

    def pods_selected(self, namespace: str, selector: Mapping[str, str] | None) -> list[PodView]:
        """The lane pods of `namespace` a Service selector selects, from the label index."""
        if not selector:
            return []
        keys = self.pods.intersect("label", _labels_in_namespace(namespace, selector))
        return [self.pods.get(key).view for key in keys]  # type: ignore[union-attr]

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
        found: set[str] = set()
        for mark, values in marks_of(labels):
            known = self.groups.index_keys("owner", mark)
            if known:
                found |= known
            elif not found:
                found.update(values)
        return found

    def groups_selecting(self, namespace: str, labels: Mapping[str, str]) -> set[str]:
        """Groups with a service in `namespace` whose Service selects these labels.

        Only Services whose selector shares a label with the pod are looked at.
        """
        candidates = {key for label in _labels_in_namespace(namespace, labels)
                      for key in self.services.index("label").get(label, ())}
        groups: set[str] = set()
        for key in candidates:
            owners = self.groups.index_keys("service", key)
            service = self.services.get(key)
            if owners and service is not None and selects(service.labels, labels):
                groups |= owners
        return groups

    def snapshot(self, name: str) -> Snapshot:
        """What the watches hold for one group, copied so the worker thread reads a still view.

        `others` holds only the groups sharing a service with this one: the only ones that
        can hold one of its services.
        """
        group = self.groups.get(name)
        keys = service_keys(group) if group is not None else frozenset()
        selectors = {}
        for key in keys:
            service = self.services.get(key)
            if service is not None:
                selectors[key] = dict(service.labels)
        namespaces = {key.split("/", 1)[0] for key in keys}
        found: dict[tuple[str, str], PodView] = {}
        for key, selector in selectors.items():
            for view in self.pods_selected(key.split("/", 1)[0], selector):
                found[(view.namespace, view.name)] = view
        others = [self.groups.get(other) for other in sorted(self.sharing(name, keys)) if other in self.groups]
        steps = [body for namespace in namespaces for body in self.rollouts.by_index("splitting", namespace)]
        releases = [body for namespace in namespaces for body in self.releases.by_index("namespace", namespace)]
        return Snapshot(
            name, group, self.lanes.by_index("group", name), selectors, list(found.values()),
            others, steps, releases,  # type: ignore[arg-type]
        )

    async def resync(self) -> None:
        """Every `resync` seconds, compare every group's live objects in full (reads only)."""
        while True:
            await asyncio.sleep(self.options.resync)
            self.reconciler.invalidate()
            self.trigger_all(force=True, background=True)
