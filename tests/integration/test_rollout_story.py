"""The mock-chain story end to end on the real control plane: rollouts, lanes and routes together.

kube-controller-manager runs the Deployments, the local node runs their pods as processes and
reports them Ready, the lane operator turns lane membership into DestinationRule subsets, and
the rollout handlers and admission webhook hold, canary, promote and undo. At every state of
the story table the test checks the Deployments (images, paused), the pods the bases run, the
generated subsets and the rollout statuses, and runs `istioctl analyze` against the cluster.
Approve and undo go through `kubectl lane`.
"""

from __future__ import annotations

import copy
import io
import uuid

import pytest
from rich.console import Console
from typer.testing import CliRunner

from lanes.cli.main import app
from lanes.cli.rolloutstatus import show_rollout
from lanes_testbed.node import LocalNode

from .operator_support import SUBSETS, Stories, assert_analyzed_clean, live_generated, reference_documents
from .rollout_support import IMAGE, Cluster, Operator, image_of, wait_for_webhook

pytestmark = pytest.mark.integration

V1, V2 = f"{IMAGE}:1.0", f"{IMAGE}:2.0"
SERVICES = ("mocka", "mockb", "mockc")

# Per state: each service's base image and whether it is held, and which services run a canary.
BASES: dict[str, dict[str, tuple[str, bool]]] = {
    "0": {"mocka": (V1, False), "mockb": (V1, False), "mockc": (V1, False)},
    "1": {"mocka": (V2, True), "mockb": (V1, False), "mockc": (V1, False)},
    "2": {"mocka": (V2, True), "mockb": (V2, True), "mockc": (V2, True)},
    "3": {"mocka": (V2, True), "mockb": (V2, False), "mockc": (V2, True)},
    "4": {"mocka": (V2, False), "mockb": (V2, False), "mockc": (V2, False)},
    "U": {"mocka": (V1, False), "mockb": (V2, True), "mockc": (V2, True)},
}
# The image the base's pods run: a held base keeps running 1.0.
RUNNING: dict[str, dict[str, str]] = {
    "0": dict.fromkeys(SERVICES, V1),
    "1": dict.fromkeys(SERVICES, V1),
    "2": dict.fromkeys(SERVICES, V1),
    "3": {"mocka": V1, "mockb": V2, "mockc": V1},
    "4": dict.fromkeys(SERVICES, V2),
    "U": dict.fromkeys(SERVICES, V1),
}
PHASES: dict[str, dict[str, str]] = {
    "0": dict.fromkeys(SERVICES, "Healthy"),
    "1": {"mocka": "Paused", "mockb": "Healthy", "mockc": "Healthy"},
    "2": dict.fromkeys(SERVICES, "Paused"),
    "3": {"mocka": "Paused", "mockb": "Healthy", "mockc": "Paused"},
    "4": dict.fromkeys(SERVICES, "Healthy"),
    "U": {"mocka": "Healthy", "mockb": "Paused", "mockc": "Paused"},
}
SUBSETS_U = {"mocka": ["base"], "mockb": ["base", "canary"], "mockc": ["base", "canary"]}


@pytest.fixture(scope="module")
def operator(control_plane, kube_api):
    with Operator(control_plane.kubeconfig, f"story-{uuid.uuid4().hex[:6]}.lanes.dev") as running:
        wait_for_webhook(kube_api, running.webhook.config_name, running.webhook.port)
        yield running


@pytest.fixture
def story(operator, control_plane, kube_api, namespace, tmp_path, ingress_gateway):
    """The reference inputs in this test's namespace, pods run by a local node."""
    stories = Stories(kube_api, namespace)
    made = stories.create("istio")
    cluster = Cluster(kube_api, namespace)
    with LocalNode(control_plane.kubeconfig, f"node-{namespace}", namespaces=[namespace], log_dir=tmp_path):
        for doc in reference_documents():
            if doc["kind"] == "Deployment":
                cluster.create_deployment(copy.deepcopy(doc))
            elif doc["kind"] == "WorkloadRollout":
                cluster.create_rollout(copy.deepcopy(doc))
        yield made, cluster, control_plane.kubeconfig
        cluster.delete_rollouts()
        stories.close()


def kubectl_lane(control_plane, namespace: str, *args: str) -> str:
    result = CliRunner().invoke(
        app, [*args, "-n", namespace, "--kubeconfig", str(control_plane.kubeconfig)]
    )
    assert result.exit_code == 0, result.output
    return result.output


