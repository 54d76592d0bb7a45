"""When a stored webhook certificate is reused and when it is replaced."""

from __future__ import annotations

import datetime

import pytest

from lanes.operator.webhook import CERT_KEY, PKEY_KEY, VALIDITY, WebhookOptions, certificate_fits, self_signed

NAMES = ["lanes-webhook.lanes-system.svc", "0.0.0.0"]


def stored(names=NAMES) -> dict[str, bytes]:
    cert, key = self_signed(names)
    return {CERT_KEY: cert, PKEY_KEY: key}


def test_a_certificate_for_the_webhooks_names_is_reused() -> None:
    assert certificate_fits(stored(), ["lanes-webhook.lanes-system.svc"])


@pytest.mark.parametrize(
    "data, names",
    [
        pytest.param({}, NAMES[:1], id="empty-secret"),
        pytest.param({CERT_KEY: b"not pem", PKEY_KEY: b"x"}, NAMES[:1], id="garbage"),
        pytest.param({CERT_KEY: stored()[CERT_KEY]}, NAMES[:1], id="no-key"),
        pytest.param(stored(), ["lanes-webhook.other.svc"], id="another-name"),
        pytest.param(stored(["127.0.0.1"]), ["127.0.0.2"], id="another-address"),
    ],
)
def test_an_unfit_certificate_is_replaced(data: dict, names: list[str]) -> None:
    assert not certificate_fits(data, names)


def test_a_certificate_near_its_end_is_replaced() -> None:
    now = datetime.datetime.now(datetime.UTC)
    assert certificate_fits(stored(), NAMES[:1], now + VALIDITY - datetime.timedelta(days=31))
    assert not certificate_fits(stored(), NAMES[:1], now + VALIDITY - datetime.timedelta(days=29))


def test_the_names_are_those_kopf_puts_in_the_url() -> None:
    assert WebhookOptions(addr="0.0.0.0", host="lanes-webhook.ns.svc").hostnames == [
        "lanes-webhook.ns.svc", "127.0.0.1"]
    assert WebhookOptions(addr="127.0.0.1").hostnames == ["127.0.0.1"]
    # Replicas bound to their own pod's address share the one name in the URL.
    assert WebhookOptions(addr="127.0.0.11", host="lanes-webhook.ns.svc").hostnames == [
        "lanes-webhook.ns.svc"]
    assert WebhookOptions.from_env({"LANES_WEBHOOK_SECRET": ""}).secret is None
    assert WebhookOptions.from_env({"POD_NAMESPACE": "lanes-system"}).namespace == "lanes-system"
