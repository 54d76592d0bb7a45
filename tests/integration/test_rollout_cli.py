"""`kubectl lane approve|undo|pause|resume|status rollout/NAME` against the real API server.

No operator runs here: each test writes the rollout's status itself, so the verbs are checked
against exactly the state named, and a refused verb is shown to patch nothing (the
resourceVersion does not move).
"""

from __future__ import annotations

import io
import threading
import time

import pytest
from rich.console import Console
from typer.testing import CliRunner

from lanes.cli.main import app
from lanes.cli.rolloutstatus import show_rollout
from lanes.rollout import DeploymentView

from .rollout_support import IMAGE, Cluster, deployment, workload_rollout

pytestmark = pytest.mark.integration

PAUSED_AT_STEP_1 = {
    "phase": "Paused",
    "observedGeneration": 1,
    "canaryStatus": {"stableRevision": "aaa", "canaryRevision": "bbb", "currentStepIndex": 1,
                     "currentStepState": "StepPaused", "canaryReplicas": 1, "canaryReadyReplicas": 1},
    "conditions": [{"type": "Progressing", "status": "True", "reason": "Paused", "message": "",
                    "lastTransitionTime": "2025-01-01T00:00:00Z"}],
    "message": "step 1/1: approve to promote",
}
UPGRADING = {**PAUSED_AT_STEP_1, "phase": "Progressing",
             "canaryStatus": {**PAUSED_AT_STEP_1["canaryStatus"], "currentStepState": "StepUpgrade"}}
HEALTHY = {"phase": "Healthy", "observedGeneration": 1, "canaryStatus": {"stableRevision": "aaa"}}
PROMOTING = {**PAUSED_AT_STEP_1, "phase": "Promoting",
             "canaryStatus": {**PAUSED_AT_STEP_1["canaryStatus"], "currentStepState": "Completed"}}


@pytest.fixture
def cluster(kube_api, namespace) -> Cluster:
    made = Cluster(kube_api, namespace)
    made.create_rollout(workload_rollout("rollouts-mocka", "mocka-v1"))
    return made


def set_status(cluster: Cluster, status: dict) -> str:
    body = cluster.rollout("rollouts-mocka")
    return cluster.rollouts.write_status(body, status)["metadata"]["resourceVersion"]


def lane(control_plane, namespace: str, *args: str):
    return CliRunner().invoke(
        app, [*args, "-n", namespace, "--kubeconfig", str(control_plane.kubeconfig)],
        env={"COLUMNS": "200"},
    )


def annotations(cluster: Cluster) -> dict:
    return {k: v for k, v in (cluster.rollout("rollouts-mocka")["metadata"].get("annotations") or {}).items()
            if k.startswith("lanes.dev/")}


@pytest.mark.parametrize(
    ("verb", "status", "message"),
    [
        ("approve", HEALTHY, "has no canary step waiting for approval (phase Healthy)"),
        ("approve", UPGRADING, "is at step 1/1 (StepUpgrade): only a paused step can be approved"),
        ("approve", {**PAUSED_AT_STEP_1, "paused": True}, "is paused; resume it first"),
        ("undo", HEALTHY, "has nothing in progress to undo (phase Healthy)"),
        ("pause", PROMOTING, "is promoting and cannot be paused; it finishes on its own"),
        ("resume", PAUSED_AT_STEP_1, "is not paused"),
    ],
    ids=["approve-healthy", "approve-upgrading", "approve-paused", "undo-healthy", "pause-promoting",
         "resume-not-paused"],
)
def test_wrong_state_is_refused_and_patches_nothing(
    control_plane, cluster, namespace, verb, status, message
) -> None:
    version = set_status(cluster, status)
    result = lane(control_plane, namespace, verb, "rollout/rollouts-mocka")
    assert result.exit_code == 1
    assert f"error: workloadrollout/rollouts-mocka {message}" in result.output
    assert cluster.rollout("rollouts-mocka")["metadata"]["resourceVersion"] == version


def test_granted_verbs_write_their_intent(control_plane, cluster, namespace) -> None:
    set_status(cluster, PAUSED_AT_STEP_1)
    result = lane(control_plane, namespace, "approve", "rollout/rollouts-mocka")
    assert result.exit_code == 0, result.output
    assert "step 1/1 approved; the rollout promotes" in result.output
    assert annotations(cluster) == {"lanes.dev/approve": "1"}

    assert lane(control_plane, namespace, "pause", "rollout/rollouts-mocka").exit_code == 0
    assert set(annotations(cluster)) == {"lanes.dev/approve", "lanes.dev/pause"}
    set_status(cluster, {**PAUSED_AT_STEP_1, "paused": True})
    assert lane(control_plane, namespace, "resume", "rollout/rollouts-mocka").exit_code == 0
    assert set(annotations(cluster)) == {"lanes.dev/approve", "lanes.dev/resume"}
    assert lane(control_plane, namespace, "undo", "rollout/rollouts-mocka").exit_code == 0
    assert "lanes.dev/undo" in annotations(cluster)