def subsets(kube_api, story) -> dict[str, list[str]]:
    return {
        o["spec"]["host"].split(".")[0]: [s["name"] for s in o["spec"]["subsets"]]
        for o in live_generated(kube_api, story.name)
        if o["kind"] == "DestinationRule"
    }


def observe(cluster: Cluster) -> dict:
    """What the story table is about, read from the cluster."""
    bases, canaries, running, phases = {}, set(), {}, {}
    for service in SERVICES:
        base = cluster.deployment(f"{service}-v1")
        bases[service] = (image_of(base), bool(base["spec"].get("paused")))
        if cluster.deployment(f"{service}-v1-canary") is not None:
            canaries.add(service)
        pods = [p for p in cluster.pods({"app": service}) if "lanes.dev/canary" not in p["metadata"]["labels"]]
        images = {image_of_pod(p) for p in pods}
        running[service] = images.pop() if len(images) == 1 and len(pods) == 1 else sorted(images)
        phases[service] = cluster.status(f"rollouts-{service}").get("phase")
    return {"bases": bases, "canaries": canaries, "running": running, "phases": phases}


def image_of_pod(pod: dict) -> str:
    return pod["spec"]["containers"][0]["image"]


def reach(kube_api, story, cluster: Cluster, state: str, kubeconfig) -> dict:
    """Wait until the cluster shows the state's row of the story table, routes included, and
    istioctl analyze finds nothing wrong with them."""
    wanted_subsets = SUBSETS_U if state == "U" else SUBSETS[state]
    expected = {
        "bases": BASES[state],
        "canaries": {s for s, lanes in wanted_subsets.items() if "canary" in lanes},
        "running": RUNNING[state],
        "phases": PHASES[state],
    }
    cluster.until(lambda: observe(cluster) == expected, f"state {state}: {expected}", timeout=90)
    lanes = {s: [story.lane(lane) for lane in names] for s, names in wanted_subsets.items()}
    cluster.until(lambda: subsets(kube_api, story) == lanes, f"state {state} subsets {lanes}")
    assert_analyzed_clean(kubeconfig, cluster.namespace, f"state {state}")
    return {s: cluster.status(f"rollouts-{s}") for s in SERVICES}


def conditions(status: dict) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status.get("conditions") or []}


def base_pod_uids(cluster: Cluster) -> dict[str, set[str]]:
    return {
        s: {p["metadata"]["uid"] for p in cluster.pods({"app": s}) if "lanes.dev/canary" not in p["metadata"]["labels"]}
        for s in SERVICES
    }


def canary_pod_lanes(cluster: Cluster, service: str) -> set[str]:
    return {p["metadata"]["labels"]["ASM_TRAFFIC_TAG"] for p in cluster.pods({"app": service, "lanes.dev/canary": f"{service}-v1"})}


def test_story_states_0_to_4(story, control_plane, kube_api, namespace) -> None:
    made, cluster, kubeconfig = story
    statuses = reach(kube_api, made, cluster, "0", kubeconfig)
    stable = {s: statuses[s]["canaryStatus"]["stableRevision"] for s in SERVICES}
    uids = base_pod_uids(cluster)

    cluster.set_image("mocka-v1", V2)
    statuses = reach(kube_api, made, cluster, "1", kubeconfig)
    canary = statuses["mocka"]["canaryStatus"]
    assert (canary["currentStepIndex"], canary["currentStepState"]) == (1, "StepPaused")
    assert canary["stableRevision"] == stable["mocka"] != canary["canaryRevision"]
    assert conditions(statuses["mocka"])["Progressing"] == ("True", "Paused")
    assert canary_pod_lanes(cluster, "mocka") == {"canary"}
    held = cluster.deployment("mocka-v1")["metadata"]["annotations"]
    assert held["lanes.dev/held-by"] == "rollouts-mocka"
    out = io.StringIO()
    code = show_rollout("rollout/rollouts-mocka", namespace=namespace,
                        kubeconfig=str(control_plane.kubeconfig), console=Console(file=out, width=200))
    assert code == 2
    assert "ASM_TRAFFIC_TAG=canary" in out.getvalue() and "release: progressing" in out.getvalue()

    cluster.set_image("mockb-v1", V2)
    cluster.set_image("mockc-v1", V2)
    reach(kube_api, made, cluster, "2", kubeconfig)
    assert base_pod_uids(cluster) == uids

    assert "approved" in kubectl_lane(control_plane, namespace, "approve", "rollout/rollouts-mockb")
    waited = control_plane.kubectl(
        "wait", "--for=condition=Succeeded", "--timeout=90s", "-n", namespace, "workloadrollout/rollouts-mockb"
    )
    assert "condition met" in waited
    statuses = reach(kube_api, made, cluster, "3", kubeconfig)
    assert conditions(statuses["mockb"])["Succeeded"] == ("True", "Promoted")
    assert statuses["mockb"]["canaryStatus"]["stableRevision"] != stable["mockb"]
    assert cluster.deployment("mockb-v1")["metadata"].get("annotations", {}).get("lanes.dev/held-by") is None

    kubectl_lane(control_plane, namespace, "approve", "rollout/rollouts-mocka")
    kubectl_lane(control_plane, namespace, "approve", "rollout/rollouts-mockc")
    out = io.StringIO()
    code = show_rollout("rollout/rollouts-mocka", namespace=namespace, watch=True, timeout=90,
                        kubeconfig=str(control_plane.kubeconfig), console=Console(file=out, width=200))
    assert code == 0, out.getvalue()
    statuses = reach(kube_api, made, cluster, "4", kubeconfig)
    for service in SERVICES:
        assert conditions(statuses[service])["Succeeded"] == ("True", "Promoted")
        assert statuses[service]["canaryStatus"]["stableRevision"] != stable[service]
    assert "release: succeeded" in out.getvalue()


