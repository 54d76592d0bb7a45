"""`kubectl lane status rollout/NAME [-w]`: a rollout's steps, workloads and lane membership.

`rollout_view` turns the live objects into a plain view and `format_rollout` draws it, both
pure, so the output is tested without a cluster. `show_rollout` is what `status` calls for an
argument starting with `rollout/`; with `watch` it redraws until the release ends.

The exit code says how the release ended: 0 succeeded (or nothing to release), 1 failed or
rolled back, 2 still in progress (without `--watch`, or when `--timeout` ran out).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from lanes.cli.console import make_console
from lanes.rollout import CANARY_LABEL, HELD_ANNOTATION, DeploymentView

from .intents import rollout_name

Outcome = Literal["succeeded", "failed", "rolled back", "progressing"]
Role = Literal["base", "canary"]
EXIT_CODES: dict[Outcome, int] = {"succeeded": 0, "failed": 1, "rolled back": 1, "progressing": 2}
POLL_S = 0.5


@dataclass(frozen=True)
class StepView:
    """One canary step: how many pods, how it pauses, and where the rollout is with it."""

    index: int
    replicas: str
    pause: str
    state: str
    traffic: str = "-"


@dataclass(frozen=True)
class WorkloadView:
    """The base or canary Deployment as the view shows it."""

    name: str
    role: Role
    image: str
    replicas: int
    updated: int
    available: int
    paused: bool
    held_by: str | None = None


@dataclass(frozen=True)
class PodLine:
    """A pod of the rollout's workloads and the lane its labels put it in."""

    name: str
    role: Role
    lane: str
    ready: bool


@dataclass(frozen=True)
class RolloutView:
    """Everything the status view shows about one rollout."""

    name: str
    namespace: str
    phase: str
    message: str
    outcome: Outcome
    stable: str | None = None
    canary_revision: str | None = None
    paused: bool = False
    steps: list[StepView] = field(default_factory=list)
    workloads: list[WorkloadView] = field(default_factory=list)
    pods: list[PodLine] = field(default_factory=list)
    analysis: AnalysisView | None = None


@dataclass(frozen=True)
class AnalysisView:
    """The last analysis check: counts, each metric's last value against its range."""

    phase: str
    checks: int
    failed: int
    threshold: int | None
    message: str
    metrics: list[tuple[str, str, str, bool]] = field(default_factory=list)


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), {})


def outcome_of(rollout: Mapping[str, Any], base: Mapping[str, Any] | None) -> Outcome:
    """How the rollout's latest release stands.

    A Healthy rollout whose base declares a template other than the stable revision has a
    release about to start, so it counts as in progress, not as done.
    """
    status = rollout.get("status") or {}
    phase = status.get("phase", "Initial")
    if phase == "Failed":
        return "failed"
    if phase != "Healthy":
        return "progressing"
    stable = (status.get("canaryStatus") or {}).get("stableRevision")
    if base is not None and DeploymentView.from_object(base).revision != stable:
        return "progressing"
    if status.get("observedGeneration") != (rollout.get("metadata") or {}).get("generation"):
        return "progressing"
    succeeded = _condition(status, "Succeeded")
    if succeeded.get("status") == "False":
        return "rolled back" if succeeded.get("reason") == "RolledBack" else "failed"
    return "succeeded"


def _steps(rollout: Mapping[str, Any]) -> list[StepView]:
    spec = ((rollout.get("spec") or {}).get("strategy") or {}).get("canary") or {}
    canary = ((rollout.get("status") or {}).get("canaryStatus")) or {}
    current = canary.get("currentStepIndex") or 0
    state = canary.get("currentStepState")
    views = []
    judged = bool(spec.get("analysis"))
    for index, step in enumerate(spec.get("steps") or [], start=1):
        pause = step.get("pause")
        duration = (pause or {}).get("duration")
        if judged or step.get("analysis"):
            how = ("when a check passes" if pause is None else
                   "until approved (after a passing check)" if duration is None else
                   f"{duration}s and a passing check")
        else:
            how = "until approved" if duration is None else f"{duration}s"
        traffic = step.get("traffic") or "-"
        if step.get("matches"):
            traffic = f"{traffic} + matches" if step.get("traffic") else "matches"
        if state == "Completed" or index < current:
            where = "done"
        elif index == current:
            where = state or "-"
        else:
            where = "pending"
        views.append(
            StepView(
                index=index,
                replicas=str(step.get("replicas")),
                pause=how,
                state=where,
                traffic=traffic,
            )
        )
    return views


