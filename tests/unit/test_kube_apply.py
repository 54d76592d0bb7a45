"""The order of one sync's writes: after each of them, every routed subset exists."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lanes.kube.apply import ordered_writes
from lanes.kube.diff import plan_changes
from lanes.render import object_key

LANES = ("base", "canary", "gray", "blue")
HOSTS = ("mocka", "mockb")


def dr(host: str, subsets) -> dict:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": f"lanes-{host}", "namespace": "default"},
        "spec": {
            "host": f"{host}.default.svc.cluster.local",
            "subsets": [{"name": s, "labels": {"ASM_TRAFFIC_TAG": s}} for s in subsets],
        },
    }


def vs(host: str, subsets, name: str | None = None) -> dict:
    fqdn = f"{host}.default.svc.cluster.local"
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name or f"lanes-{host}", "namespace": "default"},
        "spec": {
            "hosts": [fqdn],
            "http": [
                {"match": [{"headers": {"x-lane": {"exact": s}}}], "route": [{"destination": {"host": fqdn, "subset": s}}]}
                for s in subsets
            ],
        },
    }


def objects(state: dict[str, frozenset[str]]) -> list[dict]:
    """A consistent set: per host its DestinationRule and VirtualService, and an ingress route
    to mocka's lanes."""
    found = []
    for host, subsets in state.items():
        found += [dr(host, sorted(subsets)), vs(host, sorted(subsets))]
    if "mocka" in state:
        found.append(vs("mocka", sorted(state["mocka"]), name="lanes-ingress"))
    return found


def dangling(live: dict[tuple, dict]) -> list[str]:
    """Routes naming a subset that the DestinationRule of their host lacks."""
    subsets = {
        o["spec"]["host"]: {s["name"] for s in o["spec"]["subsets"]}
        for o in live.values() if o["kind"] == "DestinationRule"
    }
    return [
        f"{o['metadata']['name']} -> {d['host']}/{d['subset']}"
        for o in live.values() if o["kind"] == "VirtualService"
        for route in o["spec"]["http"] for d in (r["destination"] for r in route["route"])
        if d["subset"] not in subsets.get(d["host"], set())
    ]


def replay(before: list[dict], after: list[dict]) -> list[list[str]]:
    """Carry out one sync's writes on `before`; what dangles after each write."""
    live = {object_key(o): o for o in before}
    writes, deletes = ordered_writes(plan_changes(after, live.values()), live)
    seen = []
    for obj in writes:
        live[object_key(obj)] = obj
        seen.append(dangling(live))
    for obj in deletes:
        del live[object_key(obj)]
        seen.append(dangling(live))
    assert sorted(live) == sorted(object_key(o) for o in after)
    for obj in after:
        assert live[object_key(obj)]["spec"] == obj["spec"]
    return seen


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param({"mocka": {"base"}}, {"mocka": {"base", "canary"}}, id="subset-added"),
        pytest.param({"mocka": {"base", "canary"}}, {"mocka": {"base"}}, id="subset-removed"),
        pytest.param({"mocka": {"base", "canary"}}, {"mocka": {"base", "gray"}}, id="subset-replaced"),
        pytest.param({"mocka": {"base"}}, {"mocka": {"base"}, "mockb": {"base", "canary"}}, id="service-added"),
        pytest.param({"mocka": {"base"}, "mockb": {"base", "canary"}}, {"mocka": {"base"}}, id="service-removed"),
    ],
)
def test_no_write_leaves_a_route_to_a_missing_subset(before, after) -> None:
    steps = replay(objects(before), objects(after))
    assert steps and all(left == [] for left in steps)


def test_a_replaced_subset_is_added_before_the_routes_and_dropped_after() -> None:
    live = {object_key(o): o for o in objects({"mocka": {"base", "canary"}})}
    writes, _ = ordered_writes(plan_changes(objects({"mocka": {"base", "gray"}}), live.values()), live)
    shape = [(o["kind"], o["metadata"]["name"], sorted(s["name"] for s in o["spec"].get("subsets", []))) for o in writes]
    assert shape[0] == ("DestinationRule", "lanes-mocka", ["base", "canary", "gray"])
    assert shape[-1] == ("DestinationRule", "lanes-mocka", ["base", "gray"])
    assert {kind for kind, _, _ in shape[1:-1]} == {"VirtualService"}


states = st.dictionaries(
    st.sampled_from(HOSTS),
    st.frozensets(st.sampled_from(LANES), min_size=1),
    min_size=1,
)


@given(before=states, after=states)
def test_every_state_between_two_writes_routes_only_to_existing_subsets(before, after) -> None:
    assert all(left == [] for left in replay(objects(before), objects(after)))
