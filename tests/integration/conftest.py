"""Fixtures for tests against a real kube-apiserver + etcd + kube-controller-manager.

One control plane per test session, with our CRDs and Istio's installed; one namespace
per test. Missing binaries are built (with progress on the terminal), never skipped over:
a bed that cannot be built is a failure.
"""

from __future__ import annotations

import re
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lanes_testbed.binaries import ensure_binaries
from lanes_testbed.controlplane import ControlPlane
from lanes_testbed.manifests import manifest_files

from .operator_support import INGRESS_GATEWAY, Stories, ensure_namespace

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = PROJECT_ROOT / "crds"
ISTIO_CRDS = PROJECT_ROOT / "testbed" / "lanes_testbed" / "istio-networking-crds.yaml"
ISTIO_EXTENSION_CRDS = PROJECT_ROOT / "testbed" / "lanes_testbed" / "istio-extensions-crds.yaml"
ISTIO_WORKLOAD_CRDS = PROJECT_ROOT / "testbed" / "lanes_testbed" / "istio-workload-crds.yaml"
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder needs the control plane, so `-m 'not integration'` skips them."""
    for item in items:
        if HERE in Path(item.fspath).resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def installed_manifests() -> list[Path]:
    """Our generated CRDs, then the Istio networking CRDs our output targets."""
    assert ISTIO_CRDS.is_file(), f"Istio CRDs missing: {ISTIO_CRDS}"
    assert ISTIO_EXTENSION_CRDS.is_file(), f"Istio CRDs missing: {ISTIO_EXTENSION_CRDS}"
    return [*manifest_files(CRD_DIR), ISTIO_CRDS, ISTIO_WORKLOAD_CRDS, ISTIO_EXTENSION_CRDS]


@pytest.fixture(scope="session")
def control_plane(
    tmp_path_factory: pytest.TempPathFactory,
    pytestconfig: pytest.Config,
    installed_manifests: list[Path],
) -> Iterator[ControlPlane]:
    """A started ControlPlane with every CRD installed and Established."""
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        binaries = ensure_binaries(progress=sys.stderr)
    plane = ControlPlane(tmp_path_factory.mktemp("control-plane"), binaries, progress=None)
    with plane:
        plane.install_manifests(installed_manifests)
        yield plane


@pytest.fixture(scope="session")
def kube_api(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    """A kubernetes ApiClient authenticated as cluster admin."""
    api = control_plane.api_client()
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def namespace(kube_api: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test, ready for Pods, deleted afterwards."""
    core = client.CoreV1Api(kube_api)
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{slug}-{uuid.uuid4().hex[:6]}"
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={"lanes.dev/test": "true"}))
    )
    wait_for_default_service_account(core, name)
    try:
        yield name
    finally:
        try:
            core.delete_namespace(name)
        except ApiException as error:
            if error.status != 404:
                raise


@pytest.fixture
def stories(operator, kube_api: client.ApiClient, namespace: str) -> Iterator[Stories]:
    """The lane stories a test makes, once the module's own `operator` fixture runs."""
    made = Stories(kube_api, namespace)
    yield made
    made.close()


@pytest.fixture
def ingress_gateway(kube_api: client.ApiClient) -> Iterator[dict]:
    """The Gateway the story's ingress routes name, which the mesh install would have made."""
    custom = client.CustomObjectsApi(kube_api)
    ensure_namespace(kube_api, "istio-system")
    custom.create_namespaced_custom_object("networking.istio.io", "v1", "istio-system", "gateways", INGRESS_GATEWAY)
    try:
        yield INGRESS_GATEWAY
    finally:
        custom.delete_namespaced_custom_object(
            "networking.istio.io", "v1", "istio-system", "gateways", INGRESS_GATEWAY["metadata"]["name"]
        )


def wait_for_default_service_account(core: client.CoreV1Api, namespace: str, timeout: float = 30.0) -> None:
    """Pods are refused until kube-controller-manager has created the default ServiceAccount."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            core.read_namespaced_service_account("default", namespace)
            return
        except ApiException as error:
            if error.status != 404 or time.monotonic() > deadline:
                raise
        time.sleep(0.1)
