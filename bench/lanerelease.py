"""How fast a LaneRelease promotes and rolls back a whole lane.

Usage: python bench/lanerelease.py [--sizes 3,10,30] [--trials N] [--skip-rollback]

Promotion (a local control plane with lanes' and Istio's CRDs, the operator as its own process,
pods made Ready by a stand-in kubelet): for each N, a lane group of N services, each with a
Deployment and a WorkloadRollout; every base gets a new image, a LaneRelease with one step
(weight 50, waiting for approval) starts once every canary is ready, and the time is taken
from the approve of the last step to every rollout Healthy on the new revision (the bases
rolled, the entry weight back to 0, the canaries gone). The release's `routeSettle` (2 s,
twice: before the approves and before the canaries go) is part of that time.

Rollback (the dev stack: real Envoy, real Prometheus scraping it every second): the sample's
three services, mockc on a new version that answers every request 500, analysis every 2 s
with threshold 2. Times from the first failed check (the failing service's first bad
interval) to the entry weight 0 in the release's status, to the gateway's live route sending
nothing into the lane, and to every rollout undone.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from convergence import cluster, create_group, group_bodies
import yaml
from kubernetes import client, config
from rollout import operator_process, webhook_at

from lanes_testbed.inprocess import PodReadier
from lanes.render.steps import entered_weight

IMAGE = "registry.cn-beijing.aliyuncs.com/aliacs-app-catalog/go-http-sample"
LANES = ("lanes.dev", "v1alpha1")


def until(check: Callable[[], object], what: str, timeout: float = 300.0, poll: float = 0.02
          ) -> float:
    """Poll until `check` holds; the monotonic time it first did."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(poll)
    return time.monotonic()


def deployment(service: str, lane: str, image: str) -> dict:
    return {
        "metadata": {"name": service},
        "spec": {
            "replicas": 1, "selector": {"matchLabels": {"app": service}},
            "template": {"metadata": {"labels": {"app": service, "lane": lane}},
                         "spec": {"containers": [{"name": "default", "image": image}]}},
        },
    }


def workload_rollout(service: str, lane: str) -> dict:
    return {
        "apiVersion": "/".join(LANES), "kind": "WorkloadRollout",
        "metadata": {"name": service},
        "spec": {"workloadRef": {"name": service}, "strategy": {"canary": {
            "steps": [{"replicas": 1}], "patchPodTemplateMetadata": {"labels": {"lane": lane}}}}},
    }


def promote(api: client.ApiClient, size: int) -> float:
    """One lane of `size` services promoted together: seconds from approve to all done."""
    tag = uuid.uuid4().hex[:6]
    namespace, base, canary = f"lr-{size}-{tag}", f"base-{tag}", f"canary-{tag}"
    services = [f"svc{i}" for i in range(size)]
    group, lanes = group_bodies(f"g-{tag}", namespace, services, [base, canary])
    create_group(api, namespace, group, lanes, services)
    apps, custom = client.AppsV1Api(api), client.CustomObjectsApi(api)
    with PodReadier(api, namespace):
        for service in services:
            apps.create_namespaced_deployment(namespace, deployment(service, base, f"{IMAGE}:1.0"))
            custom.create_namespaced_custom_object(*LANES, namespace, "workloadrollouts",
                                                   workload_rollout(service, canary))

        def phases() -> dict[str, str]:
            items = custom.list_namespaced_custom_object(*LANES, namespace, "workloadrollouts")
            return {i["metadata"]["name"]: (i.get("status") or {}).get("phase", "")
                    for i in items["items"]}

        def targeted() -> bool:
            found = phases()
            labelled = {d.metadata.name for d in apps.list_namespaced_deployment(namespace).items
                        if (d.metadata.labels or {}).get("lanes.dev/rollout")}
            return all(found.get(s) == "Healthy" for s in services) and labelled >= set(services)

        until(targeted, "every rollout Healthy and targeting its base")
        custom.create_namespaced_custom_object(*LANES, namespace, "lanereleases", {
            "apiVersion": "/".join(LANES), "kind": "LaneRelease", "metadata": {"name": "r"},
            "spec": {"swimLaneRef": {"name": canary}, "steps": [{"weight": 50}]}})
        for service in services:
            apps.patch_namespaced_deployment(service, namespace, {"spec": {"template": {"spec": {
                "containers": [{"name": "default", "image": f"{IMAGE}:2.0"}]}}}})

        def release() -> dict:
            return custom.get_namespaced_custom_object(*LANES, namespace, "lanereleases", "r")

        until(lambda: (release().get("status") or {}).get("phase") == "Progressing",
              "the release to start")
        custom.patch_namespaced_custom_object(*LANES, namespace, "lanereleases", "r", {
            "metadata": {"annotations": {"lanes.dev/approve": "1"}}})
        approved = time.monotonic()

        def done() -> bool:
            if (release().get("status") or {}).get("phase") != "Succeeded":
                return False
            images = {d.spec.template.spec.containers[0].image
                      for d in apps.list_namespaced_deployment(namespace).items}
            return images == {f"{IMAGE}:2.0"} and all(p == "Healthy" for p in phases().values())

        finished = until(done, f"{size} services promoted")
    client.CoreV1Api(api).delete_namespace(namespace)
    return finished - approved