def test_missing_rollout_is_an_error(control_plane, namespace) -> None:
    result = lane(control_plane, namespace, "approve", "rollout/nope")
    assert result.exit_code == 1
    assert f"workloadrollout/nope not found in namespace {namespace}" in result.output


def test_status_exit_codes_and_watch(control_plane, cluster, namespace) -> None:
    cluster.create_deployment(deployment("mocka-v1", "mocka", f"{IMAGE}:1.0"))
    kubeconfig = str(control_plane.kubeconfig)

    def show(**kwargs) -> tuple[int, str]:
        out = io.StringIO()
        code = show_rollout("rollout/rollouts-mocka", namespace=namespace, kubeconfig=kubeconfig,
                            console=Console(file=out, width=200), **kwargs)
        return code, out.getvalue()

    set_status(cluster, PAUSED_AT_STEP_1)
    code, text = show()
    assert code == 2 and "release: progressing" in text and "mocka-v1" in text
    set_status(cluster, {**PAUSED_AT_STEP_1, "phase": "Failed"})
    assert show()[0] == 1

    revision = DeploymentView.from_object(cluster.deployment("mocka-v1")).revision
    set_status(cluster, PAUSED_AT_STEP_1)

    def finish() -> None:
        time.sleep(1.5)
        set_status(cluster, {**HEALTHY, "canaryStatus": {"stableRevision": revision},
                             "conditions": [{"type": "Succeeded", "status": "True", "reason": "Promoted",
                                             "message": "", "lastTransitionTime": "2025-01-01T00:00:00Z"}]})

    finisher = threading.Thread(target=finish)
    finisher.start()
    code, text = show(watch=True, timeout=30)
    finisher.join()
    assert code == 0, text
    lines = text.splitlines()
    assert lines[0].startswith("Paused step 1/1 StepPaused")
    assert any(line.startswith("Healthy") for line in lines)
    assert "release: succeeded" in text

    set_status(cluster, PAUSED_AT_STEP_1)
    assert show(watch=True, timeout=1)[0] == 2


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (("promote", "--full"), HEALTHY, "has no release in progress to promote (phase Healthy)"),
        (("promote", "--full"), PROMOTING, "is already promoting revision bbb"),
        (("abort",), HEALTHY, "has nothing in progress to abort (phase Healthy)"),
        (("restart",), HEALTHY, "runs no canary pods to restart (phase Healthy)"),
    ],
    ids=["promote-full-healthy", "promote-full-promoting", "abort-healthy", "restart-healthy"],
)
def test_new_verbs_refuse_the_wrong_state(control_plane, cluster, namespace, args, status, message) -> None:
    version = set_status(cluster, status)
    result = lane(control_plane, namespace, *args, "rollout/rollouts-mocka")
    assert result.exit_code == 1
    assert f"error: workloadrollout/rollouts-mocka {message}" in result.output
    assert cluster.rollout("rollouts-mocka")["metadata"]["resourceVersion"] == version


@pytest.mark.parametrize(
    ("args", "annotation", "said"),
    [
        (("promote", "--full"), "lanes.dev/promote-full", "full promotion requested"),
        (("promote",), "lanes.dev/approve", "step 1/1 approved"),
        (("abort",), "lanes.dev/abort", "recorded as failed"),
        (("restart",), "lanes.dev/restart", "restart requested"),
    ],
    ids=["promote-full", "promote-is-approve", "abort", "restart"],
)
def test_new_verbs_write_their_request(control_plane, cluster, namespace, args, annotation, said) -> None:
    set_status(cluster, PAUSED_AT_STEP_1)
    result = lane(control_plane, namespace, *args, "rollout/rollouts-mocka")
    assert result.exit_code == 0, result.output
    assert said in result.output
    assert set(annotations(cluster)) == {annotation}


@pytest.mark.parametrize("args", [("restart",)], ids=["restart"])
def test_rollout_only_verbs_refuse_a_lane_release(control_plane, namespace, args) -> None:
    result = lane(control_plane, namespace, *args, "lanerelease/shop")
    assert result.exit_code == 2
    assert "takes a rollout (rollout/NAME)" in result.output


def test_undo_to_a_revision_of_a_lane_release_is_a_usage_error(control_plane, namespace) -> None:
    result = lane(control_plane, namespace, "undo", "--to-revision", "2", "lanerelease/shop")
    assert result.exit_code == 2
    assert "--to-revision takes a rollout (rollout/NAME)" in result.output
