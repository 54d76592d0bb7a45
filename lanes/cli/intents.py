"""What approve, undo, pause and resume share: name the rollout, check, then request.

A verb is refused here, before anything is written, when the rollout is in a state where the
operator would drop it anyway (`check_intent`); the message names the rollout and why. The
request is an annotation patch guarded by the resourceVersion that was checked, so a rollout
that moved on in between is checked again instead of receiving a request made for an older
state.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from lanes.api.workloadrollout import WorkloadRollout
from lanes.rollout import Intent, check_intent, intent_patch

KINDS = frozenset({"rollout", "rollouts", "workloadrollout", "workloadrollouts", "wro"})
FIELD_MANAGER = "kubectl-lane"
ATTEMPTS = 3

Target = Annotated[
    str,
    typer.Argument(help="The rollout, as rollout/NAME, or a lane release, as lanerelease/NAME.",
                   metavar="rollout/NAME"),
]
Namespace = Annotated[
    str | None,
    typer.Option("--namespace", "-n", help="The rollout's namespace; default: the context's."),
]
Kubeconfig = Annotated[
    str | None, typer.Option(help="Kubeconfig file; default: $KUBECONFIG or ~/.kube/config.")
]
Context = Annotated[str | None, typer.Option(help="Kubeconfig context to use.")]


def rollout_name(target: str) -> str:
    """NAME from `rollout/NAME` (or `workloadrollout/NAME`, `wro/NAME`, or a bare NAME).

    Raises:
        typer.BadParameter: for another kind or an empty name.
    """
    kind, sep, name = target.partition("/")
    if not sep:
        kind, name = "rollout", target
    if kind.lower() not in KINDS or not name:
        raise typer.BadParameter(
            f"{target!r}: expected rollout/NAME", param_hint="'rollout/NAME'"
        )
    return name


def fail(message: str) -> typer.Exit:
    """Print an error on stderr; the caller raises the returned exit (code 1)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def done_message(rollout: WorkloadRollout, intent: Intent) -> str:
    """What a granted request says."""
    name = f"workloadrollout/{rollout.metadata.name}"
    canary = rollout.status.canary_status if rollout.status else None
    step = canary.current_step_index if canary else 0
    steps = len(rollout.spec.strategy.canary.steps)
    if intent == "approve":
        then = "promotes" if step >= steps else f"continues to step {step + 1}/{steps}"
        return f"{name}: step {step}/{steps} approved; the rollout {then}"
    if intent == "undo":
        return f"{name}: undo requested; the base goes back to its stable revision"
    if intent == "pause":
        return f"{name}: pause requested"
    return f"{name}: resume requested"


def request(
    intent: Intent,
    target: str,
    namespace: str | None,
    kubeconfig: str | None,
    context: str | None,
) -> None:
    """Check an intent against the live rollout (or lane release) and request it; exit 1
    when refused."""
    from kubernetes.client.exceptions import ApiException

    from .releaseintents import release_name, request_release

    release = release_name(target)
    if release is not None:
        request_release(intent, release, namespace, kubeconfig, context)
        return

    from lanes.kube.connect import connect
    from lanes.kube.objects import error_message
    from lanes.kube.rollouts import RolloutsApi, default_namespace

    name = rollout_name(target)
    namespace = namespace or default_namespace(kubeconfig, context)
    api = connect(kubeconfig, context)
    try:
        rollouts = RolloutsApi(api, manager=FIELD_MANAGER)
        for _ in range(ATTEMPTS):
            body = rollouts.get(namespace, name)
            if body is None:
                raise fail(f"workloadrollout/{name} not found in namespace {namespace}")
            rollout = WorkloadRollout.model_validate(body)
            refused = check_intent(rollout, intent)
            if refused is not None:
                raise fail(refused)
            annotations = intent_patch(rollout, intent, datetime.now(UTC))["metadata"]["annotations"]
            try:
                rollouts.annotate(namespace, name, annotations, body["metadata"]["resourceVersion"])
            except ApiException as error:
                if error.status == 409:
                    continue
                raise fail(error_message(error)) from None
            typer.echo(done_message(rollout, intent))
            return
        raise fail(f"workloadrollout/{name} kept changing; try again")
    finally:
        api.close()
