"""Generated manifests, valid and broken, applied to a live operator beside a healthy group.

Hypothesis builds a SwimLaneGroup, its lanes and a WorkloadRollout, then breaks some of them:
bad types, missing fields, values out of range, bad header names, unknown services, lanes
selecting the same pods, a fallback that is no lane. Each object is either refused by the API
server, with a message naming the broken field, or stored, and then the operator's status on
it (or on its group) names every field broken in it. Throughout, the operator (its own process)
stays up and logs no traceback, and the healthy group's routes are never written.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lanes.kube.kinds import SWIMLANE, SWIMLANEGROUP
from lanes_testbed.inprocess import eventually, make_pod

from .operator_support import build_story, create_story, delete_story, enter_state, group_exists, live_generated
from .rollout_support import GROUP, PLURAL, VERSION, OperatorProcess, workload_rollout
from .test_operator_invalid import DELETE, edited

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Breakage:
    """One way to break one object: which (`group`, `base`, `canary` or `rollout`), the field
    every message about it must name, and the edit."""

    target: str
    path: str
    edit: Callable[[dict], dict]


def setting(path: str, value: Any) -> Callable[[dict], dict]:
    return lambda body: edited(body, path, value)


def appended(path: str, item: Callable[[dict], Any]) -> Callable[[dict], dict]:
    def edit(body: dict) -> dict:
        body = copy.deepcopy(body)
        target = body
        for part in path.split("."):
            target = target.setdefault(part, [] if part == path.rsplit(".", 1)[-1] else {})
        target.append(item(body))
        return body

    return edit


# Header names the schema must refuse: upper case, spaces, separators, empty.
bad_headers = st.one_of(
    st.just(""),
    st.text(alphabet="abcXYZ -:/@(),;=", min_size=1, max_size=12).filter(lambda s: any(c in s for c in "XYZ -:/@(),;=")),
)

BREAKAGES: dict[str, st.SearchStrategy[Breakage]] = {
    "group-services-missing": st.just(Breakage("group", "spec.services", setting("spec.services", DELETE))),
    "group-services-not-a-list": st.just(Breakage("group", "spec.services", setting("spec.services", "mocka"))),
    "group-service-duplicate": st.just(Breakage(
        "group", "spec.services[0]", appended("spec.services", lambda b: copy.deepcopy(b["spec"]["services"][0])))),
    "group-service-bad-name": st.sampled_from(["Mock_A", "mock.a", "-mocka"]).map(
        lambda v: Breakage("group", "spec.services[0].name", setting("spec.services.0.name", v))),
    "group-flavour": st.sampled_from(["linkerd", "", "ISTIO"]).map(
        lambda v: Breakage("group", "spec.flavour", setting("spec.flavour", v))),
    "group-permissive-not-bool": st.sampled_from(["yes", 1, "true"]).map(
        lambda v: Breakage("group", "spec.isPermissive", setting("spec.isPermissive", v))),
    "group-route-header": bad_headers.map(lambda v: Breakage(
        "group", "spec.permissiveModeConfiguration.routeHeader",
        setting("spec.permissiveModeConfiguration.routeHeader", v))),
    "group-fallback-unknown-lane": st.sampled_from(["gold", "base"]).map(lambda v: Breakage(
        "group", "spec.permissiveModeConfiguration.fallbackTarget",
        setting("spec.permissiveModeConfiguration.fallbackTarget", v))),
    "group-strategy": st.just(Breakage(
        "group", "spec.ingress.ingressRouting.ingressRoutingStrategy",
        setting("spec.ingress.ingressRouting.ingressRoutingStrategy", "random"))),
    "lane-selector-missing": st.sampled_from(["base", "canary"]).map(
        lambda lane: Breakage(lane, "spec.labelSelector", setting("spec.labelSelector", DELETE))),
    "lane-selector-not-a-map": st.sampled_from(["canary", ["canary"], 3]).map(
        lambda v: Breakage("canary", "spec.labelSelector", setting("spec.labelSelector", v))),
    "lanes-select-the-same-pods": st.just(Breakage(
        "canary", "spec.labelSelector", setting("spec.labelSelector", {"ASM_TRAFFIC_TAG": "base"}))),
    "lane-unknown-service": st.sampled_from(["mockz", "unknown"]).map(lambda v: Breakage(
        "base", "spec.services[0]", lambda b: {**b, "spec": {**b["spec"], "services": [
            {"name": v, "namespace": b["spec"]["services"][0]["namespace"]}]}})),
    "lane-rule-unknown-host": st.just(Breakage(
        "canary", "spec.ingressRules[0].route.destination.host",
        setting("spec.ingressRules.0.route.destination.host", "nothere"))),
    "lane-weight": st.sampled_from([150, -1, "heavy"]).map(lambda v: Breakage(
        "canary", "spec.ingressWeight.weight", setting("spec.ingressWeight", {"weight": v}))),
    "lane-rule-port": st.sampled_from([0, 70000, "http"]).map(lambda v: Breakage(
        "canary", "spec.ingressRules[0].route.destination.port",
        setting("spec.ingressRules.0.route.destination.port", v))),
    "rollout-workload-missing": st.just(Breakage("rollout", "spec.workloadRef", setting("spec.workloadRef", DELETE))),
    "rollout-replicas": st.sampled_from([-1, "many", "120%", "-5%"]).map(lambda v: Breakage(
        "rollout", "spec.strategy.canary.steps[0].replicas", setting("spec.strategy.canary.steps.0.replicas", v))),
    "rollout-steps-not-a-list": st.just(Breakage(
        "rollout", "spec.strategy.canary.steps", setting("spec.strategy.canary.steps", {"replicas": 1}))),
    "rollout-traffic": st.sampled_from(["lots", "101%", 20]).map(lambda v: Breakage(
        "rollout", "spec.strategy.canary.steps[0].traffic", setting("spec.strategy.canary.steps.0.traffic", v))),
    "rollout-pause": st.sampled_from(["soon", -3]).map(lambda v: Breakage(
        "rollout", "spec.strategy.canary.steps[0].pause.duration",
        setting("spec.strategy.canary.steps.0.pause", {"duration": v}))),
}


@dataclass
class Manifests:
    """One example: the objects to create, in order, and how each was broken."""

    objects: dict[str, dict]
    broken: dict[str, list[str]] = field(default_factory=dict)


@st.composite
def manifests(draw: st.DrawFn, namespace: str) -> Manifests:
    suffix = uuid.uuid4().hex[:6]
    story = build_story(namespace, suffix=f"gen-{suffix}")
    header = draw(st.from_regex(r"x-[a-z0-9]{1,10}(-[a-z0-9]{1,6})?", fullmatch=True))
    story.group["spec"]["permissiveModeConfiguration"]["routeHeader"] = header
    objects = {"group": story.group, "base": story.lanes[0], "canary": story.lanes[1],
               "rollout": workload_rollout(f"rollout-{suffix}", "mocka-v1")}
    objects["rollout"]["metadata"]["namespace"] = namespace
    chosen = draw(st.lists(st.sampled_from(sorted(BREAKAGES)), max_size=2, unique=True))
    found = Manifests(objects)
    for key in chosen:
        breakage = draw(BREAKAGES[key])
        if breakage.target in found.broken:
            continue
        objects[breakage.target] = breakage.edit(objects[breakage.target])
        found.broken.setdefault(breakage.target, []).append(breakage.path)
    return found


KINDS = {"group": SWIMLANEGROUP, "base": SWIMLANE, "canary": SWIMLANE}


def create(api: client.ApiClient, which: str, body: dict) -> str | None:
    """Create one object; None when stored, else the API server's message."""
    custom = client.CustomObjectsApi(api)
    try:
        if which == "rollout":
            custom.create_namespaced_custom_object(GROUP, VERSION, body["metadata"]["namespace"], PLURAL, body)
        else:
            kind = KINDS[which]
            custom.create_cluster_custom_object(kind.group, kind.version, kind.plural, body)
    except ApiException as error:
        assert error.status in (400, 422), f"{which}: {error.status} {error.body}"
        return json.loads(error.body).get("message", "")
    return None


