"""The dashboard's cluster view against the real API server: it follows a release by watch,
and a user RBAC refuses sees the API server's words, for a kind it may not list and for a
button it may not press."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from kubernetes import client

from lanes.api.common import GROUP, VERSION
from lanes.cli.intents import Refused
from lanes.dashboard.cluster import ClusterView

pytestmark = pytest.mark.integration

WAITING = {"phase": "Progressing", "currentStepIndex": 1, "weight": 10, "stepPassed": True,
           "message": "step 1/2: approve to continue"}


def lane_release(name: str) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "LaneRelease",
            "metadata": {"name": name},
            "spec": {"swimLaneRef": {"name": "canary"},
                     "steps": [{"weight": 10}, {"weight": 50}]}}


@pytest.fixture
def release(kube_api: client.ApiClient, namespace: str) -> str:
    custom = client.CustomObjectsApi(kube_api)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "lanereleases",
                                           lane_release("lane-v2"))
    return "lane-v2"


def set_status(kube_api: client.ApiClient, namespace: str, name: str, status: dict) -> None:
    client.CustomObjectsApi(kube_api).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "lanereleases", name, {"status": status})


def card(view: ClusterView, namespace: str, name: str) -> dict | None:
    return next((r for r in view.snapshot()["releases"]
                 if (r["namespace"], r["name"]) == (namespace, name)), None)


def until(view: ClusterView, probe, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        seen = view.wait_change(seen, 1.0)
    raise AssertionError(f"waited {timeout:.0f}s for {what}: {view.snapshot()}")


@pytest.fixture
def admin_view(kube_api: client.ApiClient) -> Iterator[ClusterView]:
    view = ClusterView(kube_api).start()
    try:
        yield view
    finally:
        view.stop()


@pytest.fixture
def viewer(control_plane) -> Iterator[client.ApiClient]:
    """A user with no role at all, as the API server sees an impersonated one."""
    api = control_plane.api_client()
    api.set_default_header("Impersonate-User", "dashboard-viewer")
    try:
        yield api
    finally:
        api.close()


def test_the_view_follows_a_release_by_watch_and_grants_a_button(
    kube_api, admin_view: ClusterView, namespace: str, release: str
) -> None:
    until(admin_view, lambda: card(admin_view, namespace, release), "the release to be listed")
    set_status(kube_api, namespace, release, WAITING)
    moved = until(admin_view, lambda: (c := card(admin_view, namespace, release))
                  and c["weight"] == 10 and c, "the new status to arrive by watch")
    assert (moved["phase"], moved["step"], moved["weights"]) == ("Progressing", 1, [10, 50])
    message = admin_view.act("approve", "lanerelease", namespace, release)
    assert message.startswith(f"lanerelease/{release}: step 1 approved")
    annotations = client.CustomObjectsApi(kube_api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, "lanereleases", release)["metadata"]["annotations"]
    assert annotations["lanes.dev/approve"] == "1"


def test_a_verb_refused_in_its_state_says_why(admin_view: ClusterView, namespace: str,
                                              release: str) -> None:
    with pytest.raises(Refused, match="has no step waiting for approval"):
        admin_view.act("approve", "lanerelease", namespace, release)
    with pytest.raises(Refused, match="'retry' is not an action here"):
        admin_view.act("retry", "lanerelease", namespace, release)


def test_rbac_refusals_are_shown_in_the_api_servers_words(
    viewer: client.ApiClient, namespace: str, release: str
) -> None:
    view = ClusterView(viewer).start()
    try:
        problems = until(view, lambda: len(view.snapshot()["problems"]) == 5
                         and view.snapshot()["problems"], "every kind to be refused")
        assert all("403 Forbidden" in p and "dashboard-viewer" in p for p in problems), problems
        with pytest.raises(Refused) as refused:
            view.act("approve", "lanerelease", namespace, release)
        assert "403 Forbidden" in str(refused.value)
        assert 'User "dashboard-viewer" cannot get resource "lanereleases"' in str(refused.value)
    finally:
        view.stop()
