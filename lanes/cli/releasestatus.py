"""`kubectl lane status lanerelease/NAME [-w]`: a lane release's steps, checks per service and
rollouts.

`release_view` turns the live release into a plain view and `format_release` draws it, both
pure. The exit code is a rollout's: 0 promoted, 1 rolled back, 2 still in progress.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import typer
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from lanes.api.lanerelease import LaneReleaseSpec
from lanes.cli.console import make_console

from .rolloutstatus import EXIT_CODES, Outcome, watch_view


@dataclass(frozen=True)
class ServiceLine:
    """A service of the lane at the last check: its rollout, each metric's value and range."""

    service: str
    rollout: str
    ok: bool
    metrics: list[tuple[str, str, str, bool]] = field(default_factory=list)


@dataclass(frozen=True)
class ReleaseView:
    """Everything the status view shows about one lane release."""

    name: str
    namespace: str
    lane: str
    phase: str
    message: str
    outcome: Outcome
    step: int
    weights: list[int]
    weight: int
    checks: int = 0
    failed: int = 0
    threshold: int | None = None
    paused: bool = False
    services: list[ServiceLine] = field(default_factory=list)
    rollouts: list[tuple[str, str]] = field(default_factory=list)
    mirror: int | None = None


def _weights(spec: Mapping[str, Any]) -> list[int]:
    try:
        return [s.weight for s in LaneReleaseSpec.model_validate(spec).all_steps]
    except ValueError:
        return [s.get("weight", 0) for s in spec.get("steps") or []]


def _outcome(phase: str) -> Outcome:
    return {"Succeeded": "succeeded", "Failed": "rolled back"}.get(phase, "progressing")


def release_view(body: Mapping[str, Any]) -> ReleaseView:
    """The view of one live LaneRelease."""
    metadata, spec = body.get("metadata") or {}, body.get("spec") or {}
    status = body.get("status") or {}
    phase = status.get("phase", "Initial")
    services = [
        ServiceLine(
            s.get("service", ""), s.get("rollout", ""), bool(s.get("ok")),
            [(m.get("name", ""), "-" if m.get("value") is None else f"{m['value']:.4g}",
              m.get("range", ""), bool(m.get("ok"))) for m in s.get("metrics") or []],
        )
        for s in status.get("services") or []
    ]
    rollouts = []
    for m in status.get("rollouts") or []:
        done = "promoted" if m.get("promoted") else "undone" if m.get("undone") else "in lane"
        rollouts.append((m.get("name", ""), done))
    return ReleaseView(
        name=metadata.get("name", ""), namespace=metadata.get("namespace", ""),
        lane=(spec.get("swimLaneRef") or {}).get("name", ""), phase=phase,
        message=status.get("message") or "", outcome=_outcome(phase),
        step=status.get("currentStepIndex", 0), weights=_weights(spec),
        weight=status.get("weight", 0), checks=status.get("checks", 0),
        failed=status.get("failedChecks", 0),
        threshold=(spec.get("analysis") or {}).get("threshold", 5) if spec.get("analysis") else None,
        paused=bool(status.get("paused") or spec.get("paused")),
        services=services, rollouts=rollouts,
        mirror=(spec.get("mirror") or {}).get("percent", 100) if spec.get("mirror") else None,
    )


def format_release(view: ReleaseView) -> RenderableType:
    """The release as a header, its steps, a table of services and its rollouts."""
    head = Text.assemble(
        (f"lanerelease/{view.name}", "bold"), f" ({view.namespace}) lane ", (view.lane, "cyan"),
        f": {view.phase}" + (" (paused)" if view.paused else ""),
        f", entry weight {view.weight}%",
    )
    steps = Text("steps: ")
    for index, weight in enumerate(view.weights, start=1):
        style = "bold green" if index == view.step and view.phase in ("Progressing", "Paused") \
            else ("dim" if index > view.step else "")
        shadow = view.mirror is not None and index == 1
        steps.append(f"shadow {view.mirror}% " if shadow else f"{weight}% ", style=style)
    parts: list[RenderableType] = [head, steps]
    if view.threshold is not None:
        parts.append(Text(f"checks {view.checks}, failed {view.failed}/{view.threshold}"))
    if view.services:
        table = Table("service", "rollout", "metric", "value", "range", "ok", box=None)
        for line in view.services:
            for name, value, bounds, ok in line.metrics or [("-", "-", "-", line.ok)]:
                table.add_row(line.service, line.rollout, name, value, bounds,
                              Text("yes", "green") if ok else Text("no", "red"))
        parts.append(table)
    if view.rollouts:
        parts.append(Text("rollouts: " + ", ".join(f"{n} ({d})" for n, d in view.rollouts)))
    parts.append(Text(view.message))
    return Group(*parts)


def summary_line(view: ReleaseView) -> str:
    """One line per move of the release, for a log."""
    values = "; ".join(
        f"{s.service} " + ", ".join(f"{n} {v}" for n, v, _, _ in s.metrics) for s in view.services
    )
    return (f"{view.phase} step {view.step}/{len(view.weights)} weight {view.weight}%"
            + (f" failed {view.failed}/{view.threshold}" if view.threshold else "")
            + (f" [{values}]" if values else "") + f": {view.message}")


def show_release(
    name: str, *, namespace: str | None = None, watch: bool = False,
    timeout: float | None = None, kubeconfig: str | None = None, context: str | None = None,
    console: Console | None = None,
) -> int:
    """Print a release's status (redrawn until it ends with `watch`); the exit code."""
    # The kubernetes client loads only when a verb talks to a cluster, so the offline verbs
    # (render, trace, graph, convert) start without it.
    from lanes.kube.connect import connect
    from lanes.kube.lanereleases import LaneReleasesApi
    from lanes.kube.rollouts import default_namespace

    namespace = namespace or default_namespace(kubeconfig, context)
    console = console or make_console()
    api = connect(kubeconfig, context)
    try:
        releases = LaneReleasesApi(api)
        body = releases.get(namespace, name)
        if body is None:
            typer.echo(f"error: lanerelease/{name} not found in namespace {namespace}", err=True)
            return 1
        view = release_view(body)

        def reread(old: ReleaseView) -> ReleaseView:
            new = releases.get(namespace, name)
            if new is None:
                return dataclasses.replace(old, message="the release was deleted",
                                           outcome="failed")
            return release_view(new)

        if watch:
            view = watch_view(view, reread, format_release, summary_line, timeout, console)
        else:
            console.print(format_release(view))
        return EXIT_CODES[view.outcome]
    finally:
        api.close()