def test_story_undo_branch(story, control_plane, kube_api, namespace) -> None:
    made, cluster, kubeconfig = story
    statuses = reach(kube_api, made, cluster, "0", kubeconfig)
    stable = statuses["mocka"]["canaryStatus"]["stableRevision"]
    uids = base_pod_uids(cluster)
    for service in SERVICES:
        cluster.set_image(f"{service}-v1", V2)
    reach(kube_api, made, cluster, "2", kubeconfig)

    assert "undo requested" in kubectl_lane(control_plane, namespace, "undo", "rollout/rollouts-mocka")
    statuses = reach(kube_api, made, cluster, "U", kubeconfig)
    assert conditions(statuses["mocka"])["Succeeded"] == ("False", "RolledBack")
    assert statuses["mocka"]["canaryStatus"]["stableRevision"] == stable
    assert base_pod_uids(cluster) == uids
    replica_sets = cluster.replica_sets("mocka-v1")
    assert len(replica_sets) == 1, "the undo must not have started a ReplicaSet of the new template"
    refused = CliRunner().invoke(
        app, ["undo", "rollout/rollouts-mocka", "-n", namespace, "--kubeconfig", str(control_plane.kubeconfig)]
    )
    assert refused.exit_code == 1
    assert "has nothing in progress to undo (phase Healthy)" in refused.output


def mockb_routes(kube_api, story) -> dict[str, list]:
    """mockb's live mesh routes: name -> [(subset, weight)]."""
    vs = next(o for o in live_generated(kube_api, story.name)
              if o["kind"] == "VirtualService" and o["spec"]["hosts"][0].startswith("mockb."))
    return {r["name"]: [(d["destination"]["subset"], d.get("weight")) for d in r["route"]]
            for r in vs["spec"]["http"]}


def test_a_traffic_step_splits_untagged_requests_until_promotion(story, control_plane, kube_api, namespace) -> None:
    """mockb's release at 30% with a header match: the group's routes for mockb split its
    untagged requests while the step's canary pods are ready, and stop at promotion."""
    made, cluster, kubeconfig = story
    reach(kube_api, made, cluster, "0", kubeconfig)
    canary, base = made.lane("canary"), made.lane("base")
    cluster.rollouts.custom.patch_namespaced_custom_object(
        "lanes.dev", "v1alpha1", namespace, "workloadrollouts", "rollouts-mockb",
        {"spec": {"strategy": {"canary": {"steps": [
            {"replicas": 1, "traffic": "30%", "pause": {},
             "matches": [{"headers": [{"name": "x-canary", "value": "1"}]}]},
        ]}}}},
    )
    cluster.set_image("mockb-v1", V2)
    cluster.until(lambda: "untagged" in mockb_routes(kube_api, made), "mockb's untagged split")
    routes = mockb_routes(kube_api, made)
    assert routes["untagged"] == [(base, 70), (canary, 30)]
    assert routes[f"{canary}/matches"] == [(canary, None)]
    assert_analyzed_clean(kubeconfig, namespace, "traffic step")
    kubectl_lane(control_plane, namespace, "approve", "rollout/rollouts-mockb")
    control_plane.kubectl(
        "wait", "--for=condition=Succeeded", "--timeout=90s", "-n", namespace, "workloadrollout/rollouts-mockb"
    )
    cluster.until(lambda: "untagged" not in mockb_routes(kube_api, made), "no split after promotion")
