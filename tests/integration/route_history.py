"""Every state the live VirtualServices and DestinationRules of one group went through, and the
routes in each that named a subset missing from their host's DestinationRule.

Both kinds are watched from a quiet start; events are put in one order by resourceVersion,
which on this test bed is etcd's revision, one counter for every write to any object, so the
merged history is the order the API server stored them in.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from lanes.kube.objects import label_selector
from lanes.render import object_key, owner_selector

from .rollout_support import Background

ISTIO = "networking.istio.io"
PLURALS = {"VirtualService": "virtualservices", "DestinationRule": "destinationrules"}


def routed(vs: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(host, subset) of every destination a VirtualService routes to with a subset."""
    for route in (vs.get("spec") or {}).get("http") or []:
        for destination in (d.get("destination") or {} for d in route.get("route") or []):
            if destination.get("subset"):
                yield destination.get("host", ""), destination["subset"]


def subsets(dr: Mapping[str, Any] | None) -> set[str]:
    return {s.get("name") for s in ((dr or {}).get("spec") or {}).get("subsets") or []}


def dangling(state: Mapping[tuple, dict]) -> list[str]:
    """Routes in one state naming a subset that no DestinationRule of their host has."""
    by_host: dict[str, set[str]] = {}
    for obj in state.values():
        if obj["kind"] == "DestinationRule":
            by_host.setdefault(obj["spec"].get("host", ""), set()).update(subsets(obj))
    return [
        f"VirtualService {obj['metadata']['namespace']}/{obj['metadata']['name']} -> {host} subset {subset}"
        for obj in state.values() if obj["kind"] == "VirtualService"
        for host, subset in routed(obj) if subset not in by_host.get(host, set())
    ]


@dataclass
class Event:
    revision: int
    type: str
    obj: dict


class _Watcher(Background):
    def __init__(self, history: RouteHistory, kind: str, since: str):
        super().__init__(f"watch-{kind}")
        self.history, self.kind, self.since = history, kind, since

    def _run(self) -> None:
        while not self._stop.is_set():
            stream = watch.Watch()
            try:
                for event in stream.stream(
                    self.history.custom.list_cluster_custom_object, ISTIO, "v1", PLURALS[self.kind],
                    label_selector=self.history.selector, resource_version=self.since, timeout_seconds=2,
                ):
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        self.history.gaps.append(f"{self.kind} watch: {obj}")
                        return
                    obj.setdefault("kind", self.kind)
                    self.since = obj["metadata"]["resourceVersion"]
                    self.history.record(Event(int(self.since), event["type"], obj))
                    if self._stop.is_set():
                        break
            except ApiException as error:
                self.history.gaps.append(f"{self.kind} watch: {error.status} {error.reason}")
                return
            finally:
                stream.stop()


class RouteHistory:
    """Records a group's VirtualServices and DestinationRules from now on, on its own connection.

    Start it while nothing writes them: the first state is what two lists return.
    """

    def __init__(self, api: client.ApiClient, group: str, flavour: str = "istio"):
        self.custom = client.CustomObjectsApi(api)
        self.selector = label_selector(owner_selector(group, flavour))
        self.events: list[Event] = []
        self.gaps: list[str] = []
        self._lock = threading.Lock()
        self.initial: dict[tuple, dict] = {}
        self._watchers: list[_Watcher] = []

    def record(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def __enter__(self) -> RouteHistory:
        for kind, plural in PLURALS.items():
            listing = self.custom.list_cluster_custom_object(ISTIO, "v1", plural, label_selector=self.selector)
            for obj in listing["items"]:
                obj.setdefault("kind", kind)
                self.initial[object_key(obj)] = obj
            self._watchers.append(_Watcher(self, kind, listing["metadata"]["resourceVersion"]))
        for watcher in self._watchers:
            watcher.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        for watcher in self._watchers:
            watcher.__exit__()

    def states(self) -> list[tuple[int, dict[tuple, dict]]]:
        """The initial state, then the state after each recorded write, oldest first."""
        with self._lock:
            events = sorted(self.events, key=lambda e: e.revision)
        state = dict(self.initial)
        found = [(0, dict(state))]
        for event in events:
            key = object_key(event.obj)
            if event.type == "DELETED":
                state.pop(key, None)
            else:
                state[key] = event.obj
            found.append((event.revision, dict(state)))
        return found

    def violations(self) -> list[str]:
        """Every dangling route of every state, with the revision it was seen at."""
        problems = [f"history has a gap: {gap}" for gap in self.gaps]
        for revision, state in self.states():
            problems += [f"at revision {revision}: {route}" for route in dangling(state)]
        return problems
