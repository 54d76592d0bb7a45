"""The mock-chain story on a real API server: after each state the live objects are render's,
and `istioctl analyze` finds nothing wrong with them.

Istio flavour here, against Istio's own CRDs; the ASM flavour is in test_operator_asm.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from kubernetes import client

from lanes.kube.apply import pruned_desired
from lanes.kube.kinds import SWIMLANE, SWIMLANEGROUP
from lanes.kube.lanesapi import LanesApi
from lanes.kube.objects import Objects
from lanes.operator.runtime import Options
from lanes_testbed.inprocess import OperatorThread, eventually

from .operator_support import SUBSETS, assert_analyzed_clean, delete_story, enter_state, live_generated, matches

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def operator(control_plane):
    options = Options(kubeconfig=str(control_plane.kubeconfig), metrics_port=0, metrics_host="127.0.0.1")
    with OperatorThread(options) as running:
        yield running


def subsets_of(live: list[dict]) -> dict[str, list[str]]:
    return {
        o["spec"]["host"].split(".")[0]: [s["name"] for s in o["spec"]["subsets"]]
        for o in live
        if o["kind"] == "DestinationRule"
    }


def read(kube_api, kind, name) -> dict:
    custom = client.CustomObjectsApi(kube_api)
    return custom.get_cluster_custom_object(kind.group, kind.version, kind.plural, name)


def test_story_states_0_to_4(operator, stories, kube_api, namespace, control_plane, ingress_gateway) -> None:
    story = stories.create("istio")
    for state in "01234":
        enter_state(kube_api, story, state)
        expected = story.expected(state)
        live = eventually(
            lambda: (lambda objs: objs if matches(objs, expected) else None)(live_generated(kube_api, story.name)),
            f"state {state}'s objects",
        )
        assert subsets_of(live) == {s: [story.lane(l) for l in ls] for s, ls in SUBSETS[state].items()}
        assert {o["apiVersion"] for o in live} == {"networking.istio.io/v1"}
        canary = eventually(
            lambda: (lambda s: s if s.get("services") == sorted(
                story.key(svc) for svc, ls in SUBSETS[state].items() if "canary" in ls
            ) else None)(read(kube_api, SWIMLANE, story.lane("canary")).get("status") or {}),
            f"canary lane status in state {state}",
        )
        assert canary["conditions"][0]["type"] == "Ready"
        assert_analyzed_clean(control_plane.kubeconfig, namespace, f"state {state}")
    group = read(kube_api, SWIMLANEGROUP, story.name)
    ready = {c["type"]: c for c in group["status"]["conditions"]}
    assert ready["Ready"]["status"] == "True" and ready["Degraded"]["status"] == "False"
    assert group["status"]["generated"] == len(story.expected("4"))
    assert group["status"]["observedGeneration"] == group["metadata"]["generation"]
    reasons = [e["reason"] for e in LanesApi(kube_api).events_of(story.name, "SwimLaneGroup")]
    assert "RoutesChanged" in reasons


def test_kubectl_wait_for_ready(operator, stories, control_plane, kube_api) -> None:
    story = stories.create()
    output = control_plane.kubectl("wait", "--for=condition=Ready", "--timeout=30s", f"swimlanegroup/{story.name}")
    assert "condition met" in output
    output = control_plane.kubectl("get", "swimlanegroup", story.name)
    assert "True" in output.splitlines()[1]


def test_deleting_the_group_removes_what_it_generated(operator, stories, kube_api, namespace) -> None:
    story = stories.create("istio")
    enter_state(kube_api, story, "1")
    eventually(lambda: matches(live_generated(kube_api, story.name), story.expected("1")), "routes")
    assert "lanes.dev/cleanup" in read(kube_api, SWIMLANEGROUP, story.name)["metadata"]["finalizers"]
    delete_story(kube_api, story)
    eventually(lambda: live_generated(kube_api, story.name) == [], "generated objects to be deleted")

    def group_gone() -> bool:
        try:
            read(kube_api, SWIMLANEGROUP, story.name)
        except client.exceptions.ApiException as error:
            return error.status == 404
        return False

    eventually(group_gone, "the group to be released by the finalizer")


def test_edited_or_deleted_generated_objects_are_restored(operator, stories, kube_api, namespace) -> None:
    story = stories.create("istio")
    enter_state(kube_api, story, "1")
    expected = story.expected("1")
    eventually(lambda: matches(live_generated(kube_api, story.name), expected), "routes")
    custom = client.CustomObjectsApi(kube_api)
    dr_name = f"lanes-{story.name}-mocka"
    custom.delete_namespaced_custom_object("networking.istio.io", "v1", namespace, "destinationrules", dr_name)
    eventually(lambda: matches(live_generated(kube_api, story.name), expected), "the deleted DestinationRule back")
    custom.patch_namespaced_custom_object(
        "networking.istio.io", "v1", namespace, "virtualservices", dr_name,
        {"spec": {"http": [{"route": [{"destination": {"host": "evil.example.com"}}]}]}},
        field_manager="someone-else",
    )
    eventually(lambda: matches(live_generated(kube_api, story.name), expected), "the edited VirtualService restored")


def test_an_object_deleted_while_a_reconcile_runs_is_restored(operator, stories, kube_api, namespace) -> None:
    """The DestinationRule is deleted after a reconcile read the live objects and before it ends,
    and its deletion event arrives meanwhile: what that reconcile found in force is stale, so
    the reconcile the event asks for must compare the live objects again."""
    story = stories.create("istio")
    enter_state(kube_api, story, "1")
    expected = story.expected("1")
    eventually(lambda: matches(live_generated(kube_api, story.name), expected), "routes")
    operator.settle()
    custom = client.CustomObjectsApi(kube_api)
    dr_name = f"lanes-{story.name}-mocka"
    objects = operator.runtime.reconciler.objects
    plain_list = objects.list
    struck = threading.Event()

    def list_then_delete(kind, selector=None):
        found = plain_list(kind, selector)
        if kind.kind == "DestinationRule" and not struck.is_set():
            struck.set()
            custom.delete_namespaced_custom_object("networking.istio.io", "v1", namespace, "destinationrules", dr_name)
            time.sleep(1)  # the deletion's watch event arrives while this reconcile still runs
        return found

    objects.list = list_then_delete
    try:
        operator.trigger(story.name)
        eventually(struck.is_set, "a reconcile to list the DestinationRules")
        eventually(lambda: matches(live_generated(kube_api, story.name), expected), "the deleted DestinationRule back")
    finally:
        del objects.list


def test_metrics_endpoint(operator, stories, kube_api) -> None:
    story = stories.create()
    enter_state(kube_api, story, "1")
    eventually(lambda: matches(live_generated(kube_api, story.name), story.expected("1")), "routes")
    operator.settle()
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port(operator)}/metrics", timeout=5).read().decode()
    for name in (
        "lanes_reconciles_total",
        "lanes_reconcile_duration_seconds_bucket",
        "lanes_reconcile_errors_total",
        f'lanes_generated_objects{{group="{story.name}"}} 7.0',
        f'lanes_lanes_with_pods{{group="{story.name}"}} 2.0',
        "lanes_api_writes_total",
    ):
        assert name in text
    health = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port(operator)}/healthz", timeout=5)
    assert health.status == 200


def metrics_port(operator: OperatorThread) -> int:
    assert operator.operator.metrics_server is not None
    return operator.operator.metrics_server.port


def test_python_m_lanes_operator_starts(control_plane) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lanes.operator", "--help"], capture_output=True, text=True, check=True
    )
    assert "--metrics-port" in result.stdout


def test_kubectl_lane_status_reads_the_live_cluster(operator, stories, control_plane, kube_api) -> None:
    import typer
    from typer.testing import CliRunner

    from lanes.cli.status import status

    story = stories.create(state="1")
    eventually(lambda: matches(live_generated(kube_api, story.name), story.expected("1")), "state 1")
    operator.settle()
    app = typer.Typer()
    app.command()(status)
    runner = CliRunner()
    result = runner.invoke(app, [story.name, "--kubeconfig", str(control_plane.kubeconfig), "-o", "json"])
    assert result.exit_code == 0, result.output
    [view] = json.loads(result.output)
    canary = next(l for l in view["lanes"] if l["name"] == story.lane("canary"))
    assert [(s["service"], s["has_pods"], s["served_by"]) for s in canary["services"]] == [
        (story.key("mocka"), True, story.lane("canary")),
        (story.key("mockb"), False, story.lane("base")),
        (story.key("mockc"), False, story.lane("base")),
    ]
    tree = runner.invoke(app, [story.name, "--kubeconfig", str(control_plane.kubeconfig)], env={"COLUMNS": "250"})
    assert f"{story.key('mockb')}  ○ no pods  -> falls back to {story.lane('base')}" in tree.output
    missing = runner.invoke(app, ["no-such-group", "--kubeconfig", str(control_plane.kubeconfig)])
    assert missing.exit_code == 1 and "SwimLaneGroup/no-such-group: not found" in missing.output



def test_changing_the_flavour_replaces_the_objects(operator, stories, kube_api) -> None:
    story = stories.create("istio", state="1")
    eventually(lambda: matches(live_generated(kube_api, story.name), story.expected("1")), "istio objects")
    client.CustomObjectsApi(kube_api).patch_cluster_custom_object(
        SWIMLANEGROUP.group, SWIMLANEGROUP.version, SWIMLANEGROUP.plural, story.name, {"spec": {"flavour": "asm"}}
    )
    story.group["spec"]["flavour"] = "asm"
    # As Istio's CRDs store them: without ASM's `fallback` (see test_operator_asm.py).
    expected, _ = pruned_desired(Objects(kube_api), story.expected("1"))
    eventually(lambda: matches(live_generated(kube_api, story.name), expected), "asm objects only")
    assert {o["metadata"]["namespace"] for o in live_generated(kube_api, story.name)} == {"istio-system"}


def test_a_users_own_route_for_a_group_service_is_named_in_the_group_status(
    operator, stories, kube_api, namespace
) -> None:
    """A VirtualService lanes did not generate, for a group service's host, turns Degraded with
    reason ForeignRoutes naming it; lanes' own routes stay in force, and deleting it clears it."""
    story = stories.create("istio")
    enter_state(kube_api, story, "1")
    eventually(lambda: matches(live_generated(kube_api, story.name), story.expected("1")), "routes")
    custom = client.CustomObjectsApi(kube_api)
    own = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "mocka-retries", "namespace": namespace},
        "spec": {"hosts": ["mocka"], "http": [{"route": [{"destination": {"host": "mocka"}}],
                                                "retries": {"attempts": 3}}]},
    }
    custom.create_namespaced_custom_object("networking.istio.io", "v1", namespace, "virtualservices", own)

    def degraded() -> dict | None:
        operator.trigger(story.name)
        status = read(kube_api, SWIMLANEGROUP, story.name).get("status") or {}
        found = {c["type"]: c for c in status.get("conditions") or []}
        return found["Degraded"] if found.get("Degraded", {}).get("reason") == "ForeignRoutes" else None

    condition = eventually(degraded, "Degraded=ForeignRoutes")
    assert condition["status"] == "True"
    assert f"VirtualService {namespace}/mocka-retries (mocka)" in condition["message"]
    assert matches(live_generated(kube_api, story.name), story.expected("1"))
    custom.delete_namespaced_custom_object("networking.istio.io", "v1", namespace, "virtualservices",
                                           "mocka-retries")

    def cleared() -> dict | None:
        operator.trigger(story.name)
        status = read(kube_api, SWIMLANEGROUP, story.name).get("status") or {}
        found = {c["type"]: c for c in status.get("conditions") or []}
        return found["Degraded"] if found.get("Degraded", {}).get("reason") == "AsExpected" else None

    eventually(cleared, "Degraded=AsExpected again")
