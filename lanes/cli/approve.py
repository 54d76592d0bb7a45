"""`kubectl lane approve rollout/NAME`: let a paused canary step continue (or promote on the last).

Refused unless the rollout waits for approval at its current step, so an approve never
skips a step: it names the step it approves, and the operator drops a stale one.
"""

from __future__ import annotations

from .intents import Context, Kubeconfig, Namespace, Target, request


def approve(
    target: Target,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
) -> None:
    """Continue a rollout past the step it is paused at; on the last step, promote."""
    request("approve", target, namespace, kubeconfig, context)
