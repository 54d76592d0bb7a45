"""A service keeps its own traffic settings through a lane release, on the real stack.

The mock chain's group gives mockc the retries, timeout and outlier detection its own
VirtualService and DestinationRule would have had, and every mockc pod answers 500 to half of
its requests (the sample app's `fail_percent`). mockb's sidecar then retries a failed call to
mockc as configured: with 5 retries on 5xx about 1 request in 64 still fails, where without
them one in two does. Under untagged, base- and canary-tagged load a lane release takes the
whole chain to 2.0 and is promoted; whenever the test looks (every step, the promotion, the
end) every route lanes writes to mockc carries the retries and the timeout, its
DestinationRule the outlier detection, and the Envoy of every mockb pod holds them. Taken off
the group again, the settings leave the routes, and half of the requests fail.
"""

from __future__ import annotations

import copy
import io
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from rich.console import Console

from lanes_testbed.cli.analysisstory import Load
from lanes_testbed.cli.lanestory import LANE, LaneStory, change_commands, release_outcome
from lanes_testbed.cli.livestory import NAMESPACE, sample_documents
from lanes_testbed.proxyconfig import config_dump, sidecars
from lanes_testbed.stack import Stack

from .chain import until

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "mock-chain"
HOST = "mockc.default.svc.cluster.local"
RETRIES = {"attempts": 5, "perTryTimeout": "2s", "retryOn": "5xx"}
TIMEOUT = "10s"
TRAFFIC_POLICY = {"outlierDetection": {"consecutive5xxErrors": 50, "interval": "10s",
                                       "baseEjectionTime": "30s"}}
FAIL_PERCENT = "50"
RELEASE = "lane-settings"
STEPS = [{"weight": 20, "pause": {"duration": 5}}, {"weight": 50, "pause": {"duration": 5}}]


def settings_sample(directory: Path) -> Path:
    """The mock-chain sample with mockc's settings on the group and mockc failing half its
    requests from its first version on, written to `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    for document in sample_documents(SAMPLE, "istio"):
        document = copy.deepcopy(document)
        if document["kind"] == "SwimLaneGroup":
            [service] = [s for s in document["spec"]["services"] if s["name"] == "mockc"]
            service["http"] = {"retries": RETRIES, "timeout": TIMEOUT}
            service["trafficPolicy"] = TRAFFIC_POLICY
        if document["kind"] == "Deployment" and document["metadata"]["name"] == "mockc-v1":
            [container] = document["spec"]["template"]["spec"]["containers"]
            container["env"].append({"name": "fail_percent", "value": FAIL_PERCENT})
        name = f"{document['kind'].lower()}-{document['metadata']['name']}.yaml"
        (directory / name).write_text(yaml.safe_dump(document))
    return directory


def mockc_objects(api: client.ApiClient) -> tuple[list[dict], list[dict]]:
    """Every HTTP route of the namespace's VirtualServices sending only to mockc, and the
    DestinationRules of mockc."""
    custom = client.CustomObjectsApi(api)
    listed = {plural: custom.list_namespaced_custom_object(
        "networking.istio.io", "v1", NAMESPACE, plural)["items"]
        for plural in ("virtualservices", "destinationrules")}
    routes = [route for vs in listed["virtualservices"] for route in vs["spec"].get("http") or []
              if {d["destination"]["host"] for d in route.get("route") or []} == {HOST}]
    rules = [dr for dr in listed["destinationrules"] if dr["spec"]["host"] == HOST]
    return routes, rules


def carried(routes: list[dict], rules: list[dict]) -> list[str]:
    """What is missing from mockc's routes and DestinationRules; empty when all is there."""
    wrong = [f"route {r.get('name')}: {r.get('retries')}, timeout {r.get('timeout')}"
             for r in routes if r.get("retries") != RETRIES or r.get("timeout") != TIMEOUT]
    wrong += [f"DestinationRule {d['metadata']['name']}: {d['spec'].get('trafficPolicy')}"
              for d in rules if d["spec"].get("trafficPolicy") != TRAFFIC_POLICY]
    if not routes or not rules:
        wrong.append(f"{len(routes)} routes to mockc, {len(rules)} DestinationRules of it")
    return wrong


