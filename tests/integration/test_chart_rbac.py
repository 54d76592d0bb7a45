"""The chart's RBAC on the real API server, acting as the operator's ServiceAccount.

The chart is rendered with a release and namespace of this test's own, its ServiceAccount,
roles and bindings are created for real, and requests are made impersonating that account:
lanes may patch only its own webhook configuration, and read only its own Secret and Lease.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lanes_testbed.controlplane import ControlPlane

from .test_chart import CHART, helm

RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


@dataclass
class Release:
    namespace: str
    config_name: str
    other_config: str
    secret: str
    lease: str
    account: str


def webhook_configuration(name: str) -> dict:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [{
            "name": f"hold.{name}",
            "clientConfig": {"url": "https://127.0.0.1:1/hold"},
            "rules": [{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["UPDATE"],
                       "resources": ["deployments"]}],
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "failurePolicy": "Ignore",
            "objectSelector": {"matchLabels": {"never": "matches"}},
        }],
    }


@pytest.fixture
def values(request: pytest.FixtureRequest) -> list[str]:
    """Extra `--set` values of the release (indirect parametrization); none by default."""
    return getattr(request, "param", [])


@pytest.fixture
def release(control_plane: ControlPlane, kube_api: client.ApiClient, values: list[str]) -> Iterator[Release]:
    """The chart's RBAC objects created for real, under a release name of this test."""
    tag = uuid.uuid4().hex[:6]
    name, namespace, config_name = f"rbac-{tag}", f"lanes-rbac-{tag}", f"rbac-{tag}.lanes.dev"
    text = helm("template", name, str(CHART), "--namespace", namespace,
                "--set", f"webhook.configName={config_name}", *[a for v in values for a in ("--set", v)])
    docs = [d for d in yaml.safe_load_all(text) if d and d["kind"] in RBAC_KINDS]
    control_plane.kubectl("create", "namespace", namespace)
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    admission = client.AdmissionregistrationV1Api(kube_api)
    for config in (config_name, f"other-{tag}.example.com"):
        admission.create_mutating_webhook_configuration(webhook_configuration(config))
    try:
        yield Release(namespace, config_name, f"other-{tag}.example.com", f"{name}-lanes-webhook-cert", f"{name}-lanes",
                      f"system:serviceaccount:{namespace}:{name}-lanes")
    finally:
        for config in (config_name, f"other-{tag}.example.com"):
            admission.delete_mutating_webhook_configuration(config)
        control_plane.kubectl("delete", "-f", "-", "--wait=false", input=yaml.safe_dump_all(
            [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]))
        control_plane.kubectl("delete", "namespace", namespace, "--wait=false")


@pytest.fixture
def as_operator(control_plane: ControlPlane, release: Release) -> Iterator[client.ApiClient]:
    """An API client whose every request impersonates the chart's ServiceAccount."""
    api = control_plane.api_client()
    api.set_default_header("Impersonate-User", release.account)
    try:
        yield api
    finally:
        api.close()


def status_of(call, *args) -> int:
    try:
        call(*args)
    except ApiException as error:
        return error.status
    return 200


def test_only_lanes_own_webhook_configuration_can_be_patched(release: Release, as_operator) -> None:
    admission = client.AdmissionregistrationV1Api(as_operator)
    other = release.other_config
    patch = {"metadata": {"labels": {"patched": "yes"}}}
    assert status_of(admission.patch_mutating_webhook_configuration, other, patch) == 403
    assert status_of(admission.patch_mutating_webhook_configuration, release.config_name, patch) == 200
    # Reading and listing every configuration stays allowed (kopf watches them).
    assert status_of(admission.list_mutating_webhook_configuration) == 200
    replaced = admission.read_mutating_webhook_configuration(other)
    assert status_of(admission.replace_mutating_webhook_configuration, other, replaced) == 403
    assert status_of(admission.delete_mutating_webhook_configuration, other) == 403


def test_secrets_and_leases_are_the_releases_own_only(
    release: Release, as_operator, kube_api: client.ApiClient
) -> None:
    core, coordination = client.CoreV1Api(as_operator), client.CoordinationV1Api(as_operator)
    ns = release.namespace
    secret = {"metadata": {"name": release.secret}, "data": {}}
    assert status_of(core.create_namespaced_secret, ns, secret) == 200
    assert status_of(core.read_namespaced_secret, release.secret, ns) == 200
    client.CoreV1Api(kube_api).create_namespaced_secret(ns, {"metadata": {"name": "someone-else"}})
    assert status_of(core.read_namespaced_secret, "someone-else", ns) == 403
    assert status_of(core.list_namespaced_secret, ns) == 403
    assert status_of(core.read_namespaced_secret, release.secret, "default") == 403
    lease = {"metadata": {"name": release.lease}, "spec": {"holderIdentity": "me"}}
    coordination.create_namespaced_lease(ns, lease)
    body = coordination.read_namespaced_lease(release.lease, ns)
    body.spec.holder_identity = "me-again"
    assert status_of(coordination.replace_namespaced_lease, release.lease, ns, body) == 200
    assert status_of(coordination.read_namespaced_lease, "another-lease", ns) == 403
    assert status_of(coordination.delete_namespaced_lease, release.lease, ns) == 403


@pytest.mark.parametrize("values", [["prometheus.credentialSecrets={prom-auth}"]], indirect=True)
def test_prometheus_credentials_are_readable_by_their_listed_names_only(
    release: Release, as_operator, kube_api: client.ApiClient
) -> None:
    core = client.CoreV1Api(as_operator)
    ns = release.namespace
    for name in ("prom-auth", "someone-else"):
        client.CoreV1Api(kube_api).create_namespaced_secret(ns, {"metadata": {"name": name}})
    assert status_of(core.read_namespaced_secret, "prom-auth", ns) == 200
    assert status_of(core.read_namespaced_secret, "someone-else", ns) == 403
    assert status_of(core.list_namespaced_secret, ns) == 403