def get(api: client.ApiClient, which: str, body: dict) -> dict | None:
    custom = client.CustomObjectsApi(api)
    name = body["metadata"]["name"]
    try:
        if which == "rollout":
            return custom.get_namespaced_custom_object(GROUP, VERSION, body["metadata"]["namespace"], PLURAL, name)
        kind = KINDS[which]
        return custom.get_cluster_custom_object(kind.group, kind.version, kind.plural, name)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def conditions(body: dict | None) -> list[dict]:
    return ((body or {}).get("status") or {}).get("conditions") or []


def observed(body: dict | None) -> bool:
    """Whether the operator has written a condition for the object's current generation."""
    generation = (body or {}).get("metadata", {}).get("generation")
    return any(c.get("observedGeneration", generation) == generation for c in conditions(body))


def messages(body: dict | None) -> str:
    return "\n".join(c.get("message") or "" for c in conditions(body))


def delete(api: client.ApiClient, which: str, body: dict) -> None:
    custom = client.CustomObjectsApi(api)
    name = body["metadata"]["name"]
    try:
        if which == "rollout":
            custom.delete_namespaced_custom_object(GROUP, VERSION, body["metadata"]["namespace"], PLURAL, name)
        else:
            kind = KINDS[which]
            custom.delete_cluster_custom_object(kind.group, kind.version, kind.plural, name)
    except ApiException as error:
        if error.status != 404:
            raise