def _workload(obj: Mapping[str, Any], role: Role) -> WorkloadView:
    view = DeploymentView.from_object(obj)
    containers = (view.template.get("spec") or {}).get("containers") or [{}]
    return WorkloadView(
        name=view.name,
        role=role,
        image=", ".join(str(c.get("image")) for c in containers),
        replicas=view.replicas,
        updated=view.updated_replicas,
        available=view.available_replicas,
        paused=view.paused,
        held_by=view.annotations.get(HELD_ANNOTATION),
    )


def _ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def rollout_view(
    rollout: Mapping[str, Any],
    base: Mapping[str, Any] | None,
    canary: Mapping[str, Any] | None,
    pods: Sequence[Mapping[str, Any]] = (),
) -> RolloutView:
    """The view of a rollout from its live object, its Deployments and their pods.

    A pod's lane is read from the label keys the rollout patches onto canary pods (the canary
    lane's selector keys, e.g. `ASM_TRAFFIC_TAG`), so base and canary pods show which lane
    selects them.
    """
    metadata = rollout.get("metadata") or {}
    status = rollout.get("status") or {}
    canary_status = status.get("canaryStatus") or {}
    strategy = ((rollout.get("spec") or {}).get("strategy") or {}).get("canary") or {}
    lane_keys = sorted(((strategy.get("patchPodTemplateMetadata") or {}).get("labels") or {}))
    workloads = [_workload(base, "base")] if base else []
    if canary:
        workloads.append(_workload(canary, "canary"))
    lines = []
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        labels = pod["metadata"].get("labels") or {}
        if pod["metadata"].get("deletionTimestamp"):
            continue
        lane = ", ".join(f"{k}={labels[k]}" for k in lane_keys if k in labels) or "-"
        role: Role = "canary" if CANARY_LABEL in labels else "base"
        lines.append(PodLine(pod["metadata"]["name"], role, lane, _ready(pod)))
    return RolloutView(
        name=metadata.get("name", ""),
        namespace=metadata.get("namespace", ""),
        phase=status.get("phase", "Initial"),
        message=status.get("message") or "",
        outcome=outcome_of(rollout, base),
        stable=canary_status.get("stableRevision"),
        canary_revision=canary_status.get("canaryRevision"),
        paused=bool(status.get("paused")) or bool(
            ((rollout.get("spec") or {}).get("strategy") or {}).get("paused")
        ),
        steps=_steps(rollout),
        workloads=workloads,
        pods=lines,
        analysis=_analysis(status, strategy),
    )


def _analysis(status: Mapping[str, Any], strategy: Mapping[str, Any]) -> AnalysisView | None:
    found = status.get("analysis")
    if not found:
        return None
    threshold = (strategy.get("analysis") or {}).get("threshold")
    metrics = []
    for m in found.get("metrics") or []:
        value = m.get("value")
        shown = "no value" if value is None else f"{value:.4g}"
        metrics.append((m.get("name", ""), shown, m.get("range", ""), bool(m.get("ok"))))
    return AnalysisView(
        phase=found.get("phase", ""), checks=int(found.get("checks") or 0),
        failed=int(found.get("failedChecks") or 0), threshold=threshold,
        message=found.get("message") or "", metrics=metrics,
    )


_OUTCOME_STYLE = {"succeeded": "green", "failed": "red", "rolled back": "yellow", "progressing": "cyan"}


def format_rollout(view: RolloutView) -> RenderableType:
    """The view drawn for a terminal: a headline, then steps, workloads and pods tables."""
    head = Text(f"workloadrollout/{view.name}", style="bold")
    head.append(f"  {view.phase}", style=_OUTCOME_STYLE[view.outcome])
    if view.paused:
        head.append("  (paused)", style="yellow")
    head.append(f"  stable {view.stable or '-'}")
    if view.canary_revision and view.canary_revision != view.stable:
        head.append(f" → canary {view.canary_revision}")
    parts: list[RenderableType] = [head]
    if view.message:
        parts.append(Text(view.message, style="dim"))
    steps = Table("step", "canary replicas", "traffic", "pause", "state", title="steps",
                  title_justify="left")
    for step in view.steps:
        steps.add_row(str(step.index), step.replicas, step.traffic, step.pause, step.state)
    workloads = Table(
        "deployment", "role", "image", "ready", "updated", "paused",
        title="workloads", title_justify="left",
    )
    for w in view.workloads:
        paused = f"yes (held by {w.held_by})" if w.paused and w.held_by else "yes" if w.paused else "no"
        workloads.add_row(
            w.name, w.role, w.image, f"{w.available}/{w.replicas}", str(w.updated), paused
        )
    pods = Table("pod", "workload", "lane", "ready", title="pods", title_justify="left")
    for pod in view.pods:
        pods.add_row(pod.name, pod.role, pod.lane, "yes" if pod.ready else "no")
    parts.extend([steps, workloads, pods])
    if view.analysis is not None:
        a = view.analysis
        of = f"/{a.threshold}" if a.threshold else ""
        table = Table("metric", "last value", "range", "ok", title=(
            f"analysis: {a.phase}, {a.checks} check(s), failed {a.failed}{of}"), title_justify="left")
        for name, value, bounds, ok in a.metrics:
            table.add_row(name, value, bounds, Text("yes", style="green") if ok else Text("no", style="red"))
        parts.append(table)
        if a.message:
            parts.append(Text(a.message, style="dim"))
    parts.append(Text(f"release: {view.outcome}", style=_OUTCOME_STYLE[view.outcome]))
    return Group(*parts)


