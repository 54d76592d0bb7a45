"""The mock-chain story on the real stack: every chain of every state, and U.

Each test starts a whole stack of its own (control plane, operator with its webhook, local node
running each pod with a sidecar, a local istiod watching the API server), applies the sample,
and drives the story as a user
would: `kubectl apply`, `kubectl set image`, `kubectl lane approve|undo`. Chains are real
requests through the gateway; subsets are read back from the API server.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from kubernetes import client
from typer.testing import CliRunner

from lanes_testbed.cli.livestory import LiveSource
from lanes.cli.main import app
from lanes_testbed.cli.story import LIVE_STORY, steps
from lanes_testbed.stack import Stack

from .chain import ROUTED_FLAVOURS

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "mock-chain"


def processes_mentioning(text: str) -> list[str]:
    """Processes whose command line or environment contains `text`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            blob = (proc / "cmdline").read_bytes() + b"\0" + (proc / "environ").read_bytes()
        except OSError:
            continue
        if text.encode() in blob:
            command = blob.split(b"\0\0", 1)[0].replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{proc.name}: {command[:160]}")
    return found


def fallbacks(api: client.ApiClient) -> int:
    """How many HTTP route destinations of the live VirtualServices carry ASM's `fallback`."""
    items = client.CustomObjectsApi(api).list_cluster_custom_object(
        "networking.istio.io", "v1", "virtualservices"
    )["items"]
    return sum(
        "fallback" in destination
        for vs in items
        for route in vs["spec"].get("http") or []
        for destination in route.get("route") or []
    )


@pytest.mark.parametrize("flavour", ROUTED_FLAVOURS)
def test_every_chain_of_every_state_through_the_real_stack(tmp_path: Path, flavour: str) -> None:
    state_dir = tmp_path / "stack"
    started = time.monotonic()
    with Stack(state_dir, flavour=flavour, gateway_port=0) as stack:
        xds = stack.mesh.xds_address
        up = time.monotonic() - started
        source = LiveSource(stack.kubeconfig, stack.plane.binaries.kubectl, stack.gateway_url,
                            SAMPLE, flavour=flavour, timeout=60)
        mismatches: list[str] = []
        timings: list[str] = []
        try:
            for state, seen, checks in steps(source, LIVE_STORY):
                timings.append(f"{state.key} {seen.elapsed:.1f}s")
                mismatches += [
                    f"state {state.key} (from {state.after}) {c.what}: {c.seen!r}, story: {c.expected!r}"
                    for c in checks if not c.ok
                ]
                if state.key == "1":
                    assert fallbacks(stack.api) == 0
        finally:
            source.close()
        print(f"{flavour}: stack up in {up:.1f}s; states {' · '.join(timings)}; "
              f"{source.requests} requests")
        assert not mismatches, "\n".join(mismatches)
        assert len(timings) == len(LIVE_STORY)
    assert processes_mentioning(str(state_dir)) == []
    assert processes_mentioning(xds) == []


def test_the_demo_command_walks_the_story_and_leaves_nothing_running() -> None:
    before = set(processes_mentioning("lanes-demo-"))
    result = CliRunner().invoke(app, ["demo", "--gateway-port", "0", "--timeout", "60"])
    assert result.exit_code == 0, result.output
    for state in LIVE_STORY:
        assert f"state {state.key}" in result.output
    assert "$ kubectl lane undo rollout/rollouts-mocka" in result.output
    assert "workloadrollout/rollouts-mockb: step 1/1 approved; the rollout promotes" in result.output
    assert "MISMATCH" not in result.output
    assert "all 21 checks match the story" in result.output
    assert set(processes_mentioning("lanes-demo-")) <= before
