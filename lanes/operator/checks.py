"""A rollout reconcile's calls out: the analysis check (metrics from Prometheus, `rollout`
webhooks) and the other webhooks a plan names, each with Flagger's payload."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from lanes.analysis.verdict import HookResult, Reading
from lanes.api.analysis import Analysis, MetricTemplate, Webhook
from lanes.api.workloadrollout import WorkloadRollout
from lanes.kube.rollouts import RolloutsApi, Workloads
from lanes.rollout import Event, HookCall, Plan, flagger_phase

from .analysis import check_context, read_metrics, template_keys
from .webhooks import call_webhook, webhook_payload

log = logging.getLogger("lanes.operator.rollouts")


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


def make_check(
    api: RolloutsApi,
    rollout: WorkloadRollout,
    seen: Workloads,
    analysis: Analysis,
    settings: AnalysisSettings,
    status: Mapping[str, Any],
) -> tuple[dict[str, Reading], list[HookResult]]:
    """One analysis check: every metric read from Prometheus, every `rollout` webhook called."""
    namespace = rollout.metadata.namespace or "default"
    templates = {}
    for key in template_keys(analysis, namespace):
        body = api.metric_template(*key)
        if body is not None:
            try:
                templates[key] = MetricTemplate.model_validate(body)
            except ValidationError as error:
                log.warning("MetricTemplate %s/%s is invalid: %s", *key, error)
    context = check_context(rollout, seen.base, api.services(namespace), api.swimlanes())
    readings = read_metrics(analysis, context, templates, default_address=settings.prometheus_url,
                            default_source=settings.metric_source)
    hooks = [
        call_webhook(hook, webhook_payload(hook, rollout.metadata.name, namespace,
                                           flagger_phase(rollout.status), checksum_of(status)))
        for hook in analysis.webhooks
        if hook.type == "rollout"
    ]
    return readings, hooks


def checksum_of(status: Mapping[str, Any]) -> str:
    """The revision being released, as a payload's `checksum`."""
    return ((status.get("canaryStatus") or {}).get("canaryRevision")) or ""


def call_hooks(
    rollout: WorkloadRollout, calls: tuple[HookCall, ...], status: Mapping[str, Any]
) -> list[HookResult]:
    """Call the webhooks a plan named in `Plan.hooks_due`, each with its payload phase."""
    namespace = rollout.metadata.namespace or "default"
    return [
        call_webhook(c.hook, webhook_payload(c.hook, rollout.metadata.name, namespace, c.phase,
                                             checksum_of(status)))
        for c in calls
    ]


def event_payload(
    hook: Webhook, rollout: WorkloadRollout, plan: Plan, event: Event
) -> dict[str, Any]:
    """An `event` hook's payload: Flagger's, its metadata carrying `eventMessage` and
    `eventType`, the phase the planned status has."""
    namespace = rollout.metadata.namespace or "default"
    status = plan.status.to_wire()
    payload = webhook_payload(hook, rollout.metadata.name, namespace, flagger_phase(plan.status),
                              checksum_of(status))
    payload["metadata"] = {**payload["metadata"], "eventMessage": event.message,
                           "eventType": event.type}
    return payload


def notify(rollout: WorkloadRollout, plan: Plan, event: Event) -> None:
    """Send one event to the release's `event` hooks; a failure is only logged."""
    for hook in plan.event_hooks:
        result = call_webhook(hook, event_payload(hook, rollout, plan, event))
        if not result.ok:
            log.warning("event webhook %s: %s", hook.name, result.message)
