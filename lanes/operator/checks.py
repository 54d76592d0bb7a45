"""A release reconcile's calls out, for both kinds of release (WorkloadRollouts and
LaneReleases): the analysis check (MetricTemplates loaded, metrics read from Prometheus) and
the webhooks a plan names, each called with Flagger's payload."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from lanes.analysis.verdict import HookResult, Reading
from lanes.api.analysis import Analysis, MetricTemplate, Webhook
from lanes.api.workloadrollout import WorkloadRollout
from lanes.kube.rollouts import RolloutsApi, Workloads
from lanes.rollout import Event, HookCall, Plan, flagger_phase

from .analysis import (
    CheckContext,
    SecretData,
    SecretKey,
    TemplateKey,
    check_context,
    read_metrics,
    secret_keys,
    template_keys,
)
from .webhooks import call_webhook, webhook_payload

log = logging.getLogger("lanes.operator.checks")


@dataclass(frozen=True)
class AnalysisSettings:
    """The operator's defaults for analyses that name no Prometheus or metric source."""

    prometheus_url: str | None = None
    metric_source: str = "istio"

    @classmethod
    def from_env(cls) -> AnalysisSettings:
        """`LANES_PROMETHEUS_URL` and `LANES_METRIC_SOURCE`, as the operator's options set them."""
        return cls(os.environ.get("LANES_PROMETHEUS_URL") or None,
                   os.environ.get("LANES_METRIC_SOURCE") or "istio")

    def read(self, analysis: Analysis, context: CheckContext,
             templates: Mapping[TemplateKey, MetricTemplate],
             secrets: Mapping[SecretKey, SecretData | str] | None = None) -> dict[str, Reading]:
        """One reading per metric of `analysis` for the canary `context` names."""
        return read_metrics(analysis, context, templates, default_address=self.prometheus_url,
                            default_source=self.metric_source, secrets=secrets)


def load_templates(api: RolloutsApi, analysis: Analysis | None,
                   namespace: str) -> dict[TemplateKey, MetricTemplate]:
    """The MetricTemplates an analysis names that exist and parse (an invalid one is logged;
    its metric's reading then says it is not found)."""
    templates = {}
    for key in template_keys(analysis, namespace) if analysis is not None else []:
        body = api.metric_template(*key)
        if body is not None:
            try:
                templates[key] = MetricTemplate.model_validate(body)
            except ValidationError as error:
                log.warning("MetricTemplate %s/%s is invalid: %s", *key, error)
    return templates


def load_secrets(api: RolloutsApi, analysis: Analysis | None,
                 templates: Mapping[TemplateKey, MetricTemplate],
                 namespace: str) -> dict[SecretKey, SecretData | str]:
    """The data of the Secrets holding the Prometheus credentials an analysis's queries need,
    read through the API server; one that does not exist is left out, one the operator may not
    read is said so (its metrics' readings then name the field)."""
    found: dict[SecretKey, SecretData | str] = {}
    for key in secret_keys(analysis, templates, namespace) if analysis is not None else []:
        try:
            data = api.secret(*key)
        except ApiException as error:
            if error.status != 403:
                raise
            found[key] = (f"Secret {key[0]}/{key[1]} may not be read by the operator: list its "
                          "name in the chart value prometheus.credentialSecrets")
            continue
        if data is not None:
            found[key] = data
    return found


def call_hooks(calls: Iterable[HookCall], name: str, namespace: str,
               checksum: str) -> list[HookResult]:
    """Call webhooks for the release `name`, each with Flagger's payload and its phase."""
    return [call_webhook(c.hook, webhook_payload(c.hook, name, namespace, c.phase, checksum))
            for c in calls]


def notify(hooks: Sequence[Webhook], name: str, namespace: str, phase: str, checksum: str,
           event: Event) -> None:
    """Send one event to a release's `event` hooks, Flagger's payload carrying `eventMessage`
    and `eventType` in its metadata; a failure is only logged."""
    for hook in hooks:
        payload = webhook_payload(hook, name, namespace, phase, checksum)
        payload["metadata"] = {**payload["metadata"], "eventMessage": event.message,
                               "eventType": event.type}
        result = call_webhook(hook, payload)
        if not result.ok:
            log.warning("event webhook %s: %s", hook.name, result.message)


def checksum_of(status: Mapping[str, Any]) -> str:
    """The revision a rollout releases, as a payload's `checksum`."""
    return ((status.get("canaryStatus") or {}).get("canaryRevision")) or ""


def make_check(
    api: RolloutsApi,
    rollout: WorkloadRollout,
    seen: Workloads,
    analysis: Analysis,
    settings: AnalysisSettings,
    status: Mapping[str, Any],
) -> tuple[dict[str, Reading], list[HookResult]]:
    """One analysis check of a rollout: every metric read from Prometheus, every `rollout`
    webhook called."""
    namespace = rollout.metadata.namespace or "default"
    context = check_context(rollout, seen.base, api.services(namespace), api.swimlanes())
    templates = load_templates(api, analysis, namespace)
    readings = settings.read(analysis, context, templates,
                             load_secrets(api, analysis, templates, namespace))
    phase = flagger_phase(rollout.status)
    calls = [HookCall(h, phase) for h in analysis.webhooks if h.type == "rollout"]
    return readings, call_hooks(calls, rollout.metadata.name, namespace, checksum_of(status))


def notify_rollout(rollout: WorkloadRollout, plan: Plan, event: Event) -> None:
    """Send one event to a rollout's `event` hooks, with the phase its planned status has."""
    notify(plan.event_hooks, rollout.metadata.name, rollout.metadata.namespace or "default",
           flagger_phase(plan.status), checksum_of(plan.status.to_wire()), event)
