"""The mock-chain story on a real API server, for the operator's integration tests.

Group and lane names carry a per-test suffix, since both kinds are cluster-scoped and every
test shares one control plane; services live in the test's own namespace.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from kubernetes import client

from lanes.api.observations import Observations
from lanes.importers import convert_document, parse_object
from lanes_testbed.istioctl import Message, analyze, ensure_istioctl, unexpected
from lanes.kube.apply import list_owned
from lanes.kube.kinds import SWIMLANE, SWIMLANEGROUP
from lanes.kube.objects import Objects
from lanes.kube.ownership import owners
from lanes_testbed.inprocess import delete_pod, eventually, make_pod
from lanes.render import object_key, render_group
from tests.conftest import REFERENCE

INPUTS = REFERENCE / "asm-mock-chain-inputs.yaml"
SERVICES = ("mocka", "mockb", "mockc")

# The story's states as pods (service, lane) and as the table's DR subsets per service.
STATES: dict[str, list[tuple[str, str]]] = {
    "0": [("mocka", "base"), ("mockb", "base"), ("mockc", "base")],
    "1": [("mocka", "base"), ("mocka", "canary"), ("mockb", "base"), ("mockc", "base")],
    "2": [(s, lane) for s in SERVICES for lane in ("base", "canary")],
    "3": [("mocka", "base"), ("mocka", "canary"), ("mockb", "base"), ("mockc", "base"), ("mockc", "canary")],
    "4": [("mocka", "base"), ("mockb", "base"), ("mockc", "base")],
}
SUBSETS: dict[str, dict[str, list[str]]] = {
    "0": {"mocka": ["base"], "mockb": ["base"], "mockc": ["base"]},
    "1": {"mocka": ["base", "canary"], "mockb": ["base"], "mockc": ["base"]},
    "2": {"mocka": ["base", "canary"], "mockb": ["base", "canary"], "mockc": ["base", "canary"]},
    "3": {"mocka": ["base", "canary"], "mockb": ["base"], "mockc": ["base", "canary"]},
    "4": {"mocka": ["base"], "mockb": ["base"], "mockc": ["base"]},
}


def reference_documents() -> list[dict]:
    return [convert_document(d) for d in yaml.safe_load_all(INPUTS.read_text()) if d]


@dataclass
class Story:
    """The story's objects, renamed for one test."""

    namespace: str
    suffix: str | None
    group: dict
    lanes: list[dict]
    services: list[dict] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.group["metadata"]["name"]

    def lane(self, plain: str) -> str:
        """The cluster name of the story's lane `base` or `canary`."""
        return f"{plain}-{self.suffix}" if self.suffix else plain

    def key(self, service: str) -> str:
        return f"{self.namespace}/{service}"

    def observations(self, state: str) -> Observations:
        """What the story's table says for a state, in this test's names."""
        return Observations(
            ready={self.key(s): [self.lane(l) for l in lanes] for s, lanes in SUBSETS[state].items()}
        )

    def expected(self, state: str) -> list[dict]:
        """What `render_group` gives for a state."""
        group = parse_object(self.group)
        lanes = [parse_object(lane) for lane in self.lanes]
        return render_group(group, lanes, self.observations(state))


_DEFAULT = object()


def build_story(namespace: str, flavour: str = "istio", suffix: str | None | object = _DEFAULT) -> Story:
    """The reference inputs as lanes.dev objects in `namespace`, names ending in `-suffix`.

    The suffix defaults to the namespace's random tail; None keeps the reference names.
    """
    if suffix is _DEFAULT:
        suffix = namespace.rsplit("-", 1)[-1]

    def named(plain: str) -> str:
        return f"{plain}-{suffix}" if suffix else plain

    docs = reference_documents()
    group = copy.deepcopy(next(d for d in docs if d["kind"] == "SwimLaneGroup"))
    group["metadata"] = {"name": named("rollout")}
    group["spec"]["flavour"] = flavour
    group["spec"]["permissiveModeConfiguration"]["fallbackTarget"] = named("base")
    for service in group["spec"]["services"]:
        service["namespace"] = namespace
    lanes = []
    for lane in (d for d in docs if d["kind"] == "SwimLane"):
        lane = copy.deepcopy(lane)
        plain = lane["metadata"]["name"]
        lane["metadata"] = {"name": named(plain), "labels": {"swimlane-group": group["metadata"]["name"]}}
        for service in lane["spec"].get("services") or []:
            service["namespace"] = namespace
        for rule in lane["spec"].get("ingressRules") or []:
            rule["name"] = named(plain)
            rule["match"]["headers"]["x-asm-prefer-tag"] = {"exact": named(plain)}
            rule["route"]["destination"]["host"] = f"mocka.{namespace}.svc.cluster.local"
        lanes.append(lane)
    services = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": s, "labels": {"app": s, "service": s}},
            "spec": {"ports": [{"port": 8000, "name": "http"}], "selector": {"app": s}},
        }
        for s in SERVICES
    ]
    return Story(namespace, suffix or None, group, lanes, services)


