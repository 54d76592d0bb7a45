"""Deciding writes: zero when nothing changed, one when a field we own differs or goes stale."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lanes.kube.diff import (
    contains,
    essentials,
    field_paths,
    needs_write,
    owned_paths,
    plan_changes,
    stale_fields,
)


def dr(name: str = "lanes-rollout-mocka", subsets=("base",), namespace: str = "default", **extra) -> dict:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": name, "namespace": namespace, "labels": {"lanes.dev/group": "rollout"}},
        "spec": {
            "host": "mocka.default.svc.cluster.local",
            "subsets": [{"name": s, "labels": {"ASM_TRAFFIC_TAG": s}} for s in subsets],
            **extra,
        },
    }


def live_of(obj: dict, owned: dict | None = None, **metadata) -> dict:
    """`obj` as the server returns it: server metadata, and our managedFields entry."""
    live = copy.deepcopy(obj)
    live["apiVersion"] = "networking.istio.io/v1alpha3"
    live["metadata"].update(
        uid="u", resourceVersion="7", generation=1, creationTimestamp="2026-01-01T00:00:00Z", **metadata
    )
    fields = owned if owned is not None else {
        "f:metadata": {"f:labels": {"f:lanes.dev/group": {}}},
        "f:spec": {k_: {} for k_ in (f"f:{k}" for k in obj["spec"])},
    }
    live["metadata"]["managedFields"] = [
        {"manager": "lanes", "operation": "Apply", "apiVersion": "networking.istio.io/v1", "fieldsV1": fields},
        {"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:spec": {"f:other": {}}}},
    ]
    return live


@pytest.mark.parametrize(
    ("live", "desired", "expected"),
    [
        pytest.param({"a": 1, "b": 2}, {"a": 1}, True, id="extra-map-key-tolerated"),
        pytest.param({"a": 1}, {"a": 1, "b": 2}, False, id="missing-key"),
        pytest.param({"a": {"x": 1, "y": 2}}, {"a": {"x": 1}}, True, id="nested-extra"),
        pytest.param({"l": [1, 2]}, {"l": [1]}, False, id="list-longer"),
        pytest.param({"l": [{"a": 1, "b": 2}]}, {"l": [{"a": 1}]}, False, id="list-element-extra"),
        pytest.param({"l": [{"a": 1}]}, {"l": [{"a": 1}]}, True, id="list-equal"),
        pytest.param({"a": "1"}, {"a": 1}, False, id="type-differs"),
        pytest.param(None, {}, False, id="not-a-map"),
    ],
)
def test_contains(live, desired, expected) -> None:
    assert contains(live, desired) is expected


def test_essentials_keep_spec_labels_and_annotations_only() -> None:
    live = live_of(dr())
    live["metadata"]["annotations"] = {"a": "b"}
    live["status"] = {"x": 1}
    assert essentials(live) == {
        "spec": live["spec"],
        "metadata": {"labels": {"lanes.dev/group": "rollout"}, "annotations": {"a": "b"}},
    }


def test_field_paths_keep_lists_whole() -> None:
    assert field_paths({"spec": {"host": "h", "subsets": [1, 2], "empty": {}}}) == {
        ("spec", "host"), ("spec", "subsets"), ("spec", "empty"),
    }


def test_owned_paths_read_only_our_apply_entry() -> None:
    live = live_of(dr())
    assert owned_paths(live) == {
        ("metadata", "labels", "lanes.dev/group"), ("spec", "host"), ("spec", "subsets"),
    }
    assert owned_paths(live, "someone") == set()


def test_keyed_list_entries_count_as_their_list() -> None:
    live = live_of(dr(), owned={"f:spec": {"f:ports": {"k:{\"port\":80}": {".": {}, "f:port": {}}}}})
    assert owned_paths(live) == {("spec", "ports")}


def test_unchanged_object_needs_no_write() -> None:
    desired = dr(subsets=("base", "canary"))
    assert not needs_write(desired, live_of(desired))


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda o: o["spec"]["subsets"].pop(), id="subset-removed-by-user"),
        pytest.param(lambda o: o["spec"].update(host="x"), id="host-edited"),
        pytest.param(lambda o: o["metadata"]["labels"].clear(), id="owner-label-removed"),
        pytest.param(lambda o: o["spec"]["subsets"][0]["labels"].update(extra="1"), id="inside-atomic-list"),
    ],
)
def test_edits_of_our_fields_need_a_write(edit) -> None:
    desired = dr(subsets=("base", "canary"))
    live = live_of(desired)
    edit(live)
    assert needs_write(desired, live)


def test_fields_set_by_others_do_not_cause_writes() -> None:
    desired = dr()
    live = live_of(desired)
    live["spec"]["exportTo"] = ["."]
    live["metadata"]["labels"]["team"] = "a"
    assert not needs_write(desired, live)


def test_a_field_we_no_longer_send_is_stale() -> None:
    before = dr(trafficPolicy={"tls": {"mode": "ISTIO_MUTUAL"}})
    live = live_of(before)
    after = dr()
    assert stale_fields(after, live) == ["spec.trafficPolicy"]
    assert needs_write(after, live)


def test_plan_sorts_apply_unchanged_delete() -> None:
    same, changed, new = dr("same"), dr("changed", subsets=("base", "canary")), dr("new")
    gone = dr("gone")
    live = [live_of(same), live_of(dr("changed")), live_of(gone)]
    changes = plan_changes([same, changed, new], live)
    assert [o["metadata"]["name"] for o in changes.apply] == ["changed", "new"]
    assert [o["metadata"]["name"] for o in changes.unchanged] == ["same"]
    assert [o["metadata"]["name"] for o in changes.delete] == ["gone"]
    assert not changes.empty


def test_the_same_object_at_another_namespace_is_another_object() -> None:
    changes = plan_changes([dr(namespace="a")], [live_of(dr(namespace="b"))])
    assert len(changes.apply) == 1 and len(changes.delete) == 1


subsets = st.lists(st.sampled_from(["base", "canary", "blue", "green"]), unique=True, min_size=1)


@given(subsets, subsets)
def test_a_write_is_needed_exactly_when_subsets_differ(before, after) -> None:
    desired = dr(subsets=tuple(after))
    assert needs_write(desired, live_of(dr(subsets=tuple(before)))) == (before != after)


@given(st.lists(subsets, min_size=1, max_size=6))
def test_planning_desired_against_itself_is_empty(sets) -> None:
    desired = [dr(f"dr-{i}", subsets=tuple(s)) for i, s in enumerate(sets)]
    changes = plan_changes(desired, [live_of(o) for o in desired])
    assert changes.empty and len(changes.unchanged) == len(desired)
