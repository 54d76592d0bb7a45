"""The coalescing queue and the mapping from watch events to the groups they concern."""

from __future__ import annotations

import asyncio

import pytest
from kubernetes import client

from lanes.kube.connect import MeteredApiClient
from lanes.operator.plan import service_keys
from lanes.operator.runtime import Options, Runtime
from lanes.operator.scheduler import Scheduler


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 10))


def test_a_burst_of_triggers_is_one_run() -> None:
    calls = []

    async def main():
        async def work(key, force):
            calls.append((key, force))

        scheduler = Scheduler(work, debounce=0.05)
        scheduler.start()
        for _ in range(20):
            scheduler.trigger("g")
        scheduler.trigger("g", force=True)
        await asyncio.sleep(0.2)
        await scheduler.stop()

    run(main())
    assert calls == [("g", True)]


def test_a_trigger_while_running_gives_exactly_one_more_run() -> None:
    calls, running = [], {"now": 0, "max": 0}

    async def main():
        async def work(key, force):
            running["now"] += 1
            running["max"] = max(running["max"], running["now"])
            calls.append(key)
            await asyncio.sleep(0.05)
            running["now"] -= 1

        scheduler = Scheduler(work, debounce=0, workers=4)
        scheduler.start()
        scheduler.trigger("g")
        await asyncio.sleep(0.01)
        for _ in range(5):
            scheduler.trigger("g")
        await asyncio.sleep(0.3)
        assert not scheduler.busy
        await scheduler.stop()

    run(main())
    assert calls == ["g", "g"]
    assert running["max"] == 1


def test_background_work_runs_one_key_at_a_time_behind_triggered_work() -> None:
    order, active, peak = [], set(), []

    async def main():
        gate = asyncio.Event()

        async def work(key, force):
            active.add(key)
            peak.append(len(active & {"b1", "b2", "b3"}))
            order.append(key)
            if key == "b1":
                await gate.wait()
            await asyncio.sleep(0.01)
            active.discard(key)

        scheduler = Scheduler(work, debounce=0, workers=4)
        scheduler.start()
        for key in ("b1", "b2", "b3", "b4"):
            scheduler.trigger(key, force=True, background=True)
        while "b1" not in order:
            await asyncio.sleep(0.001)
        scheduler.trigger("e1")
        scheduler.trigger("b4")
        while len(order) < 3:
            await asyncio.sleep(0.001)
        gate.set()
        while scheduler.busy:
            await asyncio.sleep(0.01)
        await scheduler.stop()

    run(main())
    assert order == ["b1", "e1", "b4", "b2", "b3"], "an event's trigger moves a background key ahead, once"
    assert max(peak) == 1, "one background key at a time"


def test_groups_run_in_parallel() -> None:
    active, peak = set(), []

    async def main():
        async def work(key, force):
            active.add(key)
            peak.append(len(active))
            await asyncio.sleep(0.05)
            active.discard(key)

        scheduler = Scheduler(work, debounce=0, workers=3)
        scheduler.start()
        for key in "abc":
            scheduler.trigger(key)
        await asyncio.sleep(0.2)
        await scheduler.stop()

    run(main())
    assert max(peak) == 3


def test_failures_retry_with_backoff_and_force() -> None:
    calls = []

    async def main():
        loop = asyncio.get_running_loop()

        async def work(key, force):
            calls.append((round(loop.time(), 2), force))
            if len(calls) < 3:
                raise RuntimeError("apiserver away")

        scheduler = Scheduler(work, debounce=0, backoff=(0.05, 1.0))
        scheduler.start()
        scheduler.trigger("g")
        await asyncio.sleep(0.5)
        await scheduler.stop()

    run(main())
    assert len(calls) == 3
    assert [force for _, force in calls] == [False, True, True]
    gaps = [b[0] - a[0] for a, b in zip(calls, calls[1:])]
    assert gaps[1] > gaps[0] * 1.5


class Recorder:
    def __init__(self):
        self.triggered = []

    def trigger(self, key, *, force=False, background=False):
        self.triggered.append(key)


def group(name: str, *services: str) -> dict:
    return {
        "metadata": {"name": name, "generation": 1},
        "spec": {"services": [{"name": s.split("/")[1], "namespace": s.split("/")[0]} for s in services]},
    }


def pod(name: str, labels: dict, ready: bool = True, namespace: str = "default") -> dict:
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def runtime() -> tuple[Runtime, Recorder]:
    rt = Runtime(Options(metrics_port=None), api=MeteredApiClient(client.Configuration()))
    rt.scheduler = Recorder()
    rt.lane_keys = {"lane"}
    for key, app in (("default/a", "a"), ("default/b", "b"), ("other/a", "a")):
        rt.on_service(None, *key.split("/"), {"app": app})
    rt.on_group(None, "g1", group("g1", "default/a", "default/b"))
    rt.on_group(None, "g2", group("g2", "other/a"))
    rt.scheduler.triggered.clear()
    return rt, rt.scheduler