def ensure_namespace(api: client.ApiClient, name: str) -> None:
    """Create a namespace unless it exists (Istio's install would have made istio-system)."""
    try:
        client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    except client.exceptions.ApiException as error:
        if error.status != 409:
            raise


def create_story(api: client.ApiClient, story: Story) -> None:
    """Create the gateway namespace, Services, lanes and group."""
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    ensure_namespace(api, "istio-system")
    for service in story.services:
        core.create_namespaced_service(story.namespace, service)
    for lane in story.lanes:
        custom.create_cluster_custom_object(SWIMLANE.group, SWIMLANE.version, SWIMLANE.plural, lane)
    custom.create_cluster_custom_object(SWIMLANEGROUP.group, SWIMLANEGROUP.version, SWIMLANEGROUP.plural, story.group)


def pod_name(service: str, lane: str) -> str:
    return f"{service}-{'v1' if lane == 'base' else 'canary'}"


def enter_state(api: client.ApiClient, story: Story, state: str) -> None:
    """Create and delete pods so exactly the state's pods exist, all Ready."""
    core = client.CoreV1Api(api)
    wanted = {pod_name(s, lane): (s, lane) for s, lane in STATES[state]}
    existing = {p.metadata.name for p in core.list_namespaced_pod(story.namespace).items}
    for name in sorted(existing - set(wanted)):
        delete_pod(core, story.namespace, name)
    for name, (service, lane) in sorted(wanted.items()):
        if name not in existing:
            version = "v1" if lane == "base" else "v2"
            make_pod(core, story.namespace, name, {"app": service, "version": version, "ASM_TRAFFIC_TAG": lane})


def live_generated(api: client.ApiClient, group: str) -> list[dict]:
    """Every live object the group's owner labels mark, in any flavour."""
    return list_owned(Objects(api), owners(group))


def comparable(obj: dict) -> tuple:
    """An object as the comparison sees it: identity, labels, spec."""
    metadata = obj["metadata"]
    return object_key(obj), dict(metadata.get("labels") or {}), obj.get("spec")


def matches(live: list[dict], expected: list[dict]) -> bool:
    return sorted(map(comparable, live), key=repr) == sorted(map(comparable, expected), key=repr)


def delete_story(api: client.ApiClient, story: Story) -> None:
    """Remove the group and lanes; the operator's finalizer cleans up generated objects."""
    custom = client.CustomObjectsApi(api)
    for kind, name in [(SWIMLANEGROUP, story.name), *((SWIMLANE, l["metadata"]["name"]) for l in story.lanes)]:
        try:
            custom.delete_cluster_custom_object(kind.group, kind.version, kind.plural, name)
        except client.exceptions.ApiException as error:
            if error.status != 404:
                raise


def group_exists(api: client.ApiClient, name: str) -> bool:
    custom = client.CustomObjectsApi(api)
    try:
        custom.get_cluster_custom_object(SWIMLANEGROUP.group, SWIMLANEGROUP.version, SWIMLANEGROUP.plural, name)
    except client.exceptions.ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


class Stories:
    """Stories made by one test, deleted (and their cleanup awaited) when it ends."""

    def __init__(self, api: client.ApiClient, namespace: str):
        self.api = api
        self.namespace = namespace
        self.made: list[Story] = []

    def create(self, flavour: str = "istio", state: str | None = None) -> Story:
        story = build_story(self.namespace, flavour)
        create_story(self.api, story)
        self.made.append(story)
        if state is not None:
            enter_state(self.api, story, state)
        return story

    def close(self, timeout: float = 30.0) -> None:
        for story in self.made:
            delete_story(self.api, story)
        for story in self.made:
            eventually(lambda: not group_exists(self.api, story.name), f"group {story.name} to go", timeout)


INGRESS_GATEWAY = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "Gateway",
    "metadata": {"name": "ingressgateway", "namespace": "istio-system"},
    "spec": {
        "selector": {"istio": "ingressgateway"},
        "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}],
    },
}


def namespace_of(message: Message) -> str:
    kind, _, name = message.object.partition(" ")
    return name if kind == "Namespace" else name.partition("/")[0]


def assert_analyzed_clean(kubeconfig: Path, namespace: str, when: str) -> None:
    """`istioctl analyze -A` finds nothing lanes should answer for in the test's namespace or the
    gateway's; other tests share the control plane, so their namespaces are not this test's."""
    messages = analyze(ensure_istioctl(), kubeconfig=kubeconfig)
    left = [m for m in unexpected(messages) if namespace_of(m) in {namespace, "istio-system"}]
    assert left == [], f"{when}: istioctl analyze reported:\n" + "\n".join(map(str, left))