def envoy_settings(stack: Stack) -> list[tuple[str, Any, Any]]:
    """Per mockb pod's sidecar: its routes' retry policies to mockc and its mockc clusters'
    outlier detection, as Envoy holds them (a sidecar of a pod just stopped is skipped)."""
    seen = []
    for sidecar in sidecars(stack.sidecar_targets):
        if not sidecar["pod"].startswith("mockb"):
            continue
        try:
            dump = config_dump(sidecar["admin"])
        except OSError:
            continue
        retries, outliers = set(), set()
        for config in dump.get("configs", []):
            for entry in config.get("dynamic_route_configs", []):
                for vhost in entry.get("route_config", {}).get("virtual_hosts", []):
                    if not any(d.startswith(HOST) for d in vhost.get("domains", [])):
                        continue
                    for route in vhost.get("routes", []):
                        policy = (route.get("route") or {}).get("retry_policy") or {}
                        retries.add((policy.get("num_retries"), policy.get("retry_on"),
                                     (route.get("route") or {}).get("timeout")))
            for entry in config.get("dynamic_active_clusters", []):
                cluster = entry.get("cluster", {})
                if cluster.get("name", "").endswith(f"|{HOST}"):
                    outliers.add((cluster["name"].split("|")[2] or "-",
                                  (cluster.get("outlier_detection") or {}).get("consecutive_5xx")))
        seen.append((sidecar["pod"], sorted(retries, key=str), sorted(outliers)))
    return seen


def envoy_carries(stack: Stack) -> bool:
    """Every mockb sidecar that routes to mockc retries it 5 times on 5xx within 10 s and
    ejects a pod at 50 errors in a row (a sidecar still starting has no route to it yet)."""
    seen = [(retries, outliers) for _, retries, outliers in envoy_settings(stack) if retries]
    return bool(seen) and all(
        retries == [(5, "5xx", "10s")] and outliers and all(n == 50 for _, n in outliers)
        for retries, outliers in seen)


def failures(gateway_url: str, lane: str, count: int) -> float:
    """The share of `count` requests in `lane` that failed, sent one after another."""
    load = Load(gateway_url)
    return sum(load.ask(lane)[0] != 200 for _ in range(count)) / count


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("settings") / "stack", gateway_port=0) as running:
        yield running


def test_a_service_keeps_its_retries_timeout_and_outlier_detection_through_a_lane_release(
    stack: Stack, tmp_path: Path
) -> None:
    out = io.StringIO()
    story = LaneStory(stack.kubeconfig, stack.plane.binaries.kubectl, stack.gateway_url,
                      settings_sample(tmp_path / "sample"), Console(file=out, width=200), timeout=180)
    try:
        story.setup()
        assert carried(*mockc_objects(story.api)) == []
        until(lambda: envoy_carries(stack), "mockb's Envoy to hold mockc's settings", timeout=60)
        assert failures(stack.gateway_url, "base", 100) <= 0.15, "retried, 1 in 64 fails"

        release = {"apiVersion": "lanes.dev/v1alpha1", "kind": "LaneRelease",
                   "metadata": {"name": RELEASE, "namespace": NAMESPACE},
                   "spec": {"swimLaneRef": {"name": LANE}, "steps": STEPS, "routeSettle": "1s"}}
        with Load(stack.gateway_url) as load:
            story.run_kubectl("apply", "--server-side", "--field-manager=kubectl", "-f", "-",
                              input=yaml.safe_dump(release))
            for command in change_commands("2.0"):
                story.run_kubectl(*command.removeprefix("kubectl ").split(), "-n", NAMESPACE)
            looked = _watch(story, stack)
        assert {(20, "Progressing"), (50, "Progressing"), (100, "Promoting")} <= looked, looked
        tally = load.tally
        for lane in ("untagged", "base", "canary"):
            sent, failed = tally.sent.get(lane, 0), tally.errors.get(lane, 0)
            assert sent >= 50 and failed / sent <= 0.15, f"{lane}: {failed} of {sent} failed"

        story.run_kubectl("patch", "swimlanegroup/rollout", "--type=json", "-p",
                          '[{"op":"remove","path":"/spec/services/2/http"},'
                          '{"op":"remove","path":"/spec/services/2/trafficPolicy"}]')
        until(lambda: all(not r.get("retries") for r in mockc_objects(story.api)[0]),
              "the retries to leave mockc's routes")
        until(lambda: all(retries != [(5, "5xx", "10s")] for _, retries, _ in envoy_settings(stack)),
              "mockb's Envoy to drop the retries", timeout=60)
        assert failures(stack.gateway_url, "base", 100) >= 0.3, "not retried, 1 in 2 fails"
    finally:
        story.close()


def _watch(story: LaneStory, stack: Stack) -> set[tuple[int, str]]:
    """Poll the release to its end, checking mockc's objects and Envoys at every look; the
    (entry weight, phase) pairs looked at."""
    looked: set[tuple[int, str]] = set()
    deadline = time.monotonic() + story.timeout
    while time.monotonic() < deadline:
        body = story.release_body(RELEASE)
        status: Mapping[str, Any] = body.get("status") or {}
        assert carried(*mockc_objects(story.api)) == [], status
        if (status.get("weight", 0), status.get("phase")) not in looked:
            assert envoy_carries(stack), envoy_settings(stack)
        looked.add((status.get("weight", 0), str(status.get("phase"))))
        outcome = release_outcome(body)
        if outcome is not None:
            assert outcome == ("True", "Promoted"), status
            return looked
        time.sleep(0.5)
    raise AssertionError(f"{RELEASE} did not end in {story.timeout}s: {looked}")
