"""A VirtualService or DestinationRule lanes did not generate, routing a group service, is named
in the group's status rather than silently fought."""

from __future__ import annotations

import dataclasses

from lanes.kube.ownership import foreign_routes
from lanes.operator.conditions import group_status
from lanes.operator.plan import plan_group
from lanes.render import render_group
from lanes.importers import load
from tests.conftest import ROOT

from .test_operator_plan import NOW, conditions_by_type, inputs

KEYS = ["default/mocka", "shop/cart"]


def route(kind: str, namespace: str, name: str, hosts: list[str], labels: dict | None = None) -> dict:
    spec = {"hosts": hosts} if kind == "VirtualService" else {"host": hosts[0]}
    return {"kind": kind, "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "spec": spec}


def test_a_users_route_for_a_group_service_is_named_with_its_host() -> None:
    objects = [
        route("VirtualService", "default", "mocka-retries", ["mocka"]),
        route("DestinationRule", "shop", "cart-tls", ["cart.shop.svc.cluster.local"]),
        route("VirtualService", "istio-system", "public", ["app.example.com"]),
        route("DestinationRule", "other", "mocka-elsewhere", ["mocka"]),
    ]
    assert foreign_routes(KEYS, objects) == [
        "DestinationRule shop/cart-tls (cart.shop.svc.cluster.local)",
        "VirtualService default/mocka-retries (mocka)",
    ]


def test_the_routes_lanes_generated_are_not_foreign() -> None:
    bundle = load(ROOT / "samples" / "mock-chain" / "lanes.yaml")
    generated = render_group(bundle.groups[0], bundle.lanes)
    assert foreign_routes([s.key for s in bundle.groups[0].spec.services], generated) == []


def test_the_group_status_names_the_foreign_routes() -> None:
    found = ["VirtualService default/mocka-retries (mocka)"]
    plan = plan_group(dataclasses.replace(inputs(), foreign=found))
    degraded = conditions_by_type(group_status(plan, None, NOW, generated=7))["Degraded"]
    assert (degraded["status"], degraded["reason"]) == ("True", "ForeignRoutes")
    assert "VirtualService default/mocka-retries (mocka)" in degraded["message"]
    assert "spec" not in degraded["message"] and "trafficPolicy" in degraded["message"]
