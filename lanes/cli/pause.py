"""`kubectl lane pause rollout/NAME`: hold a release where it is.

Pausing leaves the spec as the user declared it (the request is an annotation, the state is
`status.paused`); refused while promoting or rolling back, which finish on their own.
"""

from __future__ import annotations

from .intents import Context, Kubeconfig, Namespace, Target, request


def pause(
    target: Target,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
) -> None:
    """Stop a rollout at its current step; the base stays held."""
    request("pause", target, namespace, kubeconfig, context)