def test_service_keys_read_leniently() -> None:
    body = {"spec": {"services": [{"name": "a"}, {"name": "b", "namespace": "x"}, "junk", {"namespace": "y"}]}}
    assert service_keys(body) == {"default/a", "x/b"}


def test_pod_events_trigger_groups_whose_services_select_them() -> None:
    rt, rec = runtime()
    rt.on_pod(None, pod("p", {"app": "a", "lane": "canary"}))
    assert rec.triggered == ["g1"]
    rt.on_pod("MODIFIED", pod("p", {"app": "a", "lane": "canary"}))
    assert rec.triggered == ["g1"], "an unchanged pod triggers nothing"
    rt.on_pod("MODIFIED", pod("p", {"app": "a", "lane": "canary"}, ready=False))
    rt.on_pod("DELETED", pod("p", {"app": "a", "lane": "canary"}, ready=False))
    assert rec.triggered == ["g1", "g1", "g1"]


def test_pods_outside_lanes_are_dismissed() -> None:
    rt, rec = runtime()
    rt.on_pod(None, pod("p", {"app": "a"}))
    rt.on_pod(None, pod("q", {"app": "a", "lane": "x"}, namespace="elsewhere"))
    assert rec.triggered == []


def test_a_pod_leaving_a_service_triggers_its_old_group() -> None:
    rt, rec = runtime()
    rt.on_pod(None, pod("p", {"app": "a", "lane": "x"}))
    rt.on_pod("MODIFIED", pod("p", {"app": "zzz", "lane": "x"}))
    assert rec.triggered == ["g1", "g1"]


def test_status_only_changes_do_not_trigger() -> None:
    rt, rec = runtime()
    body = group("g1", "default/a", "default/b")
    rt.on_group("MODIFIED", "g1", {**body, "status": {"generated": 3}})
    assert rec.triggered == []
    rt.on_group("MODIFIED", "g1", {**body, "metadata": {**body["metadata"], "generation": 2}})
    assert rec.triggered == ["g1"]


def test_lane_moving_between_groups_triggers_both() -> None:
    rt, rec = runtime()
    lane = {"metadata": {"name": "canary", "generation": 1, "labels": {"swimlane-group": "g1"}}}
    rt.on_lane(None, "canary", lane)
    moved = {"metadata": {"name": "canary", "generation": 1, "labels": {"swimlane-group": "g2"}}}
    rt.on_lane("MODIFIED", "canary", moved)
    assert rec.triggered[0] == "g1" and sorted(rec.triggered[1:]) == ["g1", "g2"]


def test_generated_objects_map_back_to_their_group() -> None:
    rt, rec = runtime()
    assert rt.owners_of({"app.kubernetes.io/managed-by": "lanes", "lanes.dev/group": "g1"}) == {"g1"}
    assert rt.owners_of({"asm-system": "true", "provider": "asm", "swimlane-group": "g2"}) == {"g2"}
    assert rt.owners_of({"asm-system": "true", "provider": "asm", "swimlane-group": "gone"}) == {"gone"}
    assert rt.owners_of({"lanes.dev/group": "g1"}) == set()


def test_snapshot_gathers_the_groups_objects() -> None:
    rt, _ = runtime()
    rt.on_group("MODIFIED", "g1", group("g1", "default/a"))
    rt.on_pod(None, pod("p", {"app": "a", "lane": "x"}))
    rt.on_pod(None, pod("q", {"app": "a", "lane": "x"}, namespace="other"))
    rt.on_pod(None, pod("r", {"app": "b", "lane": "x"}))
    rt.on_pod(None, pod("s", {"app": "a"}))  # in no lane: never indexed
    snap = rt.snapshot("g1")
    assert snap.services == {"default/a": {"app": "a"}}
    assert [p.name for p in snap.pods] == ["p"]
    rt.on_pod("MODIFIED", pod("p", {"app": "a", "lane": "y"}, ready=False))
    assert [(p.labels["lane"], p.ready) for p in rt.snapshot("g1").pods] == [("y", False)]
    rt.on_pod("DELETED", pod("p", {"app": "a", "lane": "y"}))
    assert rt.snapshot("g1").pods == [] and rt.pods.index("label").get(("default", "app", "a")) is None
    assert rt.snapshot("nope").group is None


