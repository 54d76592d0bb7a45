"""What the mesh sync keeps of pods, and which pods become endpoints."""

from __future__ import annotations

from lanes_testbed.mesh.sync import mesh_endpoints, reduce_pod


def pod(ip: str | None, ready: bool = True, deleting: bool = False, **labels: str) -> dict:
    return {
        "metadata": {
            "name": f"p-{ip}", "namespace": "default", "labels": labels or {"app": "mocka"},
            "resourceVersion": "7", "managedFields": [{"manager": "kubelet"}],
            **({"deletionTimestamp": "2026-01-01T00:00:00Z"} if deleting else {}),
        },
        "spec": {"containers": [{"name": "c", "image": "x:1.0", "env": [{"name": "a", "value": "b"}],
                                 "ports": [{"containerPort": 9000}]}]},
        "status": {
            "podIP": ip,
            "conditions": [{"type": "PodScheduled", "status": "True"},
                           {"type": "Ready", "status": "True" if ready else "False",
                            "lastTransitionTime": "2026-01-01T00:00:00Z"}],
        },
    }


def test_a_reduced_pod_gives_the_same_endpoint() -> None:
    full = pod("127.0.0.20", ASM_TRAFFIC_TAG="canary", app="mocka")
    assert mesh_endpoints([reduce_pod(full)]) == mesh_endpoints([full])
    reduced = reduce_pod(full)
    assert "managedFields" not in reduced["metadata"]
    assert reduced["status"]["conditions"] == [{"type": "Ready", "status": "True"}]


def test_only_ready_loopback_pods_with_an_ip_serve() -> None:
    pods = [pod("127.0.0.20"), pod("127.0.0.21", ready=False), pod(None), pod("10.1.2.3"),
            pod("127.0.0.22", deleting=True)]
    endpoints = mesh_endpoints(reduce_pod(p) for p in pods)
    assert [(e.ip, e.ready, e.port) for e in endpoints] == [("127.0.0.20", True, 9000),
                                                             ("127.0.0.21", False, 9000)]
