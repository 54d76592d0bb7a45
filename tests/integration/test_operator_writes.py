"""Zero writes when nothing changed: idle, on a forced full reconcile, after a restart.

Writes are counted two ways: by the operator's own client (every request passes through one
counting ApiClient) and independently by resourceVersions on the server.
"""

from __future__ import annotations

import time

import pytest
from kubernetes import client
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lanes.kube.kinds import SWIMLANE, SWIMLANEGROUP
from lanes.operator.runtime import Options
from lanes_testbed.inprocess import OperatorThread, eventually, make_pod

from .operator_support import Stories, Story, enter_state, live_generated, matches

pytestmark = pytest.mark.integration


def options(control_plane) -> Options:
    return Options(kubeconfig=str(control_plane.kubeconfig), metrics_port=None)


def versions(api: client.ApiClient, story: Story) -> dict[str, str]:
    """resourceVersion of the group, its lanes and everything it generated."""
    custom = client.CustomObjectsApi(api)
    found = {
        f"{o['kind']}/{o['metadata']['name']}": o["metadata"]["resourceVersion"]
        for o in live_generated(api, story.name)
    }
    for kind, name in [(SWIMLANEGROUP, story.name), *((SWIMLANE, lane["metadata"]["name"]) for lane in story.lanes)]:
        body = custom.get_cluster_custom_object(kind.group, kind.version, kind.plural, name)
        found[f"{kind.kind}/{name}"] = body["metadata"]["resourceVersion"]
    return found


@pytest.fixture
def converged(control_plane, kube_api, namespace):
    """A story in state 2 with an operator that has finished with it."""
    made = Stories(kube_api, namespace)
    with OperatorThread(options(control_plane)) as operator:
        story = made.create(state="2")
        eventually(lambda: matches(live_generated(kube_api, story.name), story.expected("2")), "state 2")
        operator.settle(quiet=1.0)
        yield operator, story
        made.close()


def test_an_idle_operator_writes_nothing(converged, kube_api) -> None:
    operator, story = converged
    before, written = versions(kube_api, story), operator.writes
    time.sleep(3)
    assert operator.writes == written
    assert versions(kube_api, story) == before


def test_a_forced_full_reconcile_writes_nothing(converged, kube_api) -> None:
    operator, story = converged
    before, written = versions(kube_api, story), operator.writes
    reconciles = operator.runtime.metrics.reconciles.labels("unchanged")._value.get()
    operator.trigger(story.name, force=True)
    eventually(lambda: operator.runtime.metrics.reconciles.labels("unchanged")._value.get() > reconciles, "a reconcile")
    operator.settle()
    assert operator.writes == written
    assert versions(kube_api, story) == before


def test_pods_that_do_not_change_membership_cause_no_writes(converged, kube_api, namespace) -> None:
    operator, story = converged
    before, written = versions(kube_api, story), operator.writes
    core = client.CoreV1Api(kube_api)
    make_pod(core, namespace, "mocka-v1-second", {"app": "mocka", "ASM_TRAFFIC_TAG": "base"})
    make_pod(core, namespace, "unrelated", {"app": "other"})
    core.patch_namespaced_pod("mocka-v1", namespace, {"metadata": {"annotations": {"touched": "yes"}}})
    operator.settle()
    assert operator.writes == written
    assert versions(kube_api, story) == before


def test_a_restarted_operator_writes_nothing(control_plane, kube_api, namespace) -> None:
    made = Stories(kube_api, namespace)
    with OperatorThread(options(control_plane)) as first:
        story = made.create(state="3")
        eventually(lambda: matches(live_generated(kube_api, story.name), story.expected("3")), "state 3")
        first.settle(quiet=1.0)
    before = versions(kube_api, story)
    with OperatorThread(options(control_plane)) as second:
        eventually(lambda: second.runtime.metrics.reconciles.labels("unchanged")._value.get() >= 1, "the startup reconcile")
        second.settle(quiet=1.0)
        assert second.writes == 0
        assert versions(kube_api, story) == before
        made.close()


def test_changes_while_the_operator_was_down_are_caught_up(control_plane, kube_api, namespace) -> None:
    made = Stories(kube_api, namespace)
    with OperatorThread(options(control_plane)) as first:
        story = made.create(state="1")
        eventually(lambda: matches(live_generated(kube_api, story.name), story.expected("1")), "state 1")
        first.settle()
    enter_state(kube_api, story, "2")
    with OperatorThread(options(control_plane)):
        eventually(lambda: matches(live_generated(kube_api, story.name), story.expected("2")), "state 2 after restart")
        made.close()


def test_each_reconcile_is_a_span(control_plane, kube_api, namespace) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    made = Stories(kube_api, namespace)
    with OperatorThread(options(control_plane)) as operator:
        story = made.create(state="1")
        eventually(lambda: matches(live_generated(kube_api, story.name), story.expected("1")), "state 1")
        operator.settle()
        spans = [s for s in exporter.get_finished_spans() if s.attributes.get("lanes.group") == story.name]
        assert spans and all(s.name == "lanes.reconcile" for s in spans)
        assert {"applied"} <= {s.attributes["lanes.result"] for s in spans}
        assert sum(s.attributes["lanes.writes"] for s in spans) > 0
        made.close()
