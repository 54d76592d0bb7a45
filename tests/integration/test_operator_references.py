"""A reference to a missing object, on the real API server: a condition naming the field and an
event, within one reconcile, beside a healthy group in force; a group generates nothing for a
Service that does not exist, until it does."""

from __future__ import annotations

import uuid

import pytest
from kubernetes import client

from lanes.kube.kinds import SWIMLANEGROUP
from lanes.kube.lanesapi import LanesApi

from .operator_support import live_generated, matches
from .rollout_support import (
    IMAGE,
    Cluster,
    Operator,
    PodReadier,
    deployment,
    eventually,
    wait_for_webhook,
    workload_rollout,
)

pytestmark = pytest.mark.integration

GROUP, VERSION = "lanes.dev", "v1alpha1"


@pytest.fixture(scope="module")
def operator(control_plane, kube_api):
    with Operator(control_plane.kubeconfig, f"refs-{uuid.uuid4().hex[:6]}.lanes.dev") as running:
        wait_for_webhook(kube_api, running.webhook.config_name, running.webhook.port)
        yield running


def conditions(body: dict | None) -> dict[str, dict]:
    return {c["type"]: c for c in ((body or {}).get("status") or {}).get("conditions") or []}


def events(api: client.ApiClient, namespace: str, name: str) -> list[dict]:
    listed = client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}")
    return [{"reason": e.reason, "type": e.type, "message": e.message} for e in listed.items]


def test_a_rollout_naming_no_deployment_says_so_then_takes_it_once_created(
    operator, kube_api, namespace
) -> None:
    cluster = Cluster(kube_api, namespace)
    with PodReadier(kube_api, namespace):
        cluster.create_rollout(workload_rollout("rollouts-nope", "nope-v1"))
        progressing = eventually(
            lambda: conditions(cluster.rollout("rollouts-nope")).get("Progressing"),
            "a condition on the rollout")
        assert (progressing["status"], progressing["reason"]) == ("False", "WorkloadNotFound")
        assert progressing["message"] == (
            f"spec.workloadRef.name: Deployment nope-v1 not found in namespace {namespace}")
        found = eventually(lambda: [e for e in events(kube_api, namespace, "rollouts-nope")
                                    if e["reason"] == "WorkloadNotFound"], "the event")
        assert found[0]["type"] == "Warning" and "spec.workloadRef.name" in found[0]["message"]

        cluster.create_deployment(deployment("nope-v1", "nope", f"{IMAGE}:1.0"))
        cluster.wait_phase("rollouts-nope", "Healthy")
        assert "WorkloadNotFound" not in {c["reason"] for c in conditions(
            cluster.rollout("rollouts-nope")).values()}
        cluster.delete_rollouts()


def test_a_lane_release_naming_no_swimlane_says_so(operator, kube_api, namespace) -> None:
    custom = client.CustomObjectsApi(kube_api)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "lanereleases", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "LaneRelease", "metadata": {"name": "seed"},
        "spec": {"swimLaneRef": {"name": "no-such-lane"}, "steps": [{"weight": 10}]}})
    try:
        ready = eventually(lambda: conditions(custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "lanereleases", "seed")).get("Ready"), "a condition")
        assert (ready["status"], ready["reason"]) == ("False", "SwimLaneNotFound")
        assert ready["message"].startswith("spec.swimLaneRef.name: SwimLane no-such-lane not found")
        eventually(lambda: any(e["reason"] == "SwimLaneNotFound" and e["type"] == "Warning"
                               for e in events(kube_api, namespace, "seed")), "the event")
    finally:
        custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "lanereleases", "seed")


def test_a_group_listing_a_missing_service_generates_nothing_for_it_until_it_exists(
    operator, stories, kube_api, namespace
) -> None:
    story = stories.create(state="1")
    eventually(lambda: matches(live_generated(kube_api, story.name), story.expected("1")),
               "routes in force")
    custom = client.CustomObjectsApi(kube_api)
    services = [*story.group["spec"]["services"], {"name": "mockz", "namespace": namespace}]
    custom.patch_cluster_custom_object(SWIMLANEGROUP.group, SWIMLANEGROUP.version,
                                       SWIMLANEGROUP.plural, story.name,
                                       {"spec": {"services": services}})

    def group() -> dict:
        return custom.get_cluster_custom_object(SWIMLANEGROUP.group, SWIMLANEGROUP.version,
                                                SWIMLANEGROUP.plural, story.name)

    degraded = eventually(lambda: (lambda c: c if c.get("reason") == "ServicesNotFound" else None)(
        conditions(group()).get("Degraded", {})), "the missing service in the group's status")
    index = len(services) - 1
    assert degraded["status"] == "True"
    assert f"spec.services[{index}]: Service {namespace}/mockz not found" in degraded["message"]
    assert conditions(group())["Ready"]["status"] == "True", "the other services' routes stay in force"
    hosts = {h for o in live_generated(kube_api, story.name)
             for h in [o["spec"].get("host"), *(o["spec"].get("hosts") or [])] if h}
    assert f"mockz.{namespace}.svc.cluster.local" not in hosts
    assert f"mocka.{namespace}.svc.cluster.local" in hosts
    eventually(lambda: any(e["reason"] == "ServicesNotFound" and f"spec.services[{index}]" in e["message"]
                           for e in LanesApi(kube_api).events_of(story.name, "SwimLaneGroup")),
               "a ServicesNotFound event")

    client.CoreV1Api(kube_api).create_namespaced_service(namespace, {
        "metadata": {"name": "mockz"},
        "spec": {"ports": [{"port": 8000, "name": "http"}], "selector": {"app": "mockz"}}})
    eventually(lambda: any(o["spec"].get("host") == f"mockz.{namespace}.svc.cluster.local"
                           for o in live_generated(kube_api, story.name)),
               "mockz's routes once the Service exists")
    eventually(lambda: conditions(group())["Degraded"]["status"] == "False", "no longer degraded")
