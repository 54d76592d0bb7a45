"""The local control plane is real: versions, controllers, CRD schemas, clean shutdown."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from typer.testing import CliRunner

from lanes_testbed.cli.dev import app as dev_app
from lanes_testbed import cluster, inprocess, processes
from lanes_testbed.binaries import pinned_versions, reported_version
from lanes_testbed.controlplane import ControlPlane
from lanes_testbed.manifests import crd_names

pytestmark = pytest.mark.integration

eventually = functools.partial(inprocess.eventually, timeout=60.0, interval=0.2)


def virtual_service(name: str, **spec_extra: object) -> dict:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name},
        "spec": {
            "hosts": ["reviews"],
            "http": [
                {
                    "match": [{"headers": {"x-lane": {"exact": "feature-a"}}}],
                    "route": [{"destination": {"host": "reviews", "subset": "feature-a"}}],
                },
                {"route": [{"destination": {"host": "reviews", "subset": "base"}}]},
            ],
            **spec_extra,
        },
    }


def test_version_reports_pinned_release(control_plane: ControlPlane, kube_api: client.ApiClient) -> None:
    served = client.VersionApi(kube_api).get_code().git_version
    assert served == reported_version(control_plane.binaries)
    if control_plane.binaries.source == "build":
        assert served == pinned_versions().kubernetes


def test_every_installed_crd_is_established(
    kube_api: client.ApiClient, installed_manifests: list[Path]
) -> None:
    extensions = client.ApiextensionsV1Api(kube_api)
    names = crd_names(installed_manifests)
    assert "virtualservices.networking.istio.io" in names
    for name in names:
        conditions = extensions.read_custom_resource_definition(name).status.conditions
        assert any(c.type == "Established" and c.status == "True" for c in conditions), name


def test_deployment_gets_replicaset_and_pods_then_garbage_collected(
    kube_api: client.ApiClient, namespace: str
) -> None:
    apps, core = client.AppsV1Api(kube_api), client.CoreV1Api(kube_api)
    labels = {"app": "reviews", "lanes.dev/lane": "base"}
    deployment = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="reviews"),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="app", image="example.invalid/reviews:1")]
                ),
            ),
        ),
    )
    created = apps.create_namespaced_deployment(namespace, deployment)

    def owned_by(owner: object, objects: list) -> list:
        return [
            o for o in objects
            if any(ref.uid == owner.metadata.uid for ref in o.metadata.owner_references or [])
        ]

    [replica_set] = eventually(
        lambda: owned_by(created, apps.list_namespaced_replica_set(namespace).items),
        "a ReplicaSet owned by the Deployment",
    )
    def two_pods() -> list | None:
        pods = owned_by(replica_set, core.list_namespaced_pod(namespace).items)
        return pods if len(pods) == 2 else None

    pods = eventually(two_pods, "two Pods owned by the ReplicaSet")
    assert all(pod.spec.service_account_name == "default" for pod in pods)

    apps.delete_namespaced_deployment("reviews", namespace, propagation_policy="Background")
    eventually(
        lambda: not apps.list_namespaced_replica_set(namespace).items
        and not core.list_namespaced_pod(namespace).items,
        "the garbage collector to delete the ReplicaSet and its Pods",
    )


def test_istio_virtual_service_round_trips(kube_api: client.ApiClient, namespace: str) -> None:
    custom = client.CustomObjectsApi(kube_api)
    sent = virtual_service("reviews")
    custom.create_namespaced_custom_object("networking.istio.io", "v1", namespace, "virtualservices", sent)

    stored = custom.get_namespaced_custom_object(
        "networking.istio.io", "v1", namespace, "virtualservices", "reviews"
    )
    assert stored["apiVersion"] == "networking.istio.io/v1"
    assert stored["spec"] == sent["spec"]
    as_beta = custom.get_namespaced_custom_object(
        "networking.istio.io", "v1beta1", namespace, "virtualservices", "reviews"
    )
    assert as_beta["spec"] == sent["spec"]


def test_fields_unknown_to_the_schema_are_pruned(kube_api: client.ApiClient, namespace: str) -> None:
    custom = client.CustomObjectsApi(kube_api)
    sent = virtual_service("pruned", laneFallback="base")
    sent["spec"]["http"][0]["weightByLane"] = {"feature-a": 100}
    custom.create_namespaced_custom_object("networking.istio.io", "v1", namespace, "virtualservices", sent)

    stored = custom.get_namespaced_custom_object(
        "networking.istio.io", "v1", namespace, "virtualservices", "pruned"
    )
    assert "laneFallback" not in stored["spec"]
    assert "weightByLane" not in stored["spec"]["http"][0]
    assert stored["spec"]["hosts"] == ["reviews"]


def test_schema_rejects_wrong_types(kube_api: client.ApiClient, namespace: str) -> None:
    custom = client.CustomObjectsApi(kube_api)
    with pytest.raises(ApiException) as raised:
        custom.create_namespaced_custom_object(
            "networking.istio.io", "v1", namespace, "virtualservices", virtual_service("bad", hosts="reviews")
        )
    assert raised.value.status == 422
    assert "spec.hosts" in raised.value.body


def test_namespace_deletion_removes_its_contents(kube_api: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_api)
    name = f"doomed-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    core.create_namespaced_config_map(
        name, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="settings"), data={"lane": "base"})
    )
    core.delete_namespace(name)

    def gone() -> bool:
        try:
            core.read_namespace(name)
        except ApiException as error:
            return error.status == 404
        return False

    eventually(gone, f"namespace {name} to be finalized by kube-controller-manager")


def test_stop_leaves_no_process_behind(control_plane: ControlPlane, tmp_path: Path) -> None:
    plane = ControlPlane(tmp_path / "second", control_plane.binaries, progress=None)
    with plane:
        pids = [int(p.read_text()) for p in sorted(plane.run_dir.glob("*.pid"))]
        assert len(pids) == 3
        assert plane.kubectl("get", "namespace", "default", "-o", "name").strip() == "namespace/default"
    assert all(processes.wait_gone(pid, 0) for pid in pids)
    assert not list(plane.run_dir.glob("*.pid"))


def test_components_die_with_a_killed_owner(control_plane: ControlPlane, tmp_path: Path) -> None:
    """SIGKILL of the owning process gives no chance to clean up; the kernel must do it."""
    state_dir = tmp_path / "orphaned"
    script = textwrap.dedent(
        f"""
        import os, signal
        from lanes_testbed.binaries import ensure_binaries
        from lanes_testbed.controlplane import ControlPlane
        ControlPlane({str(state_dir)!r}, ensure_binaries(None), progress=None).start()
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    owner = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert owner.returncode == -signal.SIGKILL, owner.stderr
    pids = [int(p.read_text()) for p in sorted((state_dir / "run").glob("*.pid"))]
    assert len(pids) == 3
    assert all(processes.wait_gone(pid, 10.0) for pid in pids)


