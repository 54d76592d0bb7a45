"""Two operator processes serve the trace-affinity module themselves, as the chart runs them:
the leader's WasmPlugins fetch it from the operator, with the sha256 of the bytes served there.
"""

from __future__ import annotations

import hashlib

import httpx
import pytest

from lanes_testbed.processes import free_port
from lanes_testbed.wasm import ensure_trace_affinity
from lanes.operator.modules import served_url
from lanes_testbed.inprocess import eventually

from .operator_support import enter_state, live_generated
from .rollout_support import OperatorProcess

pytestmark = pytest.mark.integration

TIMINGS = ("--lease-duration", "4", "--renew-deadline", "3", "--retry-period", "0.5")


def fetch(url: str) -> bytes | None:
    try:
        answer = httpx.get(url, timeout=10, trust_env=False)
    except httpx.TransportError:
        return None  # not listening yet
    return answer.content if answer.status_code == 200 else None


@pytest.fixture
def operator(control_plane, namespace, tmp_path):
    """Two replicas electing a leader, each serving the built module on a port of its own."""
    module = ensure_trace_affinity(progress=None)
    replicas = []
    for name in ("a", "b"):
        port = free_port()
        replica = OperatorProcess(
            control_plane.kubeconfig, f"{name}.served-module.lanes.dev", tmp_path / f"{name}.log",
            env={"POD_NAME": name, "POD_NAMESPACE": namespace, "LANES_WEBHOOK": "off",
                 "LANES_TRACE_AFFINITY_MODULE": str(module)},
            args=("--leader-elect", "--lease-name", "served-module", *TIMINGS,
                  "--metrics-host", "127.0.0.1", "--trace-affinity-port", str(port),
                  "--trace-affinity-host", "127.0.0.1"),
        )
        replica.module_url = served_url("127.0.0.1", port)
        replicas.append(replica)
    try:
        for replica in replicas:
            replica.start()
        yield replicas
    finally:
        for replica in replicas:
            replica.terminate()


def test_wasmplugins_fetch_the_module_every_replica_serves(operator, stories, kube_api) -> None:
    # A process's start takes long on a loaded machine: Python, kopf, then the module served.
    served = {r.module_url: eventually(lambda r=r: fetch(r.module_url),
                                       f"the module served at {r.module_url}", timeout=120)
              for r in operator}
    built = ensure_trace_affinity(progress=None).read_bytes()
    assert set(served.values()) == {built}

    story = stories.create("istio")
    enter_state(kube_api, story, "1")

    def three_plugins() -> list[dict] | None:
        found = [o for o in live_generated(kube_api, story.name) if o["kind"] == "WasmPlugin"]
        return found if len(found) == 3 else None  # the gateway's, and one per lane

    plugins = eventually(three_plugins, "the group's WasmPlugins", timeout=90)
    [url] = {p["spec"]["url"] for p in plugins}
    [sha256] = {p["spec"]["sha256"] for p in plugins}
    assert url in served  # the leader's own address
    assert sha256 == hashlib.sha256(fetch(url)).hexdigest()
    # Behind one Service, a proxy may reach either replica; the standby's bytes verify as well.
    for other in set(served) - {url}:
        assert hashlib.sha256(fetch(other)).hexdigest() == sha256
