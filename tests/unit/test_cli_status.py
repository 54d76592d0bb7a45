"""`kubectl lane status` formatting, from live-shaped objects, without a cluster."""

from __future__ import annotations

import json

import pytest
import yaml
from rich.console import Console

from lanes.api.observations import Observations
from lanes.cli.status import format_group, format_groups, group_view, views_to_json
from lanes.importers import convert_document, parse_object
from lanes.render import render_group
from tests.conftest import REFERENCE

DOCS = [convert_document(d) for d in yaml.safe_load_all((REFERENCE / "asm-mock-chain-inputs.yaml").read_text()) if d]
GROUP = next(d for d in DOCS if d["kind"] == "SwimLaneGroup")
LANES = [d for d in DOCS if d["kind"] == "SwimLane"]
STATE_1 = {"default/mocka": ["base", "canary"], "default/mockb": ["base"], "default/mockc": ["base"]}


def live_group(status: dict | None) -> dict:
    return {**GROUP, "status": status} if status is not None else GROUP


def generated(ready: dict, flavour: str = "istio") -> list[dict]:
    return render_group(
        parse_object(GROUP), [parse_object(l) for l in LANES], Observations(ready=ready), flavour=flavour
    )


def reconciled_status(ready: dict) -> dict:
    lanes: dict[str, list[str]] = {}
    for service, names in ready.items():
        for name in names:
            lanes.setdefault(name, []).append(service)
    return {
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "RoutesInForce", "message": "7 generated objects in force"},
            {"type": "Degraded", "status": "False", "reason": "AsExpected", "message": ""},
        ],
        "lanes": [{"name": n, "services": s} for n, s in sorted(lanes.items())],
    }


def text(renderable) -> str:
    console = Console(record=True, width=160, color_system=None)
    console.print(renderable)
    return console.export_text()


@pytest.mark.parametrize("flavour", ["istio", "asm"])
def test_routes_follow_the_live_destination_rules(flavour: str) -> None:
    view = group_view(live_group(reconciled_status(STATE_1)), LANES, generated(STATE_1, flavour))
    base, canary = view.lanes
    assert base.fallback and not canary.fallback
    assert [(r.service, r.has_pods, r.served_by) for r in canary.services] == [
        ("default/mocka", True, "canary"),
        ("default/mockb", False, "base"),
        ("default/mockc", False, "base"),
    ]
    assert all(r.served_by == "base" and r.has_pods for r in base.services)
    assert view.ready == "True" and view.generated == len(generated(STATE_1, flavour))


def test_tree_shows_lanes_services_pods_and_routes() -> None:
    view = group_view(live_group(reconciled_status(STATE_1)), LANES, generated(STATE_1))
    out = text(format_group(view))
    assert "rollout  Ready=True (RoutesInForce: 7 generated objects in force)" in out
    assert "lane base (fallback)  pods: ASM_TRAFFIC_TAG=base" in out
    assert "default/mocka  ● pods  -> subset canary" in out
    assert "default/mockb  ○ no pods  -> falls back to base" in out
    assert "enters by uri exact /mock & x-asm-prefer-tag exact canary -> mocka.default.svc.cluster.local" in out


def test_a_group_not_yet_reconciled() -> None:
    view = group_view(live_group(None), LANES, [])
    assert (view.ready, view.reason) == ("Unknown", "NotReconciled")
    out = text(format_group(view))
    assert "-> no route in force" in out and "○ no pods" in out


def test_degraded_groups_show_the_problem() -> None:
    status = reconciled_status(STATE_1)
    status["conditions"][1] = {"type": "Degraded", "status": "True", "reason": "FieldsPruned", "message": "fallback dropped"}
    out = text(format_group(group_view(live_group(status), LANES, generated(STATE_1))))
    assert "degraded: fallback dropped" in out


def test_lanes_of_other_groups_are_not_shown() -> None:
    other = {**LANES[1], "metadata": {"name": "x", "labels": {"swimlane-group": "other"}}}
    view = group_view(live_group(None), [*LANES, other], [])
    assert [l.name for l in view.lanes] == ["base", "canary"]


def test_json_and_empty_output() -> None:
    view = group_view(live_group(reconciled_status(STATE_1)), LANES, generated(STATE_1))
    data = json.loads(views_to_json([view]))
    assert data[0]["lanes"][1]["services"][0] == {"service": "default/mocka", "has_pods": True, "served_by": "canary"}
    assert "no lane groups" in text(format_groups([]))
