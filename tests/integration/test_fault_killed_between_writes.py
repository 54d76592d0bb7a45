"""The operator killed between two writes of one reconcile.

A webhook of the test's own stops the operator's first write of one kind in the API server;
the operator, its own process, is SIGKILLed right then, so the writes of that reconcile before
it have landed and the rest have not. A fresh operator is started and must complete the set.
Throughout, every state the group's VirtualServices and DestinationRules go through is
recorded, and no route may ever name a subset that its host's DestinationRule lacks.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from kubernetes import client

from lanes.api.observations import Observations
from lanes_testbed.inprocess import delete_pod, eventually, make_pod
from lanes.importers import parse_object
from lanes.render import render_group

from .operator_support import Story, build_story, create_story, delete_story, group_exists, live_generated, matches
from .rollout_support import OperatorProcess
from .route_history import RouteHistory, routed, subsets
from .write_hold import WriteHold

pytestmark = pytest.mark.integration

Pods = dict[str, str]
"""Pod name -> the lane label it carries; each pod is of the service its name starts with."""

BASE: Pods = {"mocka-v1": "base", "mockb-v1": "base", "mockc-v1": "base"}


def relabel(lane: str) -> Callable[[client.CoreV1Api, str], None]:
    def change(core: client.CoreV1Api, namespace: str) -> None:
        core.patch_namespaced_pod("mocka-canary", namespace, {"metadata": {"labels": {"ASM_TRAFFIC_TAG": lane}}})

    return change


def add_canary(core: client.CoreV1Api, namespace: str) -> None:
    make_pod(core, namespace, "mocka-canary", {"app": "mocka", "ASM_TRAFFIC_TAG": "canary"})


def remove_canary(core: client.CoreV1Api, namespace: str) -> None:
    delete_pod(core, namespace, "mocka-canary")


@dataclass(frozen=True)
class Step:
    name: str
    change: Callable[[client.CoreV1Api, str], None]
    after: Pods
    held: str
    # mocka's DestinationRule subsets and the subsets its VirtualService routes to, at the kill
    at_kill: tuple[set[str], set[str]]


STEPS = [
    Step("subset added", add_canary, {**BASE, "mocka-canary": "canary"}, "virtualservices",
         ({"base", "canary"}, {"base"})),
    Step("subset replaced", relabel("gray"), {**BASE, "mocka-canary": "gray"}, "virtualservices",
         ({"base", "canary", "gray"}, {"base", "canary"})),
    Step("subset removed", remove_canary, BASE, "destinationrules", ({"base", "gray"}, {"base"})),
]


def with_gray_lane(story: Story) -> Story:
    """The story with a third lane, `gray`, that a canary pod can move to."""
    lane = copy.deepcopy(story.lanes[1])
    lane["metadata"] = {"name": story.lane("gray"), "labels": {"swimlane-group": story.name}}
    lane["spec"] = {"labelSelector": {"ASM_TRAFFIC_TAG": "gray"}}
    story.lanes.append(lane)
    return story


def expected(story: Story, pods: Pods) -> list[dict]:
    ready: dict[str, list[str]] = {}
    for name, lane in sorted(pods.items()):
        ready.setdefault(story.key(name.split("-")[0]), []).append(story.lane(lane))
    return render_group(
        parse_object(story.group), [parse_object(lane) for lane in story.lanes], Observations(ready=ready)
    )


def mocka_routes(api: client.ApiClient, story: Story) -> tuple[set[str], set[str]]:
    """mocka's DestinationRule subsets and the subsets its VirtualService routes to, as plain lane names."""
    host = f"mocka.{story.namespace}.svc.cluster.local"
    live = live_generated(api, story.name)
    dr = next(o for o in live if o["kind"] == "DestinationRule" and o["spec"]["host"] == host)
    vs = next(o for o in live if o["kind"] == "VirtualService" and o["spec"].get("hosts") == [host])
    plain = lambda names: {n.rsplit("-", 1)[0] for n in names}  # noqa: E731
    return plain(subsets(dr)), plain(s for h, s in routed(vs) if h == host)


def enter(core: client.CoreV1Api, namespace: str, pods: Pods) -> None:
    for name, lane in sorted(pods.items()):
        make_pod(core, namespace, name, {"app": name.split("-")[0], "ASM_TRAFFIC_TAG": lane})


def test_a_reconcile_cut_between_two_writes_never_routes_to_a_missing_subset(
    control_plane, kube_api, namespace, tmp_path
) -> None:
    """Three changes, each cut by a kill and completed by a fresh operator: a subset added
    (DestinationRule first), one replaced by another (the rule with both first, routes, then the
    rule as desired) and one removed (VirtualService first)."""
    story = with_gray_lane(build_story(namespace))
    core = client.CoreV1Api(kube_api)
    config = f"kill-{uuid.uuid4().hex[:6]}.lanes.dev"
    log = tmp_path / "operator.log"
    operator = OperatorProcess(control_plane.kubeconfig, config, log)
    history_api = control_plane.api_client()
    try:
        operator.start()
        create_story(kube_api, story)
        enter(core, namespace, BASE)
        eventually(lambda: matches(live_generated(kube_api, story.name), expected(story, BASE)),
                   "the routes of the base pods", timeout=90)
        with RouteHistory(history_api, story.name) as history:
            for step in STEPS:
                with WriteHold(kube_api, story.name, step.held) as hold:
                    hold.armed = True
                    step.change(core, namespace)
                    assert hold.holding.wait(60), f"{step.name}: the operator wrote no {step.held}"
                    operator.kill()
                    hold.release()
                    assert mocka_routes(kube_api, story) == step.at_kill, (
                        f"{step.name}: the kill did not come between two writes"
                    )
                    operator.start()
                    eventually(lambda: matches(live_generated(kube_api, story.name), expected(story, step.after)),
                               f"{step.name}: a restarted operator to complete the set", timeout=90)
                kind = hold.held["kind"]["kind"]
                assert kind == ("VirtualService" if step.held == "virtualservices" else "DestinationRule")
        assert len(history.states()) > len(STEPS) * 2, "the history missed writes"
        assert history.violations() == []
    finally:
        if operator.process is None:
            operator.start()
        delete_story(kube_api, story)
        eventually(lambda: not group_exists(kube_api, story.name), "the operator to finalize the group", timeout=90)
        operator.kill()
        history_api.close()
        try:
            client.AdmissionregistrationV1Api(kube_api).delete_mutating_webhook_configuration(config)
        except client.exceptions.ApiException:
            pass
    assert "Traceback" not in log.read_text()