def test_groups_sharing_a_service_are_queued_when_either_changes() -> None:
    rt, rec = runtime()
    rt.on_group(None, "g3", group("g3", "default/b", "default/c"))
    assert rec.triggered == ["g3", "g1"]
    rec.triggered.clear()
    rt.on_generated({"app.kubernetes.io/managed-by": "lanes", "lanes.dev/group": "g1"})
    assert rec.triggered == ["g1", "g3"]
    rec.triggered.clear()
    rt.on_group("DELETED", "g1", group("g1", "default/a", "default/b"))
    assert rec.triggered == ["g1", "g3"]
    rec.triggered.clear()
    rt.on_generated({"app.kubernetes.io/managed-by": "lanes", "lanes.dev/group": "g2"})
    assert rec.triggered == ["g2"], "a group sharing no service queues no other"


def test_a_snapshot_names_the_other_groups() -> None:
    rt, _ = runtime()
    rt.on_group(None, "g3", group("g3", "default/b", "default/c"))
    assert rt.snapshot("g1").others == [group("g3", "default/b", "default/c")]
    assert rt.snapshot("g2").others == [], "a group sharing no service is no other of it"


def rollout_body(phase: str, index: int, state: str, message: str = "", traffic: str | None = "20%") -> dict:
    step = {"replicas": 1, **({"traffic": traffic} if traffic else {})}
    return {
        "metadata": {"name": "r", "namespace": "default", "generation": 1},
        "spec": {"strategy": {"canary": {"steps": [step]}}},
        "status": {"phase": phase, "message": message,
                   "canaryStatus": {"currentStepIndex": index, "currentStepState": state}},
    }


def test_a_rollout_moving_a_step_triggers_the_groups_beside_it_and_nothing_else_does() -> None:
    rt, recorder = runtime()
    rt.on_rollout(None, rollout_body("Progressing", 1, "StepUpgrade"))
    assert recorder.triggered == ["g1"]
    recorder.triggered.clear()
    rt.on_rollout("MODIFIED", rollout_body("Progressing", 1, "StepUpgrade", "1/2 pods available"))
    assert recorder.triggered == [], "a progress message alone moves no traffic"
    rt.on_rollout("MODIFIED", rollout_body("Paused", 1, "StepPaused"))
    assert recorder.triggered == ["g1"]
    recorder.triggered.clear()
    rt.on_rollout("DELETED", rollout_body("Paused", 1, "StepPaused"))
    assert recorder.triggered == ["g1"]


def test_a_rollout_without_traffic_steps_leaves_the_groups_alone_until_it_ends() -> None:
    rt, recorder = runtime()
    rt.on_rollout(None, rollout_body("Progressing", 1, "StepUpgrade", traffic=None))
    rt.on_rollout("MODIFIED", rollout_body("Paused", 1, "StepPaused", traffic=None))
    assert recorder.triggered == [], "its pods' own events reconcile the groups"
    rt.on_rollout("MODIFIED", rollout_body("Paused", 1, "StepPaused"))
    assert recorder.triggered == ["g1"]
    recorder.triggered.clear()
    rt.on_rollout("MODIFIED", rollout_body("Healthy", 1, "Completed"))
    assert recorder.triggered == ["g1"], "the end of a traffic step takes its split away"


@pytest.mark.parametrize("phase, steps, parsed", [
    pytest.param("Paused", [{"replicas": 1, "traffic": "20%"}], True, id="traffic-step-under-way"),
    pytest.param("Progressing", [{"replicas": 1, "matches": [{"headers": []}]}], True, id="matches"),
    pytest.param("Healthy", [{"replicas": 1, "traffic": "20%"}], False, id="no-release"),
    pytest.param("Paused", [{"replicas": 1}, {"replicas": "100%"}], False, id="no-traffic-steps"),
])
def test_only_rollouts_that_may_split_traffic_are_parsed(phase: str, steps: list, parsed: bool) -> None:
    from lanes.operator.runtime import splits_traffic

    body = {"spec": {"strategy": {"canary": {"steps": steps}}}, "status": {"phase": phase}}
    assert splits_traffic(body) is parsed


def test_a_services_new_selector_triggers_its_groups_and_moves_its_pods() -> None:
    rt, rec = runtime()
    rt.on_pod(None, pod("p", {"app": "a", "lane": "x"}))
    rt.on_pod(None, pod("q", {"app": "z", "lane": "x"}))
    rec.triggered.clear()
    rt.on_service("MODIFIED", "default", "a", {"app": "a"})
    assert rec.triggered == [], "an unchanged selector triggers nothing"
    rt.on_service("MODIFIED", "default", "a", {"app": "z"})
    assert rec.triggered == ["g1"]
    assert [p.name for p in rt.snapshot("g1").pods] == ["q"]
    assert rt.groups_selecting("default", {"app": "a", "lane": "x"}) == set()
    rt.on_service("DELETED", "default", "a", None)
    assert rec.triggered == ["g1", "g1"] and rt.snapshot("g1").services == {"default/b": {"app": "b"}}
