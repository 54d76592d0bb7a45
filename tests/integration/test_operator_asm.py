"""The ASM flavour on real API servers: with ASM's VirtualService schema, and with Istio's.

ASM's `fallback` is an extension of Istio's VirtualService that Istio's CRD does not declare,
so kube-apiserver prunes it. Two honest checks follow from that:
- on a control plane of its own whose VirtualService CRD is Istio's plus `fallback` (what
  ASM's control plane serves), the story's objects read back exactly as rendered, and state 0
  equals the reference `asm-mock-chain-expected.yaml` field for field;
- on the shared control plane with Istio's own CRDs, the operator stores what the schema keeps,
  says in status which fields are dropped, and does not fight the pruning with endless writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from lanes_testbed.binaries import ensure_binaries
from lanes_testbed.controlplane import ControlPlane
from lanes_testbed.manifests import manifest_files
from lanes_testbed.meshcrds import asm_extended
from lanes.kube.kinds import SWIMLANEGROUP
from lanes.kube.schema import prune, version_schema
from lanes.operator.runtime import Options
from lanes_testbed.inprocess import OperatorThread, eventually
from tests.conftest import ISTIO_NETWORKING_CRDS

from .operator_support import (
    REFERENCE,
    SUBSETS,
    build_story,
    create_story,
    enter_state,
    live_generated,
    matches,
)

pytestmark = pytest.mark.integration

PROJECT = Path(__file__).resolve().parents[2]


def istio_crds() -> list[dict]:
    """Istio's networking CRDs, unchanged from its release."""
    return [d for d in yaml.safe_load_all(ISTIO_NETWORKING_CRDS.read_text()) if d]


@pytest.fixture(scope="module")
def asm_plane(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config):
    """A control plane of its own, serving the ASM-extended VirtualService schema."""
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        binaries = ensure_binaries(progress=sys.stderr)
    state = tmp_path_factory.mktemp("asm-plane")
    crds = state / "asm-networking-crds.yaml"
    crds.write_text(yaml.safe_dump_all(asm_extended(istio_crds())))
    with ControlPlane(state / "plane", binaries, progress=None) as plane:
        plane.install_manifests([*manifest_files(PROJECT / "crds"), crds])
        yield plane


@pytest.fixture(scope="module")
def asm_api(asm_plane):
    api = asm_plane.api_client()
    yield api
    api.close()


def exact_story():
    """The reference inputs with their own names: group rollout, lanes base and canary, default."""
    return build_story("default", "asm", suffix=None)


def test_asm_story_reads_back_exactly_and_state_0_is_the_reference(asm_plane, asm_api) -> None:
    story = exact_story()
    reference = [d for d in yaml.safe_load_all((REFERENCE / "asm-mock-chain-expected.yaml").read_text()) if d]
    options = Options(kubeconfig=str(asm_plane.kubeconfig), metrics_port=None)
    with OperatorThread(options):
        create_story(asm_api, story)
        for state in "01234":
            enter_state(asm_api, story, state)
            expected = story.expected(state)
            eventually(lambda: matches(live_generated(asm_api, story.name), expected), f"ASM state {state}")
            live = live_generated(asm_api, story.name)
            subsets = {
                o["spec"]["host"].split(".")[0]: [s["name"] for s in o["spec"]["subsets"]]
                for o in live if o["kind"] == "DestinationRule"
            }
            assert subsets == SUBSETS[state]
            assert all(o["metadata"]["namespace"] == "istio-system" for o in live)
            if state == "0":
                assert matches(live, reference)
                fallbacks = [
                    r["fallback"] for o in live if o["kind"] == "VirtualService"
                    for h in o["spec"]["http"] for r in h["route"]
                ]
                assert fallbacks and all(f["target"]["subset"] == "base" for f in fallbacks)
        group = client.CustomObjectsApi(asm_api).get_cluster_custom_object(
            SWIMLANEGROUP.group, SWIMLANEGROUP.version, SWIMLANEGROUP.plural, story.name
        )
        degraded = next(c for c in group["status"]["conditions"] if c["type"] == "Degraded")
        assert degraded["status"] == "False"


@pytest.fixture(scope="module")
def operator(control_plane):
    with OperatorThread(Options(kubeconfig=str(control_plane.kubeconfig), metrics_port=None)) as running:
        yield running


def test_asm_flavour_on_istio_crds_reports_pruned_fallback(operator, stories, kube_api) -> None:
    story = stories.create("asm", state="1")
    schemas = {d["spec"]["names"]["kind"]: d for d in istio_crds()}
    kept = [prune(o, version_schema(schemas[o["kind"]], "v1alpha3")).value for o in story.expected("1")]
    eventually(lambda: matches(live_generated(kube_api, story.name), kept), "the pruned ASM objects")
    custom = client.CustomObjectsApi(kube_api)

    def degraded() -> dict | None:
        group = custom.get_cluster_custom_object(SWIMLANEGROUP.group, SWIMLANEGROUP.version, SWIMLANEGROUP.plural, story.name)
        found = {c["type"]: c for c in (group.get("status") or {}).get("conditions") or []}
        condition = found.get("Degraded")
        return found if condition and condition["reason"] == "FieldsPruned" else None

    conditions = eventually(degraded, "Degraded=FieldsPruned")
    assert conditions["Ready"]["status"] == "True"
    assert "spec.http[0].route[0].fallback" in conditions["Degraded"]["message"]
    operator.settle()
    before = operator.writes
    versions = {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in live_generated(kube_api, story.name)}
    operator.trigger(story.name, force=True)
    operator.settle()
    assert operator.writes == before
    assert versions == {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in live_generated(kube_api, story.name)}
