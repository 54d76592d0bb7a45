"""The store with named indexes: one add/update/delete path keeps every index in step."""

from __future__ import annotations

from lanes.kube.store import Store, metadata_essence


def body(name: str, labels: dict, generation: int = 1, status: dict | None = None) -> dict:
    return {"metadata": {"name": name, "generation": generation, "labels": labels}, "status": status or {}}


def by_team() -> Store[dict]:
    return Store({"team": lambda b: [b["metadata"]["labels"]["team"]] if "team" in b["metadata"]["labels"] else []},
                 essence=metadata_essence)


def test_objects_are_found_by_index_and_move_with_updates() -> None:
    store = by_team()
    store.put("a", body("a", {"team": "x"}))
    store.put("b", body("b", {"team": "x"}))
    assert store.index_keys("team", "x") == {"a", "b"}
    store.put("a", body("a", {"team": "y"}, generation=2))
    assert store.index_keys("team", "x") == {"b"} and store.index_keys("team", "y") == {"a"}
    store.delete("b")
    assert store.index("team").get("x") is None, "an empty bucket is dropped"
    assert [b["metadata"]["name"] for b in store.by_index("team", "y")] == ["a"]
    assert store.indexed_values("team", "a") == {"y"}


def test_a_status_write_is_no_change() -> None:
    store = by_team()
    assert store.put("a", body("a", {})).changed
    change = store.put("a", body("a", {}, status={"phase": "Ready"}))
    assert not change.changed and change.new["status"] == {"phase": "Ready"}, "kept, but no change"
    assert store.unchanged("a", body("a", {}, status={"phase": "Other"}))
    assert store.put("a", body("a", {}, generation=2)).changed
    assert store.delete("a").changed and store.get("a") is None
    assert not store.unchanged("a", body("a", {}))


def test_intersect_finds_keys_under_every_value() -> None:
    store: Store[dict] = Store({"label": lambda labels: labels.items()})
    store.put("p", {"app": "a", "lane": "x"})
    store.put("q", {"app": "a", "lane": "y"})
    assert store.intersect("label", [("app", "a"), ("lane", "x")]) == {"p"}
    assert store.intersect("label", [("app", "a"), ("lane", "z")]) == set()
    assert store.intersect("label", []) == set()
    assert not store.put("p", {"app": "a", "lane": "x"}).changed, "equal objects are no change"
