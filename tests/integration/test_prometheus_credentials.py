"""Prometheus behind basic auth, its credentials in Secrets read through a real API server.

The operator's own path: MetricTemplates and Secrets read by `load_templates` and
`load_secrets`, the queries sent by `AnalysisSettings.read` to a real Prometheus started with
`--web.config.file`. Right credentials read values; wrong ones, none, or a Secret or key that is
missing are readings that say so, naming the field.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from kubernetes import client

from lanes.analysis.verdict import Reading
from lanes.api.analysis import Analysis
from lanes.kube.rollouts import RolloutsApi
from lanes.operator.analysis import CheckContext
from lanes.operator.checks import AnalysisSettings, load_secrets, load_templates
from lanes_testbed.prometheus import Prometheus, ensure_prometheus

USER, PASSWORD = "lanes", "s3cret-pw"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    server = Prometheus(tmp_path_factory.mktemp("prometheus-auth"), [], paths=ensure_prometheus(None),
                        basic_auth=(USER, PASSWORD))
    server.start()
    yield server
    server.stop()


def secret(api: client.ApiClient, namespace: str, name: str, data: dict[str, str]) -> None:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    client.CoreV1Api(api).create_namespaced_secret(namespace, {"metadata": {"name": name}, "data": encoded})


def metric_template(api: client.ApiClient, namespace: str, name: str, address: str,
                    secret_name: str | None) -> None:
    provider: dict = {"type": "prometheus", "address": address}
    if secret_name is not None:
        provider["secretRef"] = {"name": secret_name}
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        "lanes.dev", "v1alpha1", namespace, "metrictemplates",
        {"apiVersion": "lanes.dev/v1alpha1", "kind": "MetricTemplate", "metadata": {"name": name},
         "spec": {"provider": provider, "query": "vector(7)"}},
    )


def test_right_credentials_read_values_and_wrong_or_missing_ones_are_reported(
    kube_api: client.ApiClient, namespace: str, prometheus: Prometheus
) -> None:
    secret(kube_api, namespace, "right", {"username": USER, "password": PASSWORD})
    secret(kube_api, namespace, "wrong", {"username": USER, "password": "guess"})
    secret(kube_api, namespace, "keyless", {"user": USER})
    cases = {"right": "right", "wrong": "wrong", "keyless": "keyless", "absent": "nope", "none": None}
    for name, secret_name in cases.items():
        metric_template(kube_api, namespace, name, prometheus.url, secret_name)
    analysis = Analysis.model_validate({"metrics": [
        {"name": name, "templateRef": {"name": name}, "thresholdRange": {"max": 10}} for name in cases
    ]})
    api = RolloutsApi(kube_api)
    templates = load_templates(api, analysis, namespace)
    secrets = load_secrets(api, analysis, templates, namespace)
    context = CheckContext(namespace, "mockb-canary", "mockb", "canary")

    readings = AnalysisSettings().read(analysis, context, templates, secrets)

    assert readings["right"] == Reading("right", 7.0)
    assert "answered 401: the credentials sent were refused" in readings["wrong"].error
    assert "answered 401: it asks for credentials" in readings["none"].error
    assert readings["absent"].error == (
        f"MetricTemplate {namespace}/absent spec.provider.secretRef: Secret {namespace}/nope not found")
    assert readings["keyless"].error == (
        f"MetricTemplate {namespace}/keyless spec.provider.secretRef: Secret {namespace}/keyless has "
        "no key token, nor username and password")
