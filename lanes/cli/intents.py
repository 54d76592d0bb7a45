"""`kubectl lane approve|undo|pause|resume|retry rollout/NAME` (or `lanerelease/NAME`): name the
release, check, then request.

A verb is refused here, before anything is written, when the release is in a state where the
operator would drop it anyway (`check_intent`, `check_release_intent`); the message names the
object and why. The request is an annotation patch guarded by the resourceVersion that was
checked, so a release that moved on in between is checked again instead of receiving a request
made for an older state.

- approve: let a paused step continue (or promote on the last). Refused unless the release
  waits for approval at its current step, so an approve never skips a step: it names the step
  it approves, and the operator drops a stale one.
- undo: abandon the release in progress. A rollout's base Deployment gets its template back
  from the stable ReplicaSet, so none of its running pods restart; refused when nothing is in
  progress. `undo --to-revision N` instead writes the template of the base's ReplicaSet
  numbered N (`deployment.kubernetes.io/revision`) into the base, as `kubectl rollout undo
  --to-revision` does; the rollout releases it through its steps (`lanes.rollout.history`).
- pause: hold a release where it is. The spec stays as the user declared it (the request is an
  annotation, the state is `status.paused`); refused while promoting or rolling back, which
  finish on their own.
- resume: continue a release paused by `pause`. Refused when it is not paused, or is paused by
  `spec.strategy.paused`, which only the spec's owner should change.
- retry: release again a revision whose release failed. A revision rolled back by its analysis
  or a webhook stays failed (`status.failedRevision`) so that a GitOps tool applying the same
  template again starts nothing; retry starts it (a lane release: from the start, each member
  retried). Refused when nothing failed.
- promote --full: skip a release's remaining steps, their analysis and gates; a rollout's
  base rolls to the new revision at once, a lane release promotes every member together.
  Refused unless a release is in its steps. `promote` without `--full` is approve: it lets
  the paused step continue.
- abort: roll a release back now, as undo does, and record its revision as failed (a lane
  release: every member's), so the same template applied again starts nothing until retry.
  Refused when nothing is in progress.
- restart: restart a rollout's canary pods. The request is a time on the rollout that the
  operator copies into the canary's pod template, as `kubectl rollout restart` does, and the
  canary Deployment replaces its pods by its own rolling update. Refused when no canary runs.

restart and undo --to-revision take a rollout: a lane release moves its members together, and
these act on one workload.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from pydantic import BaseModel

from lanes.api.lanerelease import LaneRelease
from lanes.api.workloadrollout import WorkloadRollout
from lanes.rollout import Intent, Observed, RestoreBaseTemplate, check_intent, intent_patch
from lanes.rollout.canary import canary_name
from lanes.rollout.history import check_undo_to, numbered
from lanes.rollout.intents import check_restart, restart_patch
from lanes.rollout.lanerelease import check_release_intent, release_intent_patch

KINDS = frozenset({"rollout", "rollouts", "workloadrollout", "workloadrollouts", "wro"})
RELEASE_KINDS = frozenset({"lanerelease", "lanereleases", "lr"})
FIELD_MANAGER = "kubectl-lane"
ATTEMPTS = 3
WHAT = {
    "approve": "step {step} approved; the entry weight moves on (after the last step, every "
               "rollout of the lane is promoted together)",
    "undo": "undo requested; the entry weight goes to 0, then every rollout of the lane is undone",
    "pause": "pause requested",
    "resume": "resume requested",
    "retry": "retry requested; the release starts again from its first step",
    "promote": "full promotion requested at step {step}; the remaining steps are skipped and "
               "every rollout of the lane is promoted together",
    "abort": "abort requested; the entry weight goes to 0, then every rollout of the lane is "
             "undone and its revision recorded as failed (retry releases it again)",
}

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


def release_name(target: str) -> str | None:
    """NAME from `lanerelease/NAME` (or `lr/NAME`); None for any other kind."""
    kind, sep, name = target.partition("/")
    return name if sep and kind.lower() in RELEASE_KINDS and name else None


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
    canary_revision = canary.canary_revision if canary else None
    if intent == "promote":
        return (f"{name}: full promotion requested; the remaining steps are skipped and "
                f"Deployment {rollout.spec.workload_ref.name} rolls to revision {canary_revision}")
    if intent == "abort":
        return (f"{name}: abort requested; the base goes back to its stable revision and "
                f"revision {canary_revision} is recorded as failed (retry releases it again)")
    if intent == "retry":
        failed = rollout.status.failed_revision if rollout.status else None
        revision = failed.revision if failed else "?"
        return f"{name}: retry requested; revision {revision} is released again"
    return f"{name}: resume requested"


def release_done_message(release: LaneRelease, intent: Intent) -> str:
    """What a granted request on a lane release says."""
    step = release.status.current_step_index if release.status else 0
    return f"lanerelease/{release.metadata.name}: " + WHAT[intent].format(step=step)


@dataclass(frozen=True)
class Kind:
    """What requesting an intent needs to know of a kind of release."""

    name: str
    model: type[BaseModel]
    check: Callable[[Any, Intent], str | None]
    patch: Callable[[Any, Intent, datetime], Mapping[str, Any]]
    done: Callable[[Any, Intent], str]


ROLLOUT = Kind("workloadrollout", WorkloadRollout, check_intent, intent_patch, done_message)
RELEASE = Kind("lanerelease", LaneRelease, check_release_intent, release_intent_patch,
               release_done_message)


def restart_done_message(rollout: WorkloadRollout, _: object) -> str:
    """What a granted restart says."""
    canary = canary_name(rollout.spec.workload_ref.name)
    return (f"workloadrollout/{rollout.metadata.name}: restart requested; the pods of canary "
            f"Deployment {canary} are replaced by its rolling update")


RESTART = Kind("workloadrollout", WorkloadRollout, lambda found, _: check_restart(found),
               lambda _, __, now: restart_patch(now), restart_done_message)
ROLLOUT_ONLY = frozenset({"restart"})


class Refused(Exception):
    """An intent not requested: the release is in no state for it, is missing, or the API
    server said no (the message is the API server's, RBAC's refusal included)."""


def send_intent(intent: Intent, kind: Kind, namespace: str, name: str, api: Any) -> str:
    """Check an intent against the live release and request it; what a granted one says.

    Every way of asking (the verbs, the dashboard's buttons) goes through here, so each
    refuses and requests exactly alike.

    Raises:
        Refused: with the reason, for the caller to show.
    """
    from kubernetes.client.exceptions import ApiException

    from lanes.kube.lanereleases import LaneReleasesApi
    from lanes.kube.objects import error_message
    from lanes.kube.rollouts import RolloutsApi

    releases = (LaneReleasesApi if kind is RELEASE else RolloutsApi)(api, manager=FIELD_MANAGER)
    for _ in range(ATTEMPTS):
        try:
            body = releases.get(namespace, name)
        except ApiException as error:
            raise Refused(error_message(error)) from None
        if body is None:
            raise Refused(f"{kind.name}/{name} not found in namespace {namespace}")
        found = kind.model.model_validate(body)
        refused = kind.check(found, intent)
        if refused is not None:
            raise Refused(refused)
        annotations = kind.patch(found, intent, datetime.now(UTC))["metadata"]["annotations"]
        try:
            releases.annotate(namespace, name, annotations, body["metadata"]["resourceVersion"])
        except ApiException as error:
            if error.status == 409:
                continue
            raise Refused(error_message(error)) from None
        return kind.done(found, intent)
    raise Refused(f"{kind.name}/{name} kept changing; try again")


def request(
    intent: Intent | str,
    target: str,
    namespace: str | None,
    kubeconfig: str | None,
    context: str | None,
) -> None:
    """Check an intent against the live rollout (or lane release) and request it; exit 1
    when refused, 2 when the verb does not take that kind."""
    # The kubernetes client loads only when a verb talks to a cluster, so the offline verbs
    # (render, trace, graph, convert) start without it.
    from lanes.kube.connect import connect
    from lanes.kube.rollouts import default_namespace

    release = release_name(target)
    if release is not None and intent in ROLLOUT_ONLY:
        raise typer.BadParameter(
            f"{target!r}: {intent} takes a rollout (rollout/NAME); a lane release moves its "
            "rollouts together: use undo or abort, or approve to continue",
            param_hint="'rollout/NAME'"
        )
    kind, name = (RELEASE, release) if release is not None else (ROLLOUT, rollout_name(target))
    if intent == "restart":
        kind = RESTART
    namespace = namespace or default_namespace(kubeconfig, context)
    api = connect(kubeconfig, context)
    try:
        typer.echo(send_intent(intent, kind, namespace, name, api))
    except Refused as refused:
        raise fail(str(refused)) from None
    finally:
        api.close()


def intent_verb(intent: Intent | str, summary: str) -> Callable[..., None]:
    """The command for one intent; `summary` is its help."""

    def verb(
        target: Target,
        namespace: Namespace = None,
        kubeconfig: Kubeconfig = None,
        context: Context = None,
    ) -> None:
        request(intent, target, namespace, kubeconfig, context)

    verb.__name__ = verb.__qualname__ = intent
    verb.__doc__ = summary
    return verb


def undo_to_revision(
    target: str, number: int, namespace: str | None, kubeconfig: str | None, context: str | None,
) -> None:
    """Write revision `number` of a rollout's base into the base; exit 1 when refused."""
    from kubernetes.client.exceptions import ApiException

    from lanes.kube.connect import connect
    from lanes.kube.objects import error_message
    from lanes.kube.rollouts import RolloutsApi, default_namespace

    if release_name(target) is not None:
        raise typer.BadParameter(
            f"{target!r}: --to-revision takes a rollout (rollout/NAME); a lane release's undo "
            "rolls its whole lane back", param_hint="'rollout/NAME'")
    name = rollout_name(target)
    namespace = namespace or default_namespace(kubeconfig, context)
    api = connect(kubeconfig, context)
    try:
        rollouts = RolloutsApi(api, manager=FIELD_MANAGER)
        body = rollouts.get(namespace, name)
        if body is None:
            raise fail(f"workloadrollout/{name} not found in namespace {namespace}")
        found = WorkloadRollout.model_validate(body)
        seen = rollouts.workloads(namespace, found.spec.workload_ref.name)
        observed = Observed.from_objects(seen.base, seen.replica_sets)
        refused = check_undo_to(found, observed, number)
        if refused is not None:
            raise fail(refused)
        chosen = numbered(observed, number)
        assert chosen is not None and observed.base is not None
        try:
            rollouts.carry_out(namespace, name, RestoreBaseTemplate(
                observed.base.name, chosen.deployment_template))
        except ApiException as error:
            raise fail(error_message(error)) from None
        typer.echo(
            f"workloadrollout/{name}: Deployment {observed.base.name} set back to revision "
            f"{number} ({chosen.revision}); the rollout releases it through its steps"
        )
    finally:
        api.close()


def undo(
    target: Target,
    to_revision: Annotated[
        int | None,
        typer.Option("--to-revision", min=1, metavar="N",
                     help="Go back to revision N of the rollout's Deployment instead.")
    ] = None,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
) -> None:
    """Roll a rollout back: the base returns to its stable revision, the canary goes; with
    --to-revision N, release revision N of its Deployment again."""
    if to_revision is None:
        request("undo", target, namespace, kubeconfig, context)
    else:
        undo_to_revision(target, to_revision, namespace, kubeconfig, context)


def promote(
    target: Target,
    full: Annotated[
        bool, typer.Option("--full", help="Skip the remaining steps, analysis and gates.")
    ] = False,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
) -> None:
    """Promote a rollout or lane release: with --full at once, skipping its remaining steps and
    analysis; without it, as approve, past the step it is paused at."""
    request("promote" if full else "approve", target, namespace, kubeconfig, context)


VERBS = {
    "approve": intent_verb(
        "approve", "Continue a rollout past the step it is paused at; on the last step, promote."
    ),
    "undo": undo,
    "pause": intent_verb("pause", "Stop a rollout at its current step; the base stays held."),
    "resume": intent_verb("resume", "Continue a paused rollout."),
    "retry": intent_verb(
        "retry", "Release again a revision that its analysis or a webhook rolled back."
    ),
    "promote": promote,
    "abort": intent_verb(
        "abort", "Roll a release back now and keep its new revision(s) recorded as failed."
    ),
    "restart": intent_verb("restart", "Restart a rollout's canary pods by a rolling update."),
}
