"""A group in ASM's trace-ID mode on a real API server: the operator generates the WasmPlugins
that load the trace-affinity module, keeps them like its routes, and removes them with the group.
"""

from __future__ import annotations

import pytest
from kubernetes import client

from lanes.importers import parse_object
from lanes.kube.kinds import SWIMLANEGROUP, WASMPLUGIN
from lanes.operator.runtime import Options
from lanes_testbed.inprocess import OperatorThread, eventually
from lanes.render import TraceAffinityModule, render_group

from .operator_support import delete_story, enter_state, group_exists, live_generated, matches

pytestmark = pytest.mark.integration

MODULE = TraceAffinityModule(url="https://modules.example/lanes/traceaffinity.wasm",
                             sha256="ab" * 32, max_entries=2000, max_age_seconds=30)


@pytest.fixture(scope="module")
def operator(control_plane):
    options = Options(kubeconfig=str(control_plane.kubeconfig), metrics_port=None,
                      trace_affinity=MODULE)
    with OperatorThread(options) as running:
        yield running


def plugins(objects: list[dict]) -> list[dict]:
    return [o for o in objects if o["kind"] == "WasmPlugin"]


def test_trace_id_mode_group_gets_wasmplugins_removed_with_it(operator, stories, kube_api) -> None:
    story = stories.create("istio")
    enter_state(kube_api, story, "1")
    group = parse_object(story.group)
    lanes = [parse_object(lane) for lane in story.lanes]
    expected = render_group(group, lanes, story.observations("1"), trace_affinity=MODULE)
    assert len(plugins(expected)) == 3
    live = eventually(
        lambda: (lambda objs: objs if matches(objs, expected) else None)(
            live_generated(kube_api, story.name)),
        "the group's routes and WasmPlugins",
    )
    found = plugins(live)
    assert {p["apiVersion"] for p in found} == {"extensions.istio.io/v1alpha1"}
    assert {p["spec"]["sha256"] for p in found} == {MODULE.sha256}

    custom = client.CustomObjectsApi(kube_api)
    edited = found[-1]
    custom.patch_namespaced_custom_object(
        WASMPLUGIN.group, WASMPLUGIN.version, edited["metadata"]["namespace"], WASMPLUGIN.plural,
        edited["metadata"]["name"], {"spec": {"pluginConfig": {"maxEntries": 1}}},
    )
    operator.runtime.trigger_all(force=True)
    eventually(
        lambda: matches(live_generated(kube_api, story.name), expected) or None,
        "the edited WasmPlugin restored",
    )

    delete_story(kube_api, story)
    eventually(lambda: not group_exists(kube_api, story.name) or None, "the group gone")
    assert eventually(lambda: live_generated(kube_api, story.name) == [] or None,
                      "everything the group generated removed")


def test_a_group_outside_trace_id_mode_gets_none(operator, stories, kube_api) -> None:
    story = stories.create("istio")
    story.group["spec"]["permissiveModeConfiguration"].pop("traceHeader", None)
    custom = client.CustomObjectsApi(kube_api)
    custom.patch_cluster_custom_object(
        SWIMLANEGROUP.group, SWIMLANEGROUP.version, SWIMLANEGROUP.plural, story.name,
        {"spec": {"permissiveModeConfiguration": {"traceHeader": None}}},
    )
    enter_state(kube_api, story, "0")
    group = parse_object(story.group)
    lanes = [parse_object(lane) for lane in story.lanes]
    expected = render_group(group, lanes, story.observations("0"), trace_affinity=MODULE)
    assert plugins(expected) == []
    eventually(
        lambda: matches(live_generated(kube_api, story.name), expected) or None,
        "routes without WasmPlugins",
    )
