"""A tiny pure simulator of the objects a WorkloadRollout drives, for unit-level scenarios.

It plays the Deployment controller (simplified: scaling is instant, pods are available at
once unless their image is marked broken), the admission webhook that pauses a base whose
template changes, and the operator loop around `plan_step`, including the analysis check it
makes when a plan asks for one (`metrics` and `hooks` answer it). It is a harness for the pure
planner, not a stand-in for the integration tests against a real control plane.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from lanes.analysis.verdict import HookResult, Reading
from lanes.api.analysis import Analysis, Webhook
from lanes.api.workloadrollout import WorkloadRollout
from lanes.rollout import (
    HELD_ANNOTATION,
    ApplyAutoscaler,
    ApplyCanary,
    ClearIntent,
    DeleteAutoscaler,
    DeleteCanary,
    Event,
    Intent,
    Observed,
    PauseBase,
    Plan,
    RestoreBaseTemplate,
    ScaleCanary,
    UnpauseBase,
    intent_patch,
    plan_finalize,
    plan_step,
)

START = datetime(2025, 1, 1, tzinfo=UTC)
REVISION_NUMBER = "deployment.kubernetes.io/revision"
IMAGE = "registry.example/go-http-sample"


def deployment(name: str = "mocka-v1", replicas: int = 1, image: str = f"{IMAGE}:1.0") -> dict:
    """A base Deployment shaped like the mock-chain story's."""
    app = name.split("-")[0]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": f"uid-{name}",
            "generation": 1,
            "labels": {"app": app, "version": "v1"},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {
                    "creationTimestamp": None,
                    "labels": {"app": app, "version": "v1", "ASM_TRAFFIC_TAG": "base"},
                },
                "spec": {
                    "containers": [
                        {
                            "name": "default",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "env": [{"name": "app", "value": app}],
                        }
                    ]
                },
            },
        },
        "status": {},
    }


def rollout(
    workload: str = "mocka-v1",
    steps: list[dict] | None = None,
    name: str = "rollouts-mocka",
    **canary: Any,
) -> WorkloadRollout:
    """A WorkloadRollout as converted from the story's Kruise Rollout."""
    return WorkloadRollout.model_validate(
        {
            "metadata": {
                "name": name,
                "namespace": "default",
                "uid": "uid-rollout",
                "generation": 1,
            },
            "spec": {
                "workloadRef": {"name": workload},
                "strategy": {
                    "canary": {
                        "enableExtraWorkloadForCanary": True,
                        "steps": steps or [{"replicas": 1}],
                        "patchPodTemplateMetadata": {"labels": {"ASM_TRAFFIC_TAG": "canary"}},
                        **canary,
                    }
                },
            },
        }
    )


def _revision_number(rs: dict) -> int:
    return int(rs["metadata"]["annotations"][REVISION_NUMBER])


def _short_hash(template: dict) -> str:
    return hashlib.sha1(json.dumps(template, sort_keys=True).encode()).hexdigest()[:8]


def _without_hash_label(template: dict) -> dict:
    out = copy.deepcopy(template)
    out.get("metadata", {}).get("labels", {}).pop("pod-template-hash", None)
    return out


def _defaulted(template: dict) -> dict:
    """A template as the API server stores it: `creationTimestamp: null` filled in."""
    out = copy.deepcopy(template)
    out.setdefault("metadata", {})["creationTimestamp"] = None
    return out


def image_of(obj: dict) -> str:
    """The first container's image of a Deployment or ReplicaSet."""
    return obj["spec"]["template"]["spec"]["containers"][0]["image"]


