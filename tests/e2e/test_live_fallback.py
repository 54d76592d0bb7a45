"""ASM's custom-VirtualService guide on the real stack: the API server prunes `fallback`, and
what `kubectl lane convert` makes of the guide routes as ASM does.

A stack of its own (control plane with Istio's CRDs, operator, local node running the pods as
processes, each with a sidecar the local istiod configures). The pods are the strict sample's
three versions of mocka -> mockb -> mockc, passing on only the request id (ASM's trace-ID mode,
which the operator's trace-affinity module keeps the lane by); mocka v3, lane s3's, starts with
no replica. The guide's gateway route sends `env: dev` half to s2's subset of mocka and half to
s3's, with `fallback` to s1's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import yaml

from lanes.importers import convert
from lanes_testbed.stack import Stack
from tests.asm_scenarios import SCENARIOS, documents

from .chain import HOP, get, until

ROOT = Path(__file__).resolve().parents[2]
GUIDE = SCENARIOS / "custom-virtualservice.yaml"
ROUTE = "swimlane-ingress-vs-custom"


def app_documents() -> list[dict]:
    """The strict sample's Services and Deployments, the apps passing on only the request id
    (the mock app's default) and mocka v3 at no replica."""
    docs = [d for d in yaml.safe_load_all((ROOT / "samples" / "strict" / "app.yaml").read_text()) if d]
    for doc in docs:
        if doc["kind"] != "Deployment":
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            container["env"] = [e for e in container["env"] if e["name"] != "forward"]
        if doc["metadata"]["name"] == "mocka-v3":
            doc["spec"]["replicas"] = 0
    return docs


def dev_versions(stack: Stack, count: int) -> Counter[tuple]:
    """`count` requests of the guide's `env: dev`: how many came back with each (status, mocka's
    version, mockb's version)."""
    seen: Counter[tuple] = Counter()
    for n in range(count):
        status, body = get(stack.gateway_url, "/mock", {"env": "dev", "my-request-id": f"dev-{n}"})
        versions = [version for _, version, _ in HOP.findall(body)]
        seen[(status, *versions[:2])] += 1
    return seen


def test_the_guides_env_dev_requests_reach_the_fallback_once_converted(tmp_path: Path) -> None:
    with Stack(tmp_path / "stack", flavour="istio", gateway_port=0) as stack:

        def kubectl(*args: str, stdin: str | None = None) -> str:
            argv = [str(stack.plane.binaries.kubectl), f"--kubeconfig={stack.kubeconfig}", *args]
            result = subprocess.run(argv, capture_output=True, text=True, timeout=60, input=stdin)
            assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
            return result.stdout

        # As an ASM user has it on plain Istio: the lanes converted on their own (no sight of the
        # route), the route applied as written, which the API server stores without `fallback`.
        guide = documents("custom-virtualservice")
        lanes = [body for doc in guide if "alibabacloud" in doc["apiVersion"] for body in convert(doc)]
        route = next(doc for doc in guide if doc["kind"] == "VirtualService")
        kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all([*app_documents(), *lanes]))
        kubectl("apply", "--validate=false", "-f", "-", stdin=yaml.safe_dump(route))
        stored = json.loads(kubectl("get", "virtualservice", ROUTE, "-n", "istio-system", "-o", "json"))
        assert "fallback" not in stored["spec"]["http"][0]["route"][1], "Istio's schema keeps fallback"
        kubectl("wait", "--for=condition=Ready", "swimlanegroup/test", "--timeout=120s")
        until(lambda: dev_versions(stack, 10)[(200, "v2", "v2")], "s2's half served", timeout=120)
        pruned = dev_versions(stack, 40)
        assert pruned[(503,)] and pruned[(200, "v2", "v2")], pruned

        # `kubectl lane convert` over the guide, applied: the route without `fallback`, the group
        # with fallbackSubsets.
        plugin = Path(sys.executable).with_name("kubectl-lane")
        converted = subprocess.run([str(plugin), "convert", "-f", str(GUIDE)], capture_output=True,
                                   text=True, timeout=60, check=True).stdout
        kubectl("apply", "-f", "-", stdin=converted)
        until(lambda: not dev_versions(stack, 10)[(503,)], "no env: dev request failing", timeout=120)
        served = dev_versions(stack, 40)
        assert set(served) == {(200, "v2", "v2"), (200, "v1", "v3")}, served

        # s3's mocka pod comes: its subset selects it, and s3's requests reach it.
        kubectl("scale", "deployment/mocka-v3", "--replicas=1")
        until(lambda: dev_versions(stack, 10)[(200, "v3", "v3")], "s3's own mocka serving", timeout=120)
        served = dev_versions(stack, 40)
        assert set(served) == {(200, "v2", "v2"), (200, "v3", "v3")}, served
        print(f"env: dev, fallback pruned: {dict(pruned)}; converted: all served")
