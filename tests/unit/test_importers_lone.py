"""A lone peer canary's generated group and lanes: the canary pods land in the canary lane, the
base's in the stable lane, and a release step splits untagged requests between them at the
gateway and in the mesh; `--strict` refuses what would otherwise be a note; a strict-mode lane
listing no services holds them all."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lanes.api.load import Document
from lanes.api.observations import Observations
from lanes.api.topology import validate
from lanes.api.workloadrollout import WorkloadRollout
from lanes.importers import parse_documents
from lanes.render import render_group
from lanes.render.observe import PodView
from lanes.rollout.traffic import traffic_steps
from tests.conftest import ROOT

from .test_cli import invoke

CASES = ROOT / "tests" / "testdata" / "importers"
TUTORIAL = CASES / "flagger-istio-tutorial" / "input.yaml"


def converted(path: Path) -> list[dict]:
    result = invoke("convert", "-f", path)
    assert result.exit_code == 0, result.output
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def pods_of(docs: list[dict], rollout: WorkloadRollout) -> list[PodView]:
    """A base pod from the converted Deployment, and a canary pod as the operator makes it."""
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    base = deployment["spec"]["template"]["metadata"]["labels"]
    patch = rollout.spec.strategy.canary.patch_pod_template_metadata
    canary = {**base, **patch.labels, "lanes.dev/canary": deployment["metadata"]["name"]}
    return [PodView("test", "podinfo-base", base, True), PodView("test", "podinfo-canary", canary, True)]


def test_a_release_step_of_a_lone_canary_splits_untagged_requests() -> None:
    docs = converted(TUTORIAL)
    bundle = parse_documents([Document(f"#{i}", d) for i, d in enumerate(docs)])
    [group], lanes, [rollout] = bundle.groups, bundle.lanes, bundle.rollouts
    assert validate(group, lanes) == []
    status = {"phase": "Progressing", "canaryStatus": {"currentStepIndex": 3,
                                                       "currentStepState": "StepPaused"}}
    releasing = WorkloadRollout.model_validate({**rollout.to_wire(), "status": status})
    services = {"test/podinfo": {"app": "podinfo"}}
    steps = traffic_steps(group, lanes, services, pods_of(docs, releasing), [releasing])
    assert {k: (s.lane, s.weight) for k, s in steps.items()} == {
        "test/podinfo": ("podinfo-test-canary", 30)}
    objects = render_group(group, lanes, Observations(traffic=steps))
    [entry] = [o for o in objects if o["metadata"]["name"].endswith("-ingress")]
    untagged = entry["spec"]["http"][-1]
    assert untagged["name"] == "untagged"
    assert [(r["destination"]["subset"], r["weight"]) for r in untagged["route"]] == [
        ("podinfo-test-stable", 70), ("podinfo-test-canary", 30)]
    [mesh] = [o for o in objects if o["kind"] == "VirtualService" and o["metadata"]["namespace"] == "test"]
    split = [r for r in mesh["spec"]["http"] if len(r["route"]) == 2]
    assert [[(d["destination"]["subset"], d["weight"]) for d in r["route"]] for r in split] == [
        [("podinfo-test-stable", 70), ("podinfo-test-canary", 30)]]


def test_the_base_and_canary_pods_are_told_apart() -> None:
    docs = converted(TUTORIAL)
    bundle = parse_documents([Document(f"#{i}", d) for i, d in enumerate(docs)])
    [rollout] = bundle.rollouts
    base, canary = pods_of(docs, rollout)
    selectors = {lane.name: lane.spec.label_selector for lane in bundle.lanes}
    selects = {name: [p.name for p in (base, canary)
                      if all(p.labels.get(k) == v for k, v in sel.items())]
               for name, sel in selectors.items()}
    assert selects == {"podinfo-test-stable": ["podinfo-base"],
                       "podinfo-test-canary": ["podinfo-canary"]}


def test_steps_ask_for_their_traffic_share_of_replicas() -> None:
    rollout = next(d for d in converted(TUTORIAL) if d["kind"] == "WorkloadRollout")
    steps = rollout["spec"]["strategy"]["canary"]["steps"]
    assert [(s["replicas"], s["traffic"]) for s in steps] == [(f"{w}%", f"{w}%") for w in (10, 20, 30, 40, 50)]


@pytest.mark.parametrize("case", ["flagger-istio-tutorial", "kruise-v1alpha1"])
def test_strict_refuses_wherever_a_note_would_be_written(case: str) -> None:
    path = CASES / case / "input.yaml"
    noted = invoke("convert", "-f", path)
    assert noted.exit_code == 0 and noted.stderr.startswith("note: ")
    strict = invoke("convert", "--strict", "-f", path)
    assert (strict.exit_code, strict.stdout) == (2, "")
    assert len(strict.stderr.splitlines()) == len(noted.stderr.splitlines())
    assert all(line.startswith("error: ") for line in strict.stderr.splitlines())


def test_strict_converts_what_needs_no_note() -> None:
    result = invoke("convert", "--strict", "-f", CASES / "asm-strict-lanes-without-services" / "input.yaml")
    assert result.exit_code == 0, result.output


def test_a_strict_lane_listing_no_services_holds_every_service() -> None:
    docs = converted(CASES / "asm-strict-lanes-without-services" / "input.yaml")
    bundle = parse_documents([Document(f"#{i}", d) for i, d in enumerate(docs)])
    [group] = bundle.groups
    assert validate(group, bundle.lanes) == []
    objects = render_group(group, bundle.lanes)
    rules = [o for o in objects if o["kind"] == "DestinationRule"]
    assert sorted(o["spec"]["host"] for o in rules) == ["cart.web.svc.cluster.local",
                                                       "front.web.svc.cluster.local"]
    assert all([s["name"] for s in o["spec"]["subsets"]] == ["base", "canary"] for o in rules)


def test_a_kruise_in_place_release_is_refused_with_the_equivalent() -> None:
    result = invoke("convert", "-f", CASES / "kruise-in-place-refused" / "input.yaml")
    assert result.exit_code == 2
    assert "spec.strategy.canary.enableExtraWorkloadForCanary: unset or false" in result.stderr
    assert "write enableExtraWorkloadForCanary: true" in result.stderr
