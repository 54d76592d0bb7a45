"""Send release notices to chat, at the operator's edge and never in a reconcile's way.

A reconcile hands its notices to `Alerter.send`, which returns at once: a small pool of
threads of its own reads each alert's AlertProvider (and the Secret with its URL) and posts the
payload with httpx, bounded by `TIMEOUT`. A notice that cannot be delivered (no provider, no
URL, a refused connection, an answer other than 2xx) is a Warning event `AlertFailed` on the
release and a log line, and the provider's `Ready` condition says why; the release goes on.
Webhooks are reached directly, without the proxies the environment names, as other webhooks
are (`lanes.operator.webhooks`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from lanes.alerts import Notice, payload, sends_to
from lanes.api.alertprovider import Alert, AlertProvider
from lanes.kube.alertproviders import AlertProvidersApi
from lanes.rollout import Event

log = logging.getLogger("lanes.operator.alerts")
TIMEOUT = 5.0
WORKERS = 2


class Alerter:
    """Delivers notices on threads of its own; `post` records a failure on the release."""

    def __init__(self, api: AlertProvidersApi, post: Any, timeout: float = TIMEOUT):
        self.api = api
        self.post = post
        self.timeout = timeout
        self.pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="lanes-alerts")

    def send(self, body: Mapping[str, Any], alerts: Sequence[Alert],
             notices: Sequence[Notice]) -> list[Future]:
        """Queue every notice for every alert that takes it; returns at once."""
        return [self.pool.submit(self.deliver, body, alert, notice)
                for notice in notices for alert in alerts if sends_to(alert, notice)]

    def deliver(self, body: Mapping[str, Any], alert: Alert, notice: Notice) -> str | None:
        """Post one notice; the reason it failed, or None when it was delivered."""
        namespace = alert.provider_ref.namespace or body["metadata"]["namespace"]
        where = f"alertprovider/{alert.provider_ref.name} in namespace {namespace}"
        provider_body: dict | None = None
        try:
            provider_body = self.api.get(namespace, alert.provider_ref.name)
            if provider_body is None:
                return self._failed(body, alert, None, f"{where} not found")
            provider = AlertProvider.model_validate(provider_body)
            address = provider.spec.address
            if address is None and provider.spec.secret_ref is not None:
                secret = provider.spec.secret_ref.name
                try:
                    address = self.api.secret_address(namespace, secret)
                except ApiException as error:
                    if error.status != 403:
                        raise
                    return self._failed(body, alert, provider_body, (
                        f"{where}: the operator may not read Secret {secret}; grant its "
                        "ServiceAccount `get` on it with a Role in that namespace"))
                if address is None:
                    return self._failed(body, alert, provider_body,
                                        f"{where}: Secret {secret} has no key `address`")
            assert address is not None
            with httpx.Client(timeout=self.timeout, trust_env=False) as web:
                answer = web.post(address, json=payload(provider.spec, notice))
            if not answer.is_success:
                return self._failed(body, alert, provider_body,
                                    f"{where} answered {answer.status_code}: {answer.text[:200]}")
        except ValidationError as error:
            return self._failed(body, alert, None, f"{where} is invalid: {error.errors()[0]['msg']}")
        except (httpx.HTTPError, ApiException) as error:
            return self._failed(body, alert, provider_body, f"{where}: {error}")
        self._ready(provider_body, "True", "Delivered", f"last notice: {notice.title}")
        return None

    def _failed(self, body: Mapping[str, Any], alert: Alert, provider_body: dict | None,
                why: str) -> str:
        log.warning("alert %s of %s/%s not delivered: %s", alert.name,
                    body["metadata"]["namespace"], body["metadata"]["name"], why)
        try:
            self.post(body, Event("AlertFailed", f"alert {alert.name}: {why}", "Warning"))
        except ApiException as error:
            log.warning("could not post event AlertFailed: %s", error)
        self._ready(provider_body, "False", "DeliveryFailed", why)
        return why

    def _ready(self, provider_body: dict | None, status: str, reason: str, message: str) -> None:
        if provider_body is None:
            return
        conditions = (provider_body.get("status") or {}).get("conditions") or []
        ready = next((c for c in conditions if c.get("type") == "Ready"), {})
        if (ready.get("status"), ready.get("reason"), ready.get("message")) == (status, reason, message):
            return
        stamp = ready.get("lastTransitionTime") if ready.get("status") == status else None
        condition = {"type": "Ready", "status": status, "reason": reason, "message": message,
                     "lastTransitionTime": stamp or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        try:
            self.api.set_ready(provider_body, condition)
        except ApiException as error:
            log.warning("could not write the Ready condition of alertprovider/%s: %s",
                        provider_body["metadata"]["name"], error)
