"""Every state a lane release's objects went through, in the API server's own order.

`History` watches the group's gateway VirtualService, and the VirtualServices,
DestinationRules, Deployments and pods of the test's namespace, for the length of a `with`
block. Each watch event carries the resourceVersion it was written at; with one etcd behind
the API server these are etcd revisions, one sequence for every object, so sorting the events
of all watches by it and applying them in turn replays each moment the cluster passed through,
not only the ones a poll happened to see.

A watch's first events list each object as it stands, not how it got there, so the replay
starts at a mark written once every watch has listed: from then on every write is seen.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from lanes_testbed.inprocess import Background
from lanes.render.steps import entered_weight

ISTIO = ("networking.istio.io", "v1")


@dataclass
class Moment:
    """The objects as they stood after one write, by kind then name."""

    revision: int
    objects: dict[str, dict[str, dict]] = field(default_factory=dict)

    def of(self, kind: str) -> dict[str, dict]:
        return self.objects.get(kind, {})


class _Stream(Background):
    """One watch, from its initial listing on, collecting (revision, kind, type, object)."""

    def __init__(self, kind: str, list_call: Callable, args: tuple, kwargs: dict,
                 sink: list, lock: threading.Lock):
        super().__init__(f"history-{kind}")
        self.kind, self.list_call, self.args, self.kwargs = kind, list_call, args, kwargs
        self.sink, self.lock = sink, lock
        self.last = 0
        self.listed = threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            stream = watch.Watch()
            options = dict(self.kwargs, timeout_seconds=2)
            if self.last:
                options["resource_version"] = str(self.last)
            try:
                for event in stream.stream(self.list_call, *self.args, **options):
                    body = event["raw_object"]
                    version = int(body["metadata"]["resourceVersion"])
                    self.last = max(self.last, version)
                    self.listed.set()
                    with self.lock:
                        self.sink.append((version, self.kind, event["type"], body))
                    if self._stop.is_set():
                        break
            except ApiException as error:
                if error.status == 410:
                    raise AssertionError(f"{self.kind} watch expired; the history has a gap")
                logging.getLogger(__name__).warning("%s watch: %s", self.kind, error)
            finally:
                stream.stop()


class History:
    """The recorded writes of a lane release's objects; `moments()` replays them in order."""

    def __init__(self, api: client.ApiClient, namespace: str, gateway: str):
        custom, apps, core = client.CustomObjectsApi(api), client.AppsV1Api(api), client.CoreV1Api(api)
        self.core, self.namespace = core, namespace
        self.begin = 0
        self.events: list[tuple[int, str, str, dict]] = []
        lock = threading.Lock()
        sources = {
            "gateway": (custom.list_namespaced_custom_object,
                        (*ISTIO, "istio-system", "virtualservices"),
                        {"field_selector": f"metadata.name={gateway}"}),
            "virtualservices": (custom.list_namespaced_custom_object,
                                (*ISTIO, namespace, "virtualservices"), {}),
            "destinationrules": (custom.list_namespaced_custom_object,
                                 (*ISTIO, namespace, "destinationrules"), {}),
            "deployments": (apps.list_namespaced_deployment, (namespace,), {}),
            "pods": (core.list_namespaced_pod, (namespace,), {}),
        }
        self.streams = [_Stream(kind, call, args, kwargs, self.events, lock)
                        for kind, (call, args, kwargs) in sources.items()]

    def __enter__(self) -> History:
        for stream in self.streams:
            stream.__enter__()
        for stream in self.streams:
            assert stream.listed.wait(10), f"the {stream.kind} watch listed nothing"
        time.sleep(0.5)
        mark = self.core.create_namespaced_config_map(
            self.namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(generate_name="history-")))
        self.begin = int(mark.metadata.resource_version)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for stream in self.streams:
            stream.__exit__(*exc_info)

    def moments(self) -> Iterator[Moment]:
        """Each state in turn, from the mark to the last write recorded."""
        seen: set[tuple[int, str, str, str]] = set()
        moment = Moment(0)
        marked = False
        for revision, kind, kind_of_event, body in sorted(self.events, key=lambda e: e[0]):
            name = body["metadata"]["name"]
            key = (revision, kind, kind_of_event, name)
            if key in seen:  # a restarted watch may repeat its last event
                continue
            seen.add(key)
            if revision > self.begin and not marked:
                marked = True
                moment.revision = self.begin
                yield moment
            objects = moment.objects.setdefault(kind, {})
            if kind_of_event == "DELETED":
                objects.pop(name, None)
            else:
                objects[name] = body
            moment.revision = revision
            if marked:
                yield moment
        if not marked:
            moment.revision = self.begin
            yield moment


def gateway_weight(moment: Moment, header: str, lane: str) -> int:
    """The entry weight the gateway route of a moment puts into `lane` (0 without a route)."""
    routes = list(moment.of("gateway").values())
    return entered_weight(routes[0], header, lane) if routes else 0


def lane_gaps(moment: Moment, services: tuple[str, ...], lane: str) -> list[str]:
    """What a request entering `lane` would miss at a moment: per service, its lane route,
    its lane subset, its canary Deployment, or a canary pod (none being deleted)."""
    gaps = []
    for service in services:
        routes = [v for v in moment.of("virtualservices").values()
                  if v["spec"]["hosts"][0].startswith(f"{service}.")]
        if not any(d["destination"].get("subset") == lane
                   for v in routes for r in v["spec"].get("http", []) for d in r["route"]):
            gaps.append(f"{service}: no route to the {lane} subset")
        rules = [r for r in moment.of("destinationrules").values()
                 if r["spec"]["host"].startswith(f"{service}.")]
        if not any(s["name"] == lane for r in rules for s in r["spec"].get("subsets", [])):
            gaps.append(f"{service}: no {lane} subset")
        canary = moment.of("deployments").get(f"{service}-v1-canary")
        if canary is None or canary["metadata"].get("deletionTimestamp"):
            gaps.append(f"{service}: canary Deployment gone")
        pods = [p for p in moment.of("pods").values()
                if (p["metadata"].get("labels") or {}).get("app") == service
                and "lanes.dev/canary" in p["metadata"]["labels"]
                and not p["metadata"].get("deletionTimestamp")]
        if not pods:
            gaps.append(f"{service}: no canary pod")
    return gaps
