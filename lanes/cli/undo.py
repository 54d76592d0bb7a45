"""`kubectl lane undo rollout/NAME`: abandon the release in progress.

The base Deployment's template is restored from the stable ReplicaSet, so none of its running
pods restart; refused when nothing is in progress.
"""

from __future__ import annotations

from .intents import Context, Kubeconfig, Namespace, Target, request


def undo(
    target: Target,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
) -> None:
    """Roll a rollout back: the base returns to its stable revision, the canary goes."""
    request("undo", target, namespace, kubeconfig, context)