def test_dev_cluster_cli_up_env_down(control_plane: ControlPlane, tmp_path: Path) -> None:
    state_dir = tmp_path / "dev-state"
    runner = CliRunner()
    option = ["--state-dir", str(state_dir)]
    export = f"export KUBECONFIG={state_dir.resolve() / 'kubeconfig'}\n"
    try:
        assert runner.invoke(dev_app, ["cluster", "env", *option]).exit_code == 1

        up = runner.invoke(dev_app, ["cluster", "up", *option])
        assert (up.exit_code, up.stdout) == (0, export), up.output
        assert runner.invoke(dev_app, ["cluster", "env", *option]).stdout == export
        kubectl = [str(control_plane.binaries.kubectl), f"--kubeconfig={state_dir / 'kubeconfig'}"]
        served = subprocess.run([*kubectl, "get", "namespace", "kube-system", "-o", "name"],
                                capture_output=True, text=True, check=True)
        assert served.stdout.strip() == "namespace/kube-system"
        pids = [cluster.supervisor_pid(state_dir)] + [
            int(p.read_text()) for p in (state_dir / "run").glob("*.pid")
        ]

        down = runner.invoke(dev_app, ["cluster", "down", *option])
        assert down.exit_code == 0 and "stopped" in down.stdout
        assert all(pid is not None and processes.wait_gone(pid, 10.0) for pid in pids)
        assert runner.invoke(dev_app, ["cluster", "env", *option]).exit_code == 1
    finally:
        cluster.down(state_dir)
