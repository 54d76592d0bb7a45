"""The simulated node (benchmarks only) on the real control plane: a Deployment's pods are bound,
marked Running and Ready with distinct pod IPs without any process, and scaled-down pods go."""

from __future__ import annotations

import uuid

from kubernetes import client

from lanes_testbed.node.simulated import SimulatedNode
from lanes_testbed.inprocess import eventually


def test_pods_are_ready_without_running_and_deletions_are_confirmed(control_plane, kube_api, namespace) -> None:
    apps, core = client.AppsV1Api(kube_api), client.CoreV1Api(kube_api)
    name = f"sim-{uuid.uuid4().hex[:6]}"
    apps.create_namespaced_deployment(namespace, {
        "metadata": {"name": "web"},
        "spec": {"replicas": 5, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "registry.invalid/none:1"}]}}},
    })

    def pods() -> list:
        return [p for p in core.list_namespaced_pod(namespace).items if not p.metadata.deletion_timestamp]

    def ready(pod) -> bool:
        return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])

    with SimulatedNode(control_plane.kubeconfig, name, namespaces=[namespace]):
        eventually(lambda: len(pods()) == 5 and all(ready(p) for p in pods()), "5 pods Ready")
        listed = pods()
        assert {p.spec.node_name for p in listed} == {name}
        assert {p.status.phase for p in listed} == {"Running"}
        assert len({p.status.pod_ip for p in listed}) == 5
        eventually(lambda: apps.read_namespaced_deployment(namespace=namespace, name="web").status.available_replicas == 5,
                   "the Deployment available")
        apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 2}})
        eventually(lambda: len(core.list_namespaced_pod(namespace).items) == 2, "scaled-down pods deleted")
    assert core.read_node(name).metadata.name == name
    core.delete_node(name)