def rollback(trials: int) -> list[tuple[float, float, float]]:
    """Failing lane releases on the dev stack: (to weight 0, to routes 0, to undone) each."""
    from rich.console import Console

    from lanes_testbed.cli.lanestory import LaneStory, change_commands, lane_release
    from lanes_testbed.stack import Stack

    sample = Path(__file__).resolve().parent.parent / "samples" / "mock-chain"
    found = []
    with tempfile.TemporaryDirectory(prefix="lanes-bench-") as tmp, \
            Stack(Path(tmp) / "stack", gateway_port=0) as stack:
        story = LaneStory(stack.kubeconfig, stack.plane.binaries.kubectl, stack.gateway_url,
                          sample, Console(file=io.StringIO()), timeout=180)
        story.setup()
        custom = client.CustomObjectsApi(story.api)
        stop = threading.Event()

        def load() -> None:
            from lanes_testbed.cli.lanestory import Load

            asker = Load(stack.gateway_url)
            while not stop.is_set():
                asker.ask("canary")

        threading.Thread(target=load, daemon=True).start()
        try:
            for trial in range(trials):
                name = f"fail-{trial}"
                body = lane_release(name)
                body["spec"]["analysis"] = {**body["spec"]["analysis"], "interval": "2s",
                                            "threshold": 2}
                story.run_kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(body))
                for command in change_commands(f"{trial + 3}.0", "mockc"):
                    words = command.removeprefix("kubectl ").split(" -p ")
                    story.run_kubectl(*words[0].split(), *(["-p", words[1]] if len(words) > 1
                                                            else []), "-n", "default")

                def status() -> dict:
                    return story.release_body(name).get("status") or {}

                def routed() -> int:
                    vs = custom.get_namespaced_custom_object(
                        "networking.istio.io", "v1", "istio-system", "virtualservices",
                        "lanes-rollout-ingress")
                    return entered_weight(vs, "x-asm-prefer-tag", "canary")

                first = until(lambda: status().get("failedChecks", 0) >= 1, "the first failed check")
                zero = until(lambda: status().get("phase") == "RollingBack", "weight 0")
                routes = until(lambda: routed() == 0, "the gateway off the lane")
                undone = until(lambda: status().get("phase") == "Failed", "every rollout undone")
                found.append((zero - first, routes - first, undone - first))
                until(lambda: not story.canaries(), "the canaries gone")
        finally:
            stop.set()
            story.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="3,10,30")
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--skip-rollback", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with cluster(None) as kubeconfig, Operator(kubeconfig) as operator:
        api = config.new_client_from_config(kubeconfig)
        until(lambda: webhook_at(api, operator.webhook, operator.port), "the webhook registered")
        print("promote N services together (approve of the last step -> all on the new version)")
        for size in sizes:
            times = [promote(api, size) for _ in range(args.trials)]
            print(f"  N={size:>3}: median {statistics.median(times):.2f} s "
                  f"(runs: {', '.join(f'{t:.2f}' for t in times)})")
    if not args.skip_rollback:
        found = rollback(args.trials)
        print("failing lane: from the first failed check")
        for label, index in (("entry weight 0 in status", 0), ("gateway route off the lane", 1),
                             ("every rollout undone", 2)):
            values = [f[index] for f in found]
            print(f"  to {label}: median {statistics.median(values):.2f} s "
                  f"(runs: {', '.join(f'{v:.2f}' for v in values)})")
    sys.stdout.flush()


class Operator:
    """The operator process (lane, rollout and lane-release handlers, webhook) for a cluster."""

    def __init__(self, kubeconfig: str):
        self.kubeconfig = kubeconfig
        self.log = Path(tempfile.mkdtemp(prefix="lanes-bench-")) / "operator.log"

    def __enter__(self) -> Operator:
        self.process, self.port, self.webhook = operator_process(self.kubeconfig, self.log)
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(30)


if __name__ == "__main__":
    main()
