"""The chart's two replicas, installed for real and run by the local node, hand over leadership.

`helm template` renders charts/lanes into a namespace and release of this test's own and the
objects are applied server-side; kube-controller-manager turns the Deployment into two pods,
and the local node runs each as a real `kubectl-lane operator` process on its own loopback
address, acting as the chart's ServiceAccount through the token the node requests for it, so
the operator has exactly the chart's RBAC. One replica takes the chart's Lease and
reconciles a group; the leader is then frozen (SIGSTOP) and its pod deleted, as when its
node dies, and the other replica takes the Lease and reconciles a change made after that.

The webhook is registered but not reachable here: the chart points the configuration at the
webhook Service's DNS name, and the local control plane has neither DNS nor kube-proxy. Its
failurePolicy is Ignore and its objectSelector matches only Deployments a WorkloadRollout
targets, none of which this test makes, so nothing the test writes waits on it.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lanes_testbed import inprocess, processes
from lanes_testbed.controlplane import ControlPlane
from lanes_testbed.node import LocalNode
from lanes_testbed.node.identity import KUBECONFIG_FILE
from lanes.kube.kinds import SWIMLANE, SWIMLANEGROUP
from lanes.rollout import CANARY_LABEL, ROLLOUT_LABEL

from .operator_support import build_story, create_story, delete_story, enter_state, group_exists, live_generated, matches
from .test_chart import CHART, helm

eventually = functools.partial(inprocess.eventually, timeout=90.0, interval=0.2)

LEASE_DURATION = 4
# Short timings keep the test quick (the chart's 15/10/2 s are measured by bench/failover.py);
# they still keep lease duration > renew deadline > retry period, as the operator requires.
TIMINGS = {"leaderElection.leaseDuration": LEASE_DURATION, "leaderElection.renewDeadline": 3,
           "leaderElection.retryPeriod": 1}
CLUSTER_KINDS = ("ClusterRole", "ClusterRoleBinding")


def render(release: str, namespace: str, config_name: str) -> list[dict[str, Any]]:
    """The chart's objects (CRDs left out: the session installed them) for the local node.

    Every pod binds only its own address, since pods on the local node share one network;
    the trace-affinity module file the image carries does not exist on this machine.
    """
    values = {**TIMINGS, "listenAddress": "$(POD_IP)", "webhook.configName": config_name,
              "traceAffinity.serve": "false"}
    sets = [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]
    text = helm("template", release, str(CHART), "--namespace", namespace, *sets)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def holder(api: client.ApiClient, namespace: str, lease: str) -> str | None:
    try:
        return client.CoordinationV1Api(api).read_namespaced_lease(lease, namespace).spec.holder_identity
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def ready_pods(api: client.ApiClient, namespace: str, selector: str) -> list[dict[str, Any]]:
    """Running, Ready pods not being deleted."""
    listing = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=selector)
    pods = [api.sanitize_for_serialization(p) for p in listing.items]
    return [
        p for p in pods
        if not p["metadata"].get("deletionTimestamp") and p["status"].get("phase") == "Running"
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])
    ]


def registered(admission: client.AdmissionregistrationV1Api, name: str) -> list[Any] | None:
    """The webhooks of a mutating configuration; None until it exists with some (a replica
    may create the configuration before it fills it in)."""
    try:
        return admission.read_mutating_webhook_configuration(name).webhooks or None
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def log_tails(directory: Path, lines: int = 40) -> str:
    """The last lines of every container's log the node kept, for a failure's message."""
    parts = []
    for path in sorted(directory.rglob("*.log")):
        tail = path.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"--- {path.parent.name}/{path.name} (last {len(tail)} lines)\n" + "\n".join(tail))
    return "\n".join(parts) or f"(no container logs under {directory})"


@contextlib.contextmanager
def logs_on_failure(directory: Path) -> Iterator[None]:
    try:
        yield
    except Exception as error:
        raise AssertionError(f"{error}\n\ncontainer logs:\n{log_tails(directory)}") from error


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_the_charts_replicas_hand_over_leadership_on_the_local_node(
    control_plane: ControlPlane, kube_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    release, chart_ns, config_name = f"ha-{tag}", f"lanes-ha-{tag}", f"ha-{tag}.lanes.dev"
    fullname = f"{release}-lanes"
    objects = render(release, chart_ns, config_name)
    [deployment] = [d for d in objects if d["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 2, "the chart's default is two replicas"
    selector = ",".join(f"{k}={v}" for k, v in deployment["spec"]["selector"]["matchLabels"].items())
    core, admission = client.CoreV1Api(kube_api), client.AdmissionregistrationV1Api(kube_api)
    log_dir = tmp_path / "pods"
    story = build_story(namespace)
    control_plane.kubectl("create", "namespace", chart_ns)
    node = LocalNode(control_plane.kubeconfig, f"node-{tag}", namespaces=[chart_ns], log_dir=log_dir)
    try:
        with node, logs_on_failure(log_dir):
            control_plane.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(objects))
            pods = eventually(lambda: (lambda ready: ready if len(ready) == 2 else None)(
                ready_pods(kube_api, chart_ns, selector)), "both replicas Running and Ready")
            names = {p["metadata"]["name"] for p in pods}
            assert len({p["status"]["podIP"] for p in pods}) == 2

            # Each runs as the chart's ServiceAccount, through the kubeconfig the node wrote.
            account = f"system:serviceaccount:{chart_ns}:{fullname}"
            for pod in pods:
                running = node.running()[f"{chart_ns}/{pod['metadata']['name']}"]
                kubeconfig = Path(environ(running.pids[0])["KUBECONFIG"])
                assert kubeconfig.name == KUBECONFIG_FILE and pod["metadata"]["uid"] in kubeconfig.parent.name
                document = yaml.safe_load(kubeconfig.read_text())
                assert [u["name"] for u in document["users"]] == [account]
                assert set(document["users"][0]["user"]) == {"token"}

            leader = eventually(lambda: holder(kube_api, chart_ns, fullname), "a replica to take the Lease")
            assert leader in names
            [standby] = names - {leader}

            # Registered by the replicas for the webhook Service, never blocking anyone.
            [webhook] = eventually(lambda: registered(admission, config_name), "the webhook registered")
            assert webhook.client_config.url.startswith(f"https://{fullname}-webhook.{chart_ns}.svc:9443/")
            assert webhook.failure_policy == "Ignore"
            assert {e.key: e.operator for e in webhook.object_selector.match_expressions} == {
                ROLLOUT_LABEL: "Exists", CANARY_LABEL: "DoesNotExist"}

            create_story(kube_api, story)
            enter_state(kube_api, story, "1")
            eventually(lambda: matches(live_generated(kube_api, story.name), story.expected("1")),
                       "the leader to generate state 1's routes")
            assert holder(kube_api, chart_ns, fullname) == leader

            # The leader freezes (it can neither renew nor release) and its pod goes.
            processes.signal_group(node.running()[f"{chart_ns}/{leader}"].pids[0], signal.SIGSTOP)
            frozen = time.monotonic()
            core.delete_namespaced_pod(leader, chart_ns, grace_period_seconds=1)
            enter_state(kube_api, story, "2")
            eventually(lambda: holder(kube_api, chart_ns, fullname) == standby,
                       "the standby to take the Lease")
            took = time.monotonic() - frozen
            eventually(lambda: matches(live_generated(kube_api, story.name), story.expected("2")),
                       "the new leader to generate state 2's routes")
            assert took <= LEASE_DURATION + 1 + 2, f"takeover took {took:.1f}s"

            # The Deployment's replacement pod comes up as a standby; the Lease stays put.
            replaced = eventually(lambda: (lambda ready: ready if len(ready) == 2 else None)(
                ready_pods(kube_api, chart_ns, selector)), "the replacement replica Ready")
            assert leader not in {p["metadata"]["name"] for p in replaced}
            assert holder(kube_api, chart_ns, fullname) == standby

            delete_story(kube_api, story)
            eventually(lambda: not group_exists(kube_api, story.name), "the new leader to clean up the group")
    finally:
        remove_story(kube_api, story)
        control_plane.kubectl("delete", "-f", "-", "--ignore-not-found", "--wait=false", input=yaml.safe_dump_all(
            [d for d in objects if d["kind"] in CLUSTER_KINDS]))
        # kopf registers a validating configuration of the same name beside the mutating one.
        for delete in (admission.delete_mutating_webhook_configuration,
                       admission.delete_validating_webhook_configuration):
            try:
                delete(config_name)
            except ApiException as error:
                if error.status != 404:
                    raise
        control_plane.kubectl("delete", "namespace", chart_ns, "--wait=false")
        with contextlib.suppress(ApiException):
            core.delete_node(node.name)


def remove_story(api: client.ApiClient, story: Any) -> None:
    """The story's cluster-scoped objects gone even when no operator is left to finalize them."""
    custom = client.CustomObjectsApi(api)
    delete_story(api, story)
    for kind, name in [(SWIMLANEGROUP, story.name), *((SWIMLANE, l["metadata"]["name"]) for l in story.lanes)]:
        with contextlib.suppress(ApiException):
            custom.patch_cluster_custom_object(kind.group, kind.version, kind.plural, name,
                                               {"metadata": {"finalizers": None}})
