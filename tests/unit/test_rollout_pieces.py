"""The pure pieces of lanes.rollout: revisions, batch arithmetic, the canary builder, views,
intents."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest

from lanes.api.workloadrollout import CanaryStatus, CanaryStep, WorkloadRolloutStatus
from lanes.rollout import (
    CANARY_LABEL,
    REVISION_ANNOTATION,
    ROLLOUT_LABEL,
    DeploymentView,
    Observed,
    ReplicaSetView,
    canary_deployment,
    canary_name,
    canary_revision,
    check_intent,
    intent_patch,
    is_batch_ready,
    pod_template,
    scaled_value,
    step_replicas,
    template_hash,
)
from lanes.rollout.canary import drift
from lanes.rollout.conditions import set_condition
from lanes.rollout.status import parse_time, timestamp

from .rollout_sim import IMAGE, START, deployment, rollout


def replica_set(image: str, replicas: int, number: int, owner: str = "uid-mocka-v1") -> dict:
    template = copy.deepcopy(deployment(image=image)["spec"]["template"])
    template["metadata"]["labels"]["pod-template-hash"] = f"h{number}"
    return {
        "metadata": {
            "name": f"mocka-v1-h{number}",
            "labels": {"pod-template-hash": f"h{number}"},
            "annotations": {"deployment.kubernetes.io/revision": str(number)},
            "ownerReferences": [{"uid": owner, "controller": True}],
        },
        "spec": {"replicas": replicas, "template": template},
        "status": {"availableReplicas": replicas},
    }


V1, V2 = f"{IMAGE}:1.0", f"{IMAGE}:2.0"


# --- revisions -----------------------------------------------------------------------------


def test_revision_ignores_key_order_nulls_and_the_pod_template_hash_label() -> None:
    template = deployment()["spec"]["template"]
    reordered = {"spec": template["spec"], "metadata": dict(reversed(template["metadata"].items()))}
    from_replica_set = replica_set(V1, 1, 1)["spec"]["template"]
    assert template_hash(template) == template_hash(reordered) == template_hash(from_replica_set)
    assert len(template_hash(template)) == 10


def test_revision_changes_with_the_image() -> None:
    assert template_hash(deployment(image=V1)["spec"]["template"]) != template_hash(
        deployment(image=V2)["spec"]["template"]
    )


def test_replica_set_template_written_back_has_no_hash_label_or_timestamp() -> None:
    template = pod_template(replica_set(V1, 1, 1)["spec"]["template"])
    assert "pod-template-hash" not in template["metadata"]["labels"]
    assert "creationTimestamp" not in template["metadata"]
    assert template["spec"] == deployment()["spec"]["template"]["spec"]


# --- batches -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("replicas", "base", "expected"),
    [
        pytest.param(1, 3, 1, id="count"),
        pytest.param(5, 3, 3, id="count-capped-at-base"),
        pytest.param("20%", 10, 2, id="percent"),
        pytest.param("20%", 3, 1, id="percent-rounds-up"),
        pytest.param("1%", 1, 1, id="small-percent-gives-one-pod"),
        pytest.param("100%", 4, 4, id="all"),
        pytest.param("0%", 4, 0, id="zero-percent"),
        pytest.param(0, 4, 0, id="zero"),
        pytest.param("50%", 0, 0, id="empty-base"),
    ],
)
def test_step_replicas(replicas: int | str, base: int, expected: int) -> None:
    assert step_replicas(CanaryStep(replicas=replicas), base) == expected


@pytest.mark.parametrize(
    ("desired", "updated", "available", "threshold", "ready"),
    [
        pytest.param(2, 2, 2, None, True, id="all-available"),
        pytest.param(2, 1, 1, None, False, id="not-all-updated"),
        pytest.param(2, 2, 1, None, False, id="one-unavailable"),
        pytest.param(3, 3, 2, 1, True, id="threshold-tolerates-one"),
        pytest.param(4, 4, 3, "25%", True, id="threshold-percent"),
        pytest.param(1, 1, 0, 1, False, id="never-zero-available"),
        pytest.param(0, 0, 0, None, True, id="empty-step"),
    ],
)
def test_is_batch_ready(
    desired: int, updated: int, available: int, threshold: int | str | None, ready: bool
) -> None:
    assert is_batch_ready(desired, updated, available, threshold) is ready


def test_scaled_value_rounds_down_when_asked() -> None:
    assert scaled_value("50%", 3, round_up=False) == 1


# --- canary Deployment ---------------------------------------------------------------------


def test_canary_deployment_runs_the_new_template_in_the_canary_lane() -> None:
    base = DeploymentView.from_object(deployment(image=V2, replicas=3))
    obj = canary_deployment(rollout(), base, 1)
    labels = obj["spec"]["template"]["metadata"]["labels"]
    assert obj["metadata"]["name"] == canary_name("mocka-v1") == "mocka-v1-canary"
    assert labels == {
        "app": "mocka",
        "version": "v1",
        "ASM_TRAFFIC_TAG": "canary",
        CANARY_LABEL: "mocka-v1",
    }
    assert obj["spec"]["selector"]["matchLabels"] == {"app": "mocka", CANARY_LABEL: "mocka-v1"}
    assert obj["spec"]["template"]["spec"] == deployment(image=V2)["spec"]["template"]["spec"]
    assert obj["spec"]["replicas"] == 1
    assert obj["metadata"]["labels"][ROLLOUT_LABEL] == "rollouts-mocka"
    assert obj["metadata"]["annotations"][REVISION_ANNOTATION] == base.revision
    assert canary_revision(DeploymentView.from_object(obj)) == base.revision
    assert obj["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "lanes.dev/v1alpha1",
            "kind": "WorkloadRollout",
            "name": "rollouts-mocka",
            "uid": "uid-rollout",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def test_canary_selector_does_not_select_base_pods() -> None:
    base_object = deployment()
    obj = canary_deployment(rollout(), DeploymentView.from_object(base_object), 1)
    base_pod_labels = base_object["spec"]["template"]["metadata"]["labels"]
    selector = obj["spec"]["selector"]["matchLabels"]
    assert not all(base_pod_labels.get(k) == v for k, v in selector.items())


def test_canary_annotations_are_merged_into_pods() -> None:
    ro = rollout(patchPodTemplateMetadata={"annotations": {"sidecar.istio.io/inject": "true"}})
    obj = canary_deployment(ro, DeploymentView.from_object(deployment()), 1)
    assert obj["spec"]["template"]["metadata"]["annotations"] == {"sidecar.istio.io/inject": "true"}


def test_canary_needs_the_rollout_uid() -> None:
    ro = rollout()
    ro = ro.model_copy(update={"metadata": ro.metadata.model_copy(update={"uid": None})})
    with pytest.raises(ValueError, match="uid"):
        canary_deployment(ro, DeploymentView.from_object(deployment()), 1)


def test_canary_drift_compares_the_recorded_template_hash_and_replicas() -> None:
    base = DeploymentView.from_object(deployment(image=V2))
    desired = canary_deployment(rollout(), base, 2)
    same = DeploymentView.from_object(desired)
    assert drift(same, desired) is None
    assert drift(same, canary_deployment(rollout(), base, 3)) == "replicas"
    newer = DeploymentView.from_object(deployment(image=f"{IMAGE}:3.0"))
    assert drift(same, canary_deployment(rollout(), newer, 2)) == "template"


# --- observed views ------------------------------------------------------------------------


def test_observed_keeps_only_replica_sets_the_base_owns() -> None:
    base = deployment()
    base["metadata"]["uid"] = "uid-mocka-v1"
    observed = Observed.from_objects(
        base, [replica_set(V1, 1, 1), replica_set(V1, 1, 2, owner="someone-else")]
    )
    assert [rs.name for rs in observed.replica_sets] == ["mocka-v1-h1"]


@pytest.mark.parametrize(
    ("image", "paused", "sets", "expected"),
    [
        pytest.param(V1, False, [(V1, 3, 1)], V1, id="rolled-out"),
        pytest.param(V2, True, [(V1, 3, 1)], V1, id="held-by-webhook"),
        pytest.param(V2, False, [], V2, id="new-deployment"),
        pytest.param(V2, False, [(V1, 0, 1), (V2, 3, 2)], V2, id="rolled-forward"),
        pytest.param(f"{IMAGE}:3.0", True, [(V1, 0, 1), (V2, 3, 2)], V2, id="newest-with-pods"),
    ],
)
def test_running_revision(
    image: str, paused: bool, sets: list[tuple[str, int, int]], expected: str
) -> None:
    base = deployment(image=image)
    base["spec"]["paused"] = paused
    observed = Observed.from_objects(base, [replica_set(*s) for s in sets])
    expected_revision = template_hash(deployment(image=expected)["spec"]["template"])
    assert observed.running_revision() == expected_revision


def test_deployment_view_reads_status_and_defaults() -> None:
    obj = deployment(replicas=2)
    obj["status"] = {
        "observedGeneration": 1,
        "replicas": 2,
        "updatedReplicas": 2,
        "availableReplicas": 2,
    }
    view = DeploymentView.from_object(obj)
    assert view.rolled_out
    assert view.progress_deadline_seconds == 600
    paused = {**obj, "spec": {**obj["spec"], "paused": True}}
    assert not DeploymentView.from_object(paused).rolled_out


def test_replica_set_view_reads_its_revision_number() -> None:
    view = ReplicaSetView.from_object(replica_set(V1, 2, 7))
    assert (view.revision_number, view.pod_template_hash, view.replicas) == (7, "h7", 2)


# --- status helpers ------------------------------------------------------------------------


def test_condition_transition_time_moves_only_when_its_status_changes() -> None:
    first = set_condition([], "Progressing", "True", "InRolling", "a", START, 1)
    later = START + timedelta(minutes=5)
    same = set_condition(first, "Progressing", "True", "Paused", "b", later, 1)
    flipped = set_condition(same, "Progressing", "False", "Completed", "c", later, 1)
    assert same[0].last_transition_time == timestamp(START)
    assert same[0].reason == "Paused"
    assert flipped[0].last_transition_time == timestamp(later)


def test_timestamps_round_trip() -> None:
    assert parse_time(timestamp(START)) == START
    assert parse_time("not a time") is None


# --- intents -------------------------------------------------------------------------------


def _in(
    phase: str, state: str | None = "StepPaused", paused: bool = False, spec_paused: bool = False
):
    status = WorkloadRolloutStatus(
        phase=phase,
        paused=paused,
        canary_status=CanaryStatus(
            stable_revision="a", canary_revision="b", current_step_index=1, current_step_state=state
        ),
    )
    ro = _spec_paused() if spec_paused else rollout()
    return ro.model_copy(update={"status": status})


def _never_ran(phase: str):
    """A rollout that failed before any release started, e.g. on a Conflict."""
    return rollout().model_copy(update={"status": WorkloadRolloutStatus(phase=phase)})


def _spec_paused():
    ro = rollout()
    strategy = ro.spec.strategy.model_copy(update={"paused": True})
    return ro.model_copy(update={"spec": ro.spec.model_copy(update={"strategy": strategy})})


@pytest.mark.parametrize(
    ("ro", "intent", "error"),
    [
        pytest.param(*case[:3], id=case[3])
        for case in [
            (_in("Paused"), "approve", None, "approve-paused-step"),
            (_in("Progressing"), "approve", None, "approve-timed-pause"),
            (_in("Progressing", "StepUpgrade"), "approve", "only a paused", "approve-upgrading"),
            (_in("Healthy", None), "approve", "no canary step", "approve-healthy"),
            (_in("Promoting", "Completed"), "approve", "no canary step", "approve-promoting"),
            (_in("Paused", paused=True), "approve", "resume it first", "approve-user-paused"),
            (_in("Paused", spec_paused=True), "approve", "spec.strategy", "approve-spec-paused"),
            (_in("Paused"), "undo", None, "undo-paused"),
            (_in("Failed", "StepUpgrade"), "undo", None, "undo-failed"),
            (_in("Promoting", "Completed"), "undo", None, "undo-promoting"),
            (_in("Healthy", None), "undo", "nothing in progress", "undo-healthy"),
            (_never_ran("Failed"), "undo", "nothing in progress", "undo-conflict"),
            (_in("RollingBack"), "undo", "already rolling back", "undo-rolling-back"),
            (_in("Progressing", "StepUpgrade"), "pause", None, "pause-progressing"),
            (_in("Healthy", None), "pause", None, "pause-healthy"),
            (_in("Paused", paused=True), "pause", "already paused", "pause-paused"),
            (_in("Promoting", "Completed"), "pause", "cannot be paused", "pause-promoting"),
            (_in("Paused", paused=True), "resume", None, "resume-paused"),
            (_in("Paused"), "resume", "not paused", "resume-not-paused"),
        ]
    ],
)
def test_check_intent(ro, intent: str, error: str | None) -> None:
    found = check_intent(ro, intent)
    if error is None:
        assert found is None
    else:
        assert found is not None and error in found and "workloadrollout/rollouts-mocka" in found


def test_resume_refused_while_the_spec_pauses() -> None:
    ro = _spec_paused()
    assert "spec.strategy.paused" in check_intent(ro, "resume")
    assert "spec.strategy.paused" in check_intent(ro, "pause")


def test_intent_patch_names_the_step_to_approve_and_replaces_pause_with_resume() -> None:
    ro = _in("Paused")
    assert intent_patch(ro, "approve", START) == {
        "metadata": {"annotations": {"lanes.dev/approve": "1"}}
    }
    assert intent_patch(ro, "resume", START) == {
        "metadata": {
            "annotations": {"lanes.dev/resume": "2025-01-01T00:00:00Z", "lanes.dev/pause": None}
        }
    }
