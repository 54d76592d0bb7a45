"""A pod's ServiceAccount identity on the local node: when it gets one, and its kubeconfig."""

from __future__ import annotations

import base64

import pytest
import yaml
from kubernetes import client, config

from lanes_testbed.node.identity import account_of, kubeconfig_document, mounts_token, token_request

POD = {"metadata": {"name": "lanes-abc", "namespace": "lanes-system", "uid": "u-1"},
       "spec": {"serviceAccountName": "lanes"}}


def pod(automount: bool | None) -> dict:
    spec = {"serviceAccountName": "lanes"}
    if automount is not None:
        spec["automountServiceAccountToken"] = automount
    return {**POD, "spec": spec}


def account(automount: bool | None) -> dict:
    return {} if automount is None else {"automountServiceAccountToken": automount}


@pytest.mark.parametrize(("own", "shared", "mounts"), [
    (None, None, True),
    (None, False, False),
    (None, True, True),
    (True, False, True),
    (False, True, False),
    (False, None, False),
])
def test_the_pods_own_setting_wins_over_its_service_accounts(own, shared, mounts) -> None:
    assert mounts_token(pod(own), account(shared)) is mounts


def test_a_pod_naming_no_account_runs_as_default() -> None:
    assert account_of({"spec": {}}) == "default"
    assert account_of(POD) == "lanes"


def test_the_token_is_bound_to_the_pod() -> None:
    request = token_request(POD, expiration_s=600)
    assert request["spec"]["boundObjectRef"] == {"apiVersion": "v1", "kind": "Pod",
                                                 "name": "lanes-abc", "uid": "u-1"}
    assert request["spec"]["expirationSeconds"] == 600
    assert "audiences" not in request["spec"]


def test_the_kubeconfig_loads_as_the_service_account(tmp_path) -> None:
    ca = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    document = kubeconfig_document("https://127.0.0.1:6443", ca, "t0ken", "lanes-system", "lanes")
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(document))
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=configuration)
    assert configuration.host == "https://127.0.0.1:6443"
    assert configuration.api_key["BearerToken"] == "Bearer t0ken"
    [cluster] = document["clusters"]
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]) == ca
    assert config.list_kube_config_contexts(config_file=str(path))[1]["context"]["namespace"] == "lanes-system"
    assert document["users"][0]["name"] == "system:serviceaccount:lanes-system:lanes"
