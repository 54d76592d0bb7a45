"""The release metrics as Prometheus scrapes them: `/metrics` of an in-process operator while a
lane release of three rollouts runs on the real control plane, then after it is undone."""

from __future__ import annotations

import urllib.request
import uuid

import kopf
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from lanes.cli.main import app
from lanes.operator.runtime import Options
from lanes.operator.webhook import WebhookOptions
from lanes_testbed.inprocess import OperatorThread
from lanes_testbed.processes import free_port

from .lane_support import SERVICES, lane_story, release_status, routed  # noqa: F401 (lane_story is a fixture)
from .rollout_support import wait_for_webhook
from .test_lanerelease import create_release

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def operator(control_plane, kube_api):
    """The lane story's operator, serving `/metrics` on a free loopback port."""
    webhook = WebhookOptions(port=free_port(), config_name=f"rm-{uuid.uuid4().hex[:6]}.lanes.dev")
    options = Options(kubeconfig=str(control_plane.kubeconfig), metrics_port=0, metrics_host="127.0.0.1")
    with OperatorThread(options, memo=kopf.Memo(webhook_options=webhook)) as running:
        wait_for_webhook(kube_api, webhook.config_name, webhook.port)
        yield running


def scrape(operator) -> dict[tuple[str, frozenset], float]:
    server = operator.operator.metrics_server
    assert server is not None
    text = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5).read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scraped_when(operator, metric: str, value: float, labels: dict[str, str]):
    """A scrape in which sample `metric` with `labels` has `value`; None until one has."""
    samples = scrape(operator)
    return samples if sample(samples, metric, labels) == value else None


def sample(samples, metric: str, labels: dict[str, str]) -> float | None:
    return samples.get((metric, frozenset(labels.items())))


def test_metrics_follow_a_lane_release_to_its_roll_back(control_plane, kube_api, namespace, operator,
                                                        lane_story) -> None:
    story, cluster, _ = lane_story
    lane = story.lane("canary")
    create_release(kube_api, namespace, lane, [{"weight": 50, "pause": {}}])
    cluster.until(lambda: routed(kube_api, story) == 50, "entry weight 50 at the gateway")
    release = {"kind": "LaneRelease", "namespace": namespace, "name": "seed"}
    samples = cluster.until(lambda: scraped_when(operator, "lanes_release_weight", 50, release),
                            "entry weight 50 in /metrics")
    phase = release_status(kube_api, namespace)["phase"]
    assert sample(samples, "lanes_release_info", {**release, "phase": phase, "lane": lane}) == 1
    assert sample(samples, "lanes_release_step", release) == 1
    assert sample(samples, "lanes_release_steps", release) == 1
    for service in SERVICES:
        member = {"kind": "WorkloadRollout", "namespace": namespace, "name": f"rollouts-{service}"}
        assert sample(samples, "lanes_release_step", member) is not None

    undone = CliRunner().invoke(app, ["undo", "lanerelease/seed", "-n", namespace,
                                      "--kubeconfig", str(control_plane.kubeconfig)])
    assert undone.exit_code == 0, undone.output
    cluster.until(lambda: release_status(kube_api, namespace).get("phase") == "Failed", "the lane rolled back",
                  timeout=90)
    rolled_back = {**release, "outcome": "rolled_back", "reason": "UndoRequested"}
    samples = cluster.until(lambda: scraped_when(operator, "lanes_release_outcomes_total", 1, rolled_back),
                            "the roll back counted once in /metrics")
    assert sample(samples, "lanes_release_weight", release) == 0
    assert sample(samples, "lanes_release_info", {**release, "phase": "Failed", "lane": lane}) == 1