def routes_of(api: client.ApiClient, group: str) -> list[tuple]:
    return sorted(
        (o["kind"], o["metadata"]["namespace"], o["metadata"]["name"], o["metadata"]["resourceVersion"],
         json.dumps(o["spec"], sort_keys=True))
        for o in live_generated(api, group)
    )


@pytest.fixture(scope="module")
def live(control_plane, tmp_path_factory):
    """An operator process, a healthy group in state 1 in a namespace of its own, and a
    namespace for the generated manifests (with mocka's base Deployment for the rollouts)."""
    api = control_plane.api_client()
    core = client.CoreV1Api(api)
    healthy_ns, generated_ns = (f"{kind}-{uuid.uuid4().hex[:6]}" for kind in ("healthy", "generated"))
    for name in (healthy_ns, generated_ns):
        core.create_namespace({"metadata": {"name": name}})
    log = tmp_path_factory.mktemp("generated") / "operator.log"
    operator = OperatorProcess(control_plane.kubeconfig, f"{generated_ns}.lanes.dev", log)
    healthy = build_story(healthy_ns)
    operator.start()
    try:
        create_story(api, healthy)
        enter_state(api, healthy, "1")
        eventually(lambda: len(routes_of(api, healthy.name)) == 7, "the healthy group's routes", timeout=90)
        make_pod(core, generated_ns, "mocka-v1", {"app": "mocka", "ASM_TRAFFIC_TAG": "base"})
        yield api, operator, log, healthy, generated_ns
    finally:
        delete_story(api, healthy)
        eventually(lambda: not group_exists(api, healthy.name), "the healthy group to go", timeout=60)
        operator.kill()
        for name in (healthy_ns, generated_ns):
            core.delete_namespace(name)
        admission = client.AdmissionregistrationV1Api(api)
        try:
            admission.delete_mutating_webhook_configuration(operator.config_name)
        except ApiException:
            pass
        api.close()


def test_generated_manifests_never_crash_the_operator_or_touch_other_routes(live) -> None:
    api, operator, log, healthy, namespace = live
    eventually(lambda: observed(get(api, "group", healthy.group)), "the healthy group's status")
    before = routes_of(api, healthy.name)
    examples = 0

    @settings(max_examples=25, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(example=manifests(namespace))
    def apply(example: Manifests) -> None:
        nonlocal examples
        examples += 1
        stored = []
        try:
            for which, body in example.objects.items():
                refused = create(api, which, body)
                broken = example.broken.get(which, [])
                if refused is None:
                    stored.append(which)
                    continue
                assert broken, f"a valid {which} was refused: {refused}"
                assert any(path in refused for path in broken), f"{which}: {refused!r} names none of {broken}"
            group = example.objects["group"]
            for which in stored:
                body = example.objects[which]
                if which == "rollout" and not example.broken.get(which):
                    continue  # its Deployment does not exist: nothing to report on it yet
                found = eventually(lambda: (lambda b: b if observed(b) else None)(get(api, which, body)),
                                   f"status on {which} {body['metadata']['name']}", timeout=30)
                for path in example.broken.get(which, []):
                    assert path in messages(found), f"{which}: no condition names {path}: {conditions(found)}"
                if which in ("base", "canary") and "group" in stored:
                    for path in example.broken.get(which, []):
                        assert f"{body['metadata']['name']}: {path}" in messages(get(api, "group", group))
            if not example.broken and stored:
                ready = {c["type"]: c for c in conditions(get(api, "group", group))}["Ready"]
                assert ready["status"] == "True", ready
            assert operator.process.poll() is None, "the operator exited"
        finally:
            for which in reversed(stored):
                delete(api, which, example.objects[which])
            eventually(lambda: all(get(api, w, example.objects[w]) is None for w in stored),
                       "the example's objects to go", timeout=60)

    apply()
    assert examples == 25
    time.sleep(1)
    assert routes_of(api, healthy.name) == before, "the healthy group's routes were written"
    ready = {c["type"]: c for c in conditions(get(api, "group", healthy.group))}["Ready"]
    assert ready["status"] == "True"
    assert operator.process.poll() is None, "the operator exited"
    text = log.read_text()
    assert "Traceback" not in text, text[text.index("Traceback") - 2000:text.index("Traceback") + 3000]
