"""`kubectl lane resume rollout/NAME`: continue a release paused by `pause`.

Refused when the rollout is not paused, or is paused by `spec.strategy.paused`, which only
the spec's owner should change.
"""

from __future__ import annotations

from .intents import Context, Kubeconfig, Namespace, Target, request


def resume(
    target: Target,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
) -> None:
    """Continue a paused rollout."""
    request("resume", target, namespace, kubeconfig, context)
