"""Sticky lane entry on the real stack: each user enters the lane, or not, for a whole step.

A LaneRelease with `sessionAffinity: {headerName: x-user-id, withoutKey: Base}` steps its entry
weight 20% -> 50%, each step waiting for approval. The gateway's module (loaded by the
sticky-entry WasmPlugin the operator writes) hashes each user's key; at each step every one of
300 users asks twice, every answer's chain is read (all v1: base; all v2: the lane), and:

- no user sees both versions within the step, and no chain mixes versions;
- the share of users in the lane matches the weight. The users' names are fixed, so the share
  is fixed too, but it is a sample of the hash's spread: it is held to the binomial tolerance
  of `share_ok` (4 standard deviations, at 300 users about 9 points at 20% and 11 at 50%);
- a user in the lane at 20% is still in it at 50% (raising the weight only adds users);
- requests without the key stay in base.
"""

from __future__ import annotations

import http.client
import io
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from rich.console import Console

from lanes.cli.intents import request
from lanes_testbed.cli.lanestory import LaneStory, change_commands, chain_versions, share_ok
from lanes_testbed.cli.livestory import NAMESPACE, TRACE_HEADER
from lanes_testbed.cli.story import PATH
from lanes_testbed.proxyconfig import config_dump
from lanes_testbed.stack import Stack

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "mock-chain"
RELEASE = "sticky"
USER_HEADER = "x-user-id"
USERS = [f"user-{n}" for n in range(300)]
WEIGHTS = (20, 50)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("sticky") / "stack", gateway_port=0) as running:
        yield running


def _release() -> dict:
    return {
        "apiVersion": "lanes.dev/v1alpha1", "kind": "LaneRelease",
        "metadata": {"name": RELEASE, "namespace": NAMESPACE},
        "spec": {"swimLaneRef": {"name": "canary"}, "steps": [{"weight": w} for w in WEIGHTS],
                 "sessionAffinity": {"headerName": USER_HEADER, "withoutKey": "Base"},
                 "routeSettle": "1s"},
    }


class Client:
    """GETs through the gateway, each with a trace value of its own (the sample app passes on
    only that, and the mesh keeps the request's lane by it)."""

    def __init__(self, gateway_url: str) -> None:
        where = urlsplit(gateway_url)
        self.host, self.port = where.hostname or "127.0.0.1", where.port or 80
        self.sent = 0

    def versions(self, user: str | None) -> str:
        """The chain's one version (`v1`, `v2`), or what went wrong."""
        self.sent += 1
        headers = {TRACE_HEADER: f"sticky-{self.sent}"}
        if user is not None:
            headers[USER_HEADER] = user
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            connection.request("GET", PATH, headers=headers)
            response = connection.getresponse()
            body = response.read().decode(errors="replace")
        finally:
            connection.close()
        if response.status != 200:
            return f"HTTP {response.status}: {body.strip()[:80]}"
        found = set(chain_versions(body))
        return found.pop() if len(found) == 1 else f"mixed {sorted(found)}"


def _entry_weights(admin: str) -> set[int]:
    """The entry weights of the sticky-entry filters the gateway runs, from its config dump."""
    found: set[int] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str) and '"entryLane"' in node:
            found.add(json.loads(node).get("entryWeight"))

    walk(config_dump(admin))
    return found


def test_each_user_stays_on_one_side_and_user_shares_fit_the_weights(stack: Stack) -> None:
    out = io.StringIO()
    story = LaneStory(stack.kubeconfig, stack.plane.binaries.kubectl, stack.gateway_url, SAMPLE,
                      Console(file=out, width=200), timeout=180)
    assert stack.mesh is not None
    admin = stack.mesh.gateway_admin_url.removeprefix("http://")
    gateway = Client(stack.gateway_url)
    try:
        story.setup()
        story.run_kubectl("apply", "--server-side", "--field-manager=kubectl", "-f", "-",
                          input=yaml.safe_dump(_release()))
        for command in change_commands("2.0"):
            words = command.removeprefix("kubectl ").split()
            story.run_kubectl(*words, "-n", NAMESPACE)
        entered_before: set[str] = set()
        for index, weight in enumerate(WEIGHTS, start=1):
            def at_step(index: int = index, weight: int = weight) -> bool:
                status = story.release_body(RELEASE).get("status") or {}
                return (status.get("currentStepIndex") == index and status.get("weight") == weight
                        and "waiting for approve" in (status.get("message") or ""))

            story.wait(at_step, f"step {index} at entry {weight}%")
            story.wait(lambda weight=weight: _entry_weights(admin) == {weight},
                       f"the gateway's module to enter {weight}% of users")
            seen: dict[str, set[str]] = {user: set() for user in USERS}
            for _ in range(2):
                for user in USERS:
                    seen[user].add(gateway.versions(user))
            wrong = {u: v for u, v in seen.items() if len(v) != 1 or not v <= {"v1", "v2"}}
            assert wrong == {}, f"entry {weight}%: users who saw both or failed: {wrong}"
            entered = {u for u, v in seen.items() if v == {"v2"}}
            ok, share = share_ok(weight, len(entered), len(USERS))
            assert ok, f"entry {weight}%: {share:.1%} of {len(USERS)} users entered the lane"
            assert entered_before <= entered, (
                f"entry {weight}%: users left the lane: {sorted(entered_before - entered)}")
            keyless = {gateway.versions(None) for _ in range(20)}
            assert keyless == {"v1"}, f"entry {weight}%: requests without the key: {keyless}"
            print(f"entry {weight}%: {len(entered)}/{len(USERS)} users ({share:.1%}) in the lane")
            entered_before = entered
            request("approve", f"lanerelease/{RELEASE}", NAMESPACE, str(stack.kubeconfig), None)

        def succeeded() -> bool:
            return (story.release_body(RELEASE).get("status") or {}).get("phase") == "Succeeded"

        story.wait(succeeded, "the release to be promoted")
        story.wait(lambda: _entry_weights(admin) == set(), "the sticky-entry filter to be removed")
        assert {gateway.versions(user) for user in USERS[:20]} == {"v2"}
    finally:
        story.close()