def summary_line(view: RolloutView) -> str:
    """One line per change, for `--watch` when the output is not a terminal."""
    step = next((s for s in view.steps if s.state not in ("done", "pending")), None)
    where = f" step {step.index}/{len(view.steps)} {step.state}" if step else ""
    canary = next((w for w in view.workloads if w.role == "canary"), None)
    pods = f" canary {canary.available}/{canary.replicas}" if canary else ""
    checks = ""
    if view.analysis is not None:
        values = ", ".join(f"{n} {v}" for n, v, _, _ in view.analysis.metrics)
        checks = f" analysis {view.analysis.phase} failed {view.analysis.failed}" + (
            f" ({values})" if values else "")
    return f"{view.phase}{where}{pods}{checks}: {view.message}"


def read_view(api: Any, namespace: str, name: str) -> RolloutView | None:
    """Read one rollout and what it drives; None when it does not exist."""
    from lanes.kube.rollouts import RolloutsApi  # deferred, as in show_rollout

    rollouts = RolloutsApi(api)
    body = rollouts.get(namespace, name)
    if body is None:
        return None
    workload = ((body.get("spec") or {}).get("workloadRef") or {}).get("name", "")
    seen = rollouts.workloads(namespace, workload)
    selector = DeploymentView.from_object(seen.base).selector if seen.base else {}
    pods = rollouts.pods(namespace, selector) if selector else []
    return rollout_view(body, seen.base, seen.canary, pods)


def show_rollout(
    target: str,
    *,
    namespace: str | None = None,
    watch: bool = False,
    timeout: float | None = None,
    kubeconfig: str | None = None,
    context: str | None = None,
    console: Console | None = None,
) -> int:
    """Print a rollout's status (redrawn until the release ends with `watch`); the exit code."""
    # The kubernetes client loads only when a verb talks to a cluster, so the offline verbs
    # (render, trace, graph, convert) start without it.
    from lanes.kube.connect import connect
    from lanes.kube.rollouts import default_namespace

    name = rollout_name(target)
    namespace = namespace or default_namespace(kubeconfig, context)
    console = console or make_console()
    api = connect(kubeconfig, context)
    try:
        view = read_view(api, namespace, name)
        if view is None:
            typer.echo(f"error: workloadrollout/{name} not found in namespace {namespace}", err=True)
            return 1
        if watch:
            view = watch_view(view, lambda v: _reread(api, namespace, name, v), format_rollout,
                              summary_line, timeout, console)
        else:
            console.print(format_rollout(view))
        return EXIT_CODES[view.outcome]
    finally:
        api.close()


def _reread(api: Any, namespace: str, name: str, view: RolloutView) -> RolloutView:
    """The rollout read again; one deleted while watched ends the watch as failed."""
    new = read_view(api, namespace, name)
    if new is None:
        return dataclasses.replace(view, message="the rollout was deleted", outcome="failed")
    return new


def watch_view(
    view: Any, reread: Callable[[Any], Any], draw: Callable[[Any], RenderableType],
    summary: Callable[[Any], str], timeout: float | None, console: Console,
) -> Any:
    """Redraw a view (anything with an `outcome`) until it is no longer progressing.

    On a terminal the view is redrawn in place; otherwise each changed summary line is
    printed, then the final view, so a log shows every move.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    if console.is_terminal:
        with Live(draw(view), console=console, auto_refresh=False) as live:
            while view.outcome == "progressing" and (deadline is None or time.monotonic() < deadline):
                time.sleep(POLL_S)
                view = reread(view)
                live.update(draw(view), refresh=True)
        return view
    last = summary(view)
    console.print(last, soft_wrap=True)
    while view.outcome == "progressing" and (deadline is None or time.monotonic() < deadline):
        time.sleep(POLL_S)
        view = reread(view)
        line = summary(view)
        if line != last:
            console.print(line, soft_wrap=True)
            last = line
    console.print(draw(view))
    return view
