"""The ASM mock-chain manifests applied verbatim on the real stack, the peer switch on.

The stack's operator runs with `--serve-peers`: the ASMSwimLaneGroup, the ASMSwimLanes and
Kruise's Rollouts of `asm-mock-chain-inputs.yaml` are applied as an ASM + Kruise user has them
(no conversion, no lanes.dev kind), and the story is walked as with lanes' own kinds: every
chain of every state through the gateway, the subsets read back, `kubectl lane approve|undo`
on the WorkloadRollouts served for the Rollouts. The Rollouts report in Kruise's layout.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from kubernetes import client

from lanes.importers.served import KRUISE_ROLLOUT_KIND, PEER_KINDS, SERVED_CONDITION
from lanes_testbed.cli.livestory import LiveSource
from lanes_testbed.cli.story import LIVE_STORY, steps
from lanes_testbed.stack import Stack

from .chain import INPUTS, until


def established(api: client.ApiClient) -> bool:
    """Whether every peer kind's CRD (installed by the operator) serves objects."""
    extensions = client.ApiextensionsV1Api(api)
    try:
        return all(
            any(c.type == "Established" and c.status == "True"
                for c in extensions.read_custom_resource_definition(k.crd_name).status.conditions or [])
            for k in PEER_KINDS
        )
    except client.exceptions.ApiException:
        return False


def kruise_rollouts(api: client.ApiClient) -> dict[str, dict]:
    items = client.CustomObjectsApi(api).list_namespaced_custom_object(
        KRUISE_ROLLOUT_KIND.group, KRUISE_ROLLOUT_KIND.version, "default", KRUISE_ROLLOUT_KIND.plural
    )["items"]
    return {item["metadata"]["name"]: item for item in items}


def test_the_asm_manifests_verbatim_route_and_serve_the_story(tmp_path: Path) -> None:
    sample = tmp_path / "asm-sample"
    sample.mkdir()
    shutil.copy(INPUTS, sample / INPUTS.name)
    started = time.monotonic()
    with Stack(tmp_path / "stack", gateway_port=0, serve_peers=True) as stack:
        assert stack.api is not None
        until(lambda: established(stack.api), "the operator to install the ASM and Kruise CRDs")
        source = LiveSource(stack.kubeconfig, stack.plane.binaries.kubectl, stack.gateway_url,
                            sample, timeout=90)
        mismatches: list[str] = []
        timings: list[str] = []
        try:
            for state, seen, checks in steps(source, LIVE_STORY):
                timings.append(f"{state.key} {seen.elapsed:.1f}s")
                mismatches += [
                    f"state {state.key} (from {state.after}) {c.what}: {c.seen!r}, story: {c.expected!r}"
                    for c in checks if not c.ok
                ]
                if state.key == "2":
                    peers = kruise_rollouts(stack.api)
                    for name in ("rollouts-mocka", "rollouts-mockb", "rollouts-mockc"):
                        status = peers[name].get("status") or {}
                        assert status.get("phase") == "Progressing", (name, status)
                        assert status.get("currentStepState") == "StepPaused", (name, status)
        finally:
            source.close()
        print(f"peers: states {' · '.join(timings)}; {source.requests} requests; "
              f"{time.monotonic() - started:.1f}s in all")
        assert not mismatches, "\n".join(mismatches)
        assert len(timings) == len(LIVE_STORY)
        for name, peer in kruise_rollouts(stack.api).items():
            conditions = {c["type"]: c for c in (peer.get("status") or {}).get("conditions") or []}
            assert conditions[SERVED_CONDITION]["status"] == "True", (name, conditions)
            assert peer["status"]["phase"] == "Healthy", (name, peer["status"])
