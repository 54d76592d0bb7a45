"""The strict sample on the real stack, driven with kubectl as a user would.

A stack of its own (control plane, operator, local node running the nine pods as processes,
each with a sidecar the local istiod configures): apply samples/strict/, walk each lane end to end, then
take a lane's pod of one service away and back. The pods pass on no header.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from lanes_testbed.istioctl import analyze, ensure_istioctl, unexpected
from lanes_testbed.stack import Stack

from .chain import CHAIN, HOP, ROUTED_FLAVOURS, get, until

STRICT = Path(__file__).resolve().parents[2] / "samples" / "strict"
LANES = {"s1": "v1", "s2": "v2", "s3": "v3"}



SEEN: list[tuple[str, int, list[tuple[str, str]]]] = []


def hops(stack: Stack, lane: str) -> tuple[int, list[tuple[str, str]]]:
    """One request in `lane`: status and the (app, version) of each hop; every answer is kept."""
    status, body = get(stack.gateway_url, "/mock", {"x-asm-prefer-tag": lane})
    found = [(app, version) for app, version, _ in HOP.findall(body)]
    SEEN.append((lane, status, found))
    return status, found


def other_versions() -> list[tuple[str, int, list[tuple[str, str]]]]:
    """Answers in which some hop was served by another lane's version."""
    return [seen for seen in SEEN if any(version != LANES[seen[0]] for _, version in seen[2])]


def in_lane(stack: Stack, lane: str) -> bool:
    return hops(stack, lane) == (200, [(service, LANES[lane]) for service in CHAIN])


@pytest.mark.parametrize("flavour", ROUTED_FLAVOURS)
def test_strict_lanes_through_the_real_stack(tmp_path: Path, flavour: str) -> None:
    SEEN.clear()
    with Stack(tmp_path / "stack", flavour=flavour, gateway_port=0) as stack:

        def kubectl(*args: str) -> str:
            argv = [str(stack.plane.binaries.kubectl), f"--kubeconfig={stack.kubeconfig}", *args]
            result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
            return result.stdout

        lanes = tmp_path / "lanes.yaml"
        documents = list(yaml.safe_load_all((STRICT / "lanes.yaml").read_text()))
        documents[0]["spec"]["flavour"] = flavour
        lanes.write_text(yaml.safe_dump_all(documents))
        kubectl("apply", "-f", str(STRICT / "app.yaml"), "-f", str(lanes))
        kubectl("wait", "--for=condition=Ready", "swimlanegroup/mock", "--timeout=60s")
        for lane in LANES:
            until(lambda: in_lane(stack, lane), f"lane {lane} served end to end by its version")
        if flavour == "istio":
            left = [m for m in unexpected(analyze(ensure_istioctl(), kubeconfig=stack.kubeconfig))
                    if "default" in str(m) or "istio-system" in str(m)]
            assert left == [], "\n".join(map(str, left))

        kubectl("scale", "deployment/mockb-v2", "--replicas=0")
        until(lambda: hops(stack, "s2") == (502, [("mocka", "v2")]),
              "s2 answering 502 from mocka v2 while s2 has no mockb")
        for lane in ("s1", "s3"):
            until(lambda: in_lane(stack, lane), f"lane {lane} still served end to end", 15)
        group = json.loads(kubectl("get", "swimlanegroup/mock", "-o", "json"))
        members = {m["name"]: m["services"] for m in group["status"]["lanes"]}
        assert members["s2"] == ["default/mocka", "default/mockc"], members

        kubectl("scale", "deployment/mockb-v2", "--replicas=1")
        until(lambda: in_lane(stack, "s2"), "s2 back end to end once mockb v2 is ready")
        assert other_versions() == [], "a request was served outside its lane"
