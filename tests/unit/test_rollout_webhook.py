"""The admission webhook's decisions, its certificate and its options, without a cluster."""

from __future__ import annotations

import copy
import ipaddress

import pytest
from cryptography import x509

from lanes.operator.webhook import (
    CONFIG_NAME,
    WebhookOptions,
    admit_unchanged,
    field_manager,
    hold,
    self_signed,
)

from .rollout_sim import IMAGE, deployment


def targeted(image: str = f"{IMAGE}:1.0", paused: bool = False, held: str | None = None) -> dict:
    obj = deployment(image=image)
    obj["metadata"]["labels"]["lanes.dev/rollout"] = "rollouts-mocka"
    obj["spec"]["paused"] = paused
    if held:
        obj["metadata"]["annotations"] = {"lanes.dev/held-by": held}
    return obj


HOLD = {"spec": {"paused": True}, "metadata": {"annotations": {"lanes.dev/held-by": "rollouts-mocka"}}}


def test_a_new_template_is_held_in_the_same_write() -> None:
    assert hold(targeted(), targeted(f"{IMAGE}:2.0")) == HOLD


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (targeted(), targeted()),
        (targeted(), {**targeted(), "spec": {**targeted()["spec"], "replicas": 3}}),
        (targeted(paused=True, held="rollouts-mocka"), targeted(paused=False)),
        (targeted(), targeted(f"{IMAGE}:2.0", paused=True)),
        (None, targeted(f"{IMAGE}:2.0")),
    ],
    ids=["no-change", "scale-only", "unpause-only", "owner-paused-it", "create"],
)
def test_nothing_is_added_without_an_unpaused_template_change(old: dict | None, new: dict) -> None:
    assert hold(old, new) is None


def test_a_changed_label_or_annotation_of_the_pod_template_is_a_new_template() -> None:
    new = targeted()
    new["spec"]["template"]["metadata"]["annotations"] = {"kubectl.kubernetes.io/restartedAt": "now"}
    assert hold(targeted(), new) == HOLD


def test_server_defaults_do_not_count_as_a_change() -> None:
    new = copy.deepcopy(targeted())
    new["spec"]["template"]["metadata"]["creationTimestamp"] = None
    assert hold(targeted(), new) is None


def test_an_unlabelled_deployment_is_left_alone() -> None:
    old, new = deployment(), deployment(image=f"{IMAGE}:2.0")
    assert hold(old, new) is None


def test_requests_name_their_field_manager() -> None:
    request = {"request": {"uid": "1", "options": {"kind": "PatchOptions", "fieldManager": "lanes"}}}
    assert field_manager(request) == "lanes"
    assert field_manager({"request": {"uid": "1"}}) is None
    assert admit_unchanged(request) == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "1", "allowed": True},
    }


def test_certificate_names_every_host_and_address_but_the_wildcard() -> None:
    cert_pem, key_pem = self_signed(["lanes-webhook.lanes.svc", "0.0.0.0", "127.0.0.1"])
    cert = x509.load_pem_x509_certificate(cert_pem)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["lanes-webhook.lanes.svc"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert b"PRIVATE KEY" in key_pem


def test_options_from_the_environment() -> None:
    assert WebhookOptions.from_env({}) == WebhookOptions()
    assert WebhookOptions().config_name == CONFIG_NAME
    options = WebhookOptions.from_env(
        {
            "LANES_WEBHOOK_ADDR": "0.0.0.0",
            "LANES_WEBHOOK_PORT": "8443",
            "LANES_WEBHOOK_HOST": "lanes-webhook.lanes.svc",
            "LANES_WEBHOOK_CONFIG": "test.lanes.dev",
        }
    )
    assert options == WebhookOptions(True, "0.0.0.0", 8443, "lanes-webhook.lanes.svc", "test.lanes.dev")
    assert not WebhookOptions.from_env({"LANES_WEBHOOK": "off"}).enabled