@dataclass
class World:
    """Deployments, ReplicaSets and pods in one namespace, plus the rollout and a clock."""

    rollout: WorkloadRollout
    deployments: dict[str, dict] = field(default_factory=dict)
    replica_sets: dict[str, dict] = field(default_factory=dict)
    pods: dict[str, list[str]] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)
    webhook: bool = True
    now: datetime = START
    events: list[Event] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)
    canaries_created: int = 0
    metrics: Callable[[World, Analysis], Mapping[str, Reading]] | None = None
    hooks: Callable[[World, Analysis], Sequence[HookResult]] | None = None
    checks: list[datetime] = field(default_factory=list)
    webhooks: Callable[[World, Webhook, str], HookResult] | None = None
    called: list[tuple[str, str, str]] = field(default_factory=list)
    notified: list[tuple[str, str, str]] = field(default_factory=list)
    autoscalers: dict[str, dict] = field(default_factory=dict)
    _pod_counter: int = 0

    @classmethod
    def of(cls, base: dict, ro: WorkloadRollout, **kwargs: Any) -> World:
        """A world with a base Deployment that has already rolled out."""
        world = cls(rollout=ro, **kwargs)
        world.deployments[base["metadata"]["name"]] = copy.deepcopy(base)
        world.settle()
        return world

    @property
    def base_name(self) -> str:
        return self.rollout.spec.workload_ref.name

    @property
    def base(self) -> dict:
        return self.deployments[self.base_name]

    @property
    def canary(self) -> dict | None:
        return self.deployments.get(f"{self.base_name}-canary")

    @property
    def status(self):
        return self.rollout.status

    def observed(self) -> Observed:
        """What the operator would read."""
        base = self.deployments.get(self.base_name)
        owned = [
            rs
            for rs in self.replica_sets.values()
            if base and rs["metadata"]["ownerReferences"][0]["uid"] == base["metadata"]["uid"]
        ]
        ref = self.rollout.spec.autoscaler_ref
        return Observed.from_objects(
            copy.deepcopy(base), copy.deepcopy(owned), self.canary,
            autoscaler=copy.deepcopy(self.autoscalers.get(ref.name)) if ref else None,
            canary_autoscaler=copy.deepcopy(self.autoscalers.get(f"{self.base_name}-canary")),
        )

    def replica_sets_of(self, name: str) -> list[dict]:
        uid = self.deployments[name]["metadata"]["uid"]
        return [
            rs
            for rs in self.replica_sets.values()
            if rs["metadata"]["ownerReferences"][0]["uid"] == uid
        ]

    def pods_of(self, name: str) -> set[str]:
        """Every pod name the Deployment's ReplicaSets run."""
        return {p for rs in self.replica_sets_of(name) for p in self.pods[rs["metadata"]["name"]]}

    def set_image(self, image: str) -> None:
        """What `kubectl set image` does, with the admission webhook holding the base."""
        container = self.base["spec"]["template"]["spec"]["containers"][0]
        if container["image"] != image:
            container["image"] = image
            self._spec_changed(self.base, template_changed=True)
        self.settle()

    def request(self, intent: Intent) -> None:
        """What the CLI does: patch the intent annotation."""
        patch = intent_patch(self.rollout, intent, self.now)["metadata"]["annotations"]
        annotations = dict(self.rollout.metadata.annotations)
        for key, value in patch.items():
            if value is None:
                annotations.pop(key, None)
            else:
                annotations[key] = value
        self._set_annotations(annotations)

    def reconcile(self, crash_after: int | None = None, advance: float = 1.0) -> Plan:
        """One operator reconcile; with `crash_after`, die after that many changes.

        A plan that asks for an analysis check is answered by `metrics` and `hooks` (the
        `rollout` hooks), the webhooks it names in `hooks_due` by `webhooks` (2xx when unset,
        each call kept in `called` as (type, name, phase)), and planned again with the answers,
        as the operator does. Events sent to `event` hooks are kept in `notified`.
        """
        seen = self.observed()
        plan = plan_step(self.rollout, seen, self.now)
        if plan.asks:
            answered = [self._call(c.hook, c.phase) for c in plan.hooks_due]
            if plan.check is not None:
                self.checks.append(self.now)
                readings = self.metrics(self, plan.check) if self.metrics else {}
                hooks = self.hooks(self, plan.check) if self.hooks else ()
                asked = seen.with_check(readings, [*answered, *hooks])
            else:
                asked = seen.with_hooks(answered)
            plan = plan_step(self.rollout, asked, self.now)
        self.plans.append(plan)
        changes = plan.changes if crash_after is None else plan.changes[:crash_after]
        for action in changes:
            self.apply(action)
        if crash_after is None:
            self.rollout = self.rollout.model_copy(update={"status": plan.status})
            for action in plan.followups:
                self.apply(action)
        self.settle()
        self.now += timedelta(seconds=advance)
        return plan

    def _call(self, hook: Webhook, phase: str) -> HookResult:
        self.called.append((hook.type, hook.name, phase))
        if self.webhooks is None:
            return HookResult(hook.name, True, "answered 200", hook.type)
        return self.webhooks(self, hook, phase)

    def finalize(self) -> None:
        """What the operator does when the rollout is deleted."""
        for action in plan_finalize(self.rollout, self.observed()):
            self.apply(action)
        self.settle()

    def run(self, until, limit: int = 40, **kwargs: Any) -> None:
        """Reconcile until `until(world)` holds."""
        for _ in range(limit):
            if until(self):
                return
            self.reconcile(**kwargs)
        raise AssertionError(f"not reached after {limit} reconciles: {self.status}")

    def apply(self, action: Any) -> None:
        """Carry out one planned action as the operator and API server would."""
        if isinstance(action, PauseBase | UnpauseBase):
            obj = self.deployments[action.name]
            self._hold(obj, isinstance(action, PauseBase))
        elif isinstance(action, RestoreBaseTemplate):
            obj = self.deployments[action.name]
            template = _defaulted(action.template)
            if obj["spec"]["template"] != template:
                obj["spec"]["template"] = template
                self._spec_changed(obj, template_changed=True)
        elif isinstance(action, ApplyCanary):
            self._apply_canary(copy.deepcopy(action.deployment))
        elif isinstance(action, ScaleCanary):
            obj = self.deployments[action.name]
            if obj["spec"]["replicas"] != action.replicas:
                obj["spec"]["replicas"] = action.replicas
                self._spec_changed(obj)
        elif isinstance(action, DeleteCanary):
            self.delete(action.name)
        elif isinstance(action, ApplyAutoscaler):
            self.autoscalers[action.name] = copy.deepcopy(action.autoscaler)
        elif isinstance(action, DeleteAutoscaler):
            self.autoscalers.pop(action.name, None)
        elif isinstance(action, ClearIntent):
            annotations = dict(self.rollout.metadata.annotations)
            annotations.pop(action.annotation, None)
            self._set_annotations(annotations)
        elif isinstance(action, Event):
            self.events.append(action)
            for hook in self.plans[-1].event_hooks if self.plans else ():
                self.notified.append((hook.name, action.type, action.message))
        else:
            raise TypeError(action)

    def settle(self) -> None:
        """Run the Deployment controller over every Deployment."""
        for obj in list(self.deployments.values()):
            self._sync(obj)

    def _set_annotations(self, annotations: dict[str, str]) -> None:
        metadata = self.rollout.metadata.model_copy(update={"annotations": annotations})
        self.rollout = self.rollout.model_copy(update={"metadata": metadata})

    def _hold(self, obj: dict, paused: bool) -> None:
        annotations = obj["metadata"].setdefault("annotations", {})
        if paused:
            annotations[HELD_ANNOTATION] = self.rollout.metadata.name
        else:
            annotations.pop(HELD_ANNOTATION, None)
        if bool(obj["spec"].get("paused")) != paused:
            obj["spec"]["paused"] = paused
            obj["metadata"]["generation"] += 1

    def _spec_changed(self, obj: dict, template_changed: bool = False) -> None:
        obj["metadata"]["generation"] += 1
        is_base = obj["metadata"]["name"] == self.base_name
        if template_changed and is_base and self.webhook:
            self._hold(obj, True)

    def _apply_canary(self, desired: dict) -> None:
        desired["spec"]["template"] = _defaulted(desired["spec"]["template"])
        name = desired["metadata"]["name"]
        current = self.deployments.get(name)
        if current is None:
            desired["metadata"].update(uid=f"uid-{name}-{self.canaries_created}", generation=1)
            desired["status"] = {}
            self.deployments[name] = desired
            self.canaries_created += 1
            return
        for key in ("labels", "annotations", "ownerReferences"):
            current["metadata"][key] = desired["metadata"][key]
        if current["spec"] != desired["spec"]:
            current["spec"] = desired["spec"]
            self._spec_changed(current)

    def delete(self, name: str) -> None:
        """Delete a Deployment with its ReplicaSets and pods (cascading, at once)."""
        obj = self.deployments.pop(name, None)
        if obj is None:
            return
        for rs in list(self.replica_sets.values()):
            if rs["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]:
                del self.replica_sets[rs["metadata"]["name"]]
                del self.pods[rs["metadata"]["name"]]

    def _sync(self, obj: dict) -> None:
        name, spec = obj["metadata"]["name"], obj["spec"]
        owned = self.replica_sets_of(name)
        template = spec["template"]
        new = next(
            (rs for rs in owned if _without_hash_label(rs["spec"]["template"]) == template), None
        )
        if not spec.get("paused"):
            top = max((_revision_number(rs) for rs in owned), default=0)
            if new is None:
                new = self._create_replica_set(obj, top + 1)
                owned.append(new)
            elif _revision_number(new) < top:
                new["metadata"]["annotations"][REVISION_NUMBER] = str(top + 1)
            for rs in owned:
                rs["spec"]["replicas"] = spec["replicas"] if rs is new else 0
        total = updated = available = 0
        for rs in owned:
            pods = self.pods[rs["metadata"]["name"]]
            while len(pods) < rs["spec"]["replicas"]:
                self._pod_counter += 1
                pods.append(f"{rs['metadata']['name']}-{self._pod_counter}")
            del pods[rs["spec"]["replicas"]:]
            ready = 0 if image_of(rs) in self.broken else len(pods)
            rs["status"] = {"replicas": len(pods), "availableReplicas": ready}
            total += len(pods)
            available += ready
            if rs is new:
                updated = len(pods)
        obj["status"] = {
            "observedGeneration": obj["metadata"]["generation"],
            "replicas": total,
            "updatedReplicas": updated,
            "availableReplicas": available,
        }

    def _create_replica_set(self, obj: dict, revision: int) -> dict:
        template = copy.deepcopy(obj["spec"]["template"])
        digest = _short_hash(template)
        template["metadata"]["labels"]["pod-template-hash"] = digest
        name = f"{obj['metadata']['name']}-{digest}"
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": "default",
                "labels": {**template["metadata"]["labels"]},
                "annotations": {REVISION_NUMBER: str(revision)},
                "ownerReferences": [
                    {
                        "kind": "Deployment",
                        "name": obj["metadata"]["name"],
                        "uid": obj["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": {"replicas": 0, "template": template},
            "status": {},
        }
        self.replica_sets[name] = rs
        self.pods[name] = []
        return rs
