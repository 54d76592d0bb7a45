"""approve, undo, pause and resume on `lanerelease/NAME`: checked, then requested.

The same contract as on a rollout (`lanes.cli.intents`): refused before anything is written
when the operator would drop the request (`check_release_intent`), and written with the
resourceVersion that was checked, so a release that moved on is checked again.
"""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from lanes.api.lanerelease import LaneRelease
from lanes.rollout import Intent
from lanes.rollout.lanerelease import check_release_intent, release_intent_patch

RELEASE_KINDS = frozenset({"lanerelease", "lanereleases", "lr"})
WHAT = {
    "approve": "step {step} approved; the entry weight moves on (after the last step, every "
               "rollout of the lane is promoted together)",
    "undo": "undo requested; the entry weight goes to 0, then every rollout of the lane is undone",
    "pause": "pause requested",
    "resume": "resume requested",
}


def release_name(target: str) -> str | None:
    """NAME from `lanerelease/NAME` (or `lr/NAME`); None for any other kind."""
    kind, sep, name = target.partition("/")
    return name if sep and kind.lower() in RELEASE_KINDS and name else None


def request_release(intent: Intent, name: str, namespace: str | None, kubeconfig: str | None,
                    context: str | None, attempts: int = 3) -> None:
    """Check an intent against the live release and request it; exit 1 when refused."""
    from kubernetes.client.exceptions import ApiException

    from lanes.kube.connect import connect
    from lanes.kube.lanereleases import LaneReleasesApi
    from lanes.kube.objects import error_message
    from lanes.kube.rollouts import default_namespace

    from .intents import FIELD_MANAGER, fail

    namespace = namespace or default_namespace(kubeconfig, context)
    api = connect(kubeconfig, context)
    try:
        releases = LaneReleasesApi(api, manager=FIELD_MANAGER)
        for _ in range(attempts):
            body = releases.get(namespace, name)
            if body is None:
                raise fail(f"lanerelease/{name} not found in namespace {namespace}")
            release = LaneRelease.model_validate(body)
            refused = check_release_intent(release, intent)
            if refused is not None:
                raise fail(refused)
            patch = release_intent_patch(release, intent, datetime.now(UTC))
            try:
                releases.annotate(namespace, name, patch["metadata"]["annotations"],
                                  body["metadata"]["resourceVersion"])
            except ApiException as error:
                if error.status == 409:
                    continue
                raise fail(error_message(error)) from None
            step = release.status.current_step_index if release.status else 0
            typer.echo(f"lanerelease/{name}: " + WHAT[intent].format(step=step))
            return
        raise fail(f"lanerelease/{name} kept changing; try again")
    finally:
        api.close()
