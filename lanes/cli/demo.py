"""`kubectl lane demo`: walk the mock-chain story and check each state against its table.

The story (states, actions, expected DestinationRule subsets and request chains) is encoded
here once. What is *seen* in each state comes from a `Source`: today the offline one, which
renders objects from the state's observation file and traces requests through the call graph;
a live source (real control plane and Envoy) can replace it without touching the checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Protocol

import typer
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from lanes.api.common import service_key
from lanes.api.load import load_observations
from lanes.api.observations import Observations
from lanes.api.swimlane import SwimLane
from lanes.api.swimlanegroup import SwimLaneGroup
from lanes.api.topology import resolve
from lanes.graph import build_graph, explain
from lanes.render import render_group

from .inputs import invalid_file, read_input, report_invalid_input

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "mock-chain"
SERVICES = ("default/mocka", "default/mockb", "default/mockc")
LANES = ("base", "canary")
PATH = "/mock"
NO_ROUTE = "no route at the gateway"


@dataclass(frozen=True)
class State:
    """One row of the story: the action that leads to it and what it must show.

    `pods` is what the action leaves running: per service, the version of each lane's pods.
    """

    key: str
    action: str
    after: str | None
    pods: dict[str, dict[str, str]]
    subsets: dict[str, tuple[str, ...]]
    chains: dict[str, str]


def both(base: str, canary: str) -> dict[str, str]:
    """A service with base pods on one version and canary pods on another."""
    return {"base": base, "canary": canary}


def only(base: str) -> dict[str, str]:
    """A service with base pods only."""
    return {"base": base}


V1 = "mocka v1 -> mockb v1 -> mockc v1"
V2 = "mocka v2 -> mockb v2 -> mockc v2"
BASE = ("base",)
BASE_CANARY = ("base", "canary")

STORY: tuple[State, ...] = (
    State(
        "0",
        "apply inputs",
        None,
        {"default/mocka": only("v1"), "default/mockb": only("v1"), "default/mockc": only("v1")},
        {"default/mocka": BASE, "default/mockb": BASE, "default/mockc": BASE},
        {"base": V1, "canary": V1},
    ),
    State(
        "1",
        "set mocka-v1's image to 2.0",
        "0",
        {
            "default/mocka": both("v1", "v2"),
            "default/mockb": only("v1"),
            "default/mockc": only("v1"),
        },
        {"default/mocka": BASE_CANARY, "default/mockb": BASE, "default/mockc": BASE},
        {"base": V1, "canary": "mocka v2 -> mockb v1 -> mockc v1"},
    ),
    State(
        "2",
        "set mockb-v1 and mockc-v1 images to 2.0",
        "1",
        {
            "default/mocka": both("v1", "v2"),
            "default/mockb": both("v1", "v2"),
            "default/mockc": both("v1", "v2"),
        },
        {"default/mocka": BASE_CANARY, "default/mockb": BASE_CANARY, "default/mockc": BASE_CANARY},
        {"base": V1, "canary": V2},
    ),
    State(
        "3",
        "approve rollouts-mockb",
        "2",
        {
            "default/mocka": both("v1", "v2"),
            "default/mockb": only("v2"),
            "default/mockc": both("v1", "v2"),
        },
        {"default/mocka": BASE_CANARY, "default/mockb": BASE, "default/mockc": BASE_CANARY},
        {"base": "mocka v1 -> mockb v2 -> mockc v1", "canary": V2},
    ),
    State(
        "4",
        "approve rollouts-mocka and rollouts-mockc",
        "3",
        {"default/mocka": only("v2"), "default/mockb": only("v2"), "default/mockc": only("v2")},
        {"default/mocka": BASE, "default/mockb": BASE, "default/mockc": BASE},
        {"base": V2, "canary": V2},
    ),
    State(
        "U",
        "(alternative to 3/4) undo rollouts-mocka while it is in the canary step",
        "2",
        {
            "default/mocka": only("v1"),
            "default/mockb": both("v1", "v2"),
            "default/mockc": both("v1", "v2"),
        },
        {"default/mocka": BASE, "default/mockb": BASE_CANARY, "default/mockc": BASE_CANARY},
        {"base": V1, "canary": "mocka v1 -> mockb v2 -> mockc v2"},
    ),
)


@dataclass(frozen=True)
class Seen:
    """What one state shows: DestinationRule subsets per service, the chain per lane header.

    `routes` optionally says, per lane header, which subset served each hop (`*`: fallback).
    """

    subsets: dict[str, tuple[str, ...]]
    chains: dict[str, str]
    routes: dict[str, str] = field(default_factory=dict)


class Source(Protocol):
    """Where a walk gets what each state shows."""

    label: str

    def visit(self, state: State) -> Seen:
        """Bring about `state` (or read it) and report what it shows."""
        ...


@dataclass(frozen=True)
class Check:
    """One comparison of what a state shows against the story."""

    what: str
    seen: str
    expected: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        """Whether the state shows what the story says."""
        return self.seen == self.expected


def short_name(service: str) -> str:
    """`default/mocka` as `mocka`, the way the sample answers name themselves."""
    return service.split("/", 1)[1]


def describe_subsets(subsets: dict[str, tuple[str, ...]]) -> str:
    """Subsets per service on one line, in the story's a / b / c order."""
    return "  ".join(
        f"{short_name(s)}: {','.join(subsets.get(s, ())) or '-'}" for s in SERVICES
    )


def destination_rule_subsets(objects: list[dict]) -> dict[str, tuple[str, ...]]:
    """The subset names of each generated DestinationRule, keyed by service."""
    return {
        service_key(obj["spec"]["host"]): tuple(s["name"] for s in obj["spec"].get("subsets", []))
        for obj in objects
        if obj.get("kind") == "DestinationRule"
    }


class OfflineSource:
    """States as the sample's observation files describe them; chains traced, not requested.

    A hop's version is the version the story's `pods` say that lane's pods run.
    """

    label = "offline walk: rendered objects and traced requests; no cluster, no Envoy"

    def __init__(self, sample: Path, observed_dir: Path) -> None:
        self.given = read_input(sample)
        if len(self.given.bundle.groups) != 1:
            raise invalid_file(sample, "the story needs exactly one group")
        self.group: SwimLaneGroup = self.given.bundle.groups[0]
        self.lanes: list[SwimLane] = self.given.bundle.lanes
        self.observed_dir = observed_dir

    def observe(self, state: State) -> Observations:
        """The observation file of a state: `state-<key>.yaml`."""
        return load_observations(self.observed_dir / f"state-{state.key}.yaml")

    def visit(self, state: State) -> Seen:
        """Render the state's objects and trace one request per lane."""
        observed = self.observe(state)
        with self.given.locating():
            objects = render_group(self.group, self.lanes, observed)
            topology = resolve(self.group, self.lanes, observed)
        graph = build_graph(topology, observed)
        header = self.group.spec.route_header
        chains: dict[str, str] = {}
        routes: dict[str, str] = {}
        for lane in LANES:
            trace = explain(topology, graph, {header: lane}, PATH)
            if not trace.routed:
                chains[lane] = NO_ROUTE
                continue
            hops = trace.routes[0].hops
            chains[lane] = " -> ".join(
                f"{short_name(hop.service)} "
                f"{state.pods.get(hop.service, {}).get(hop.subset or '', '?')}"
                for hop in hops
            )
            routes[lane] = "subsets " + " -> ".join(
                f"{hop.subset}{'*' if hop.fallback else ''}" for hop in hops
            )
        return Seen(destination_rule_subsets(objects), chains, routes)


def check_state(state: State, seen: Seen) -> list[Check]:
    """What a state shows next to what the story says: subsets, then each lane's chain."""
    checks = [Check("DR subsets", describe_subsets(seen.subsets), describe_subsets(state.subsets))]
    checks.extend(
        Check(lane, seen.chains.get(lane, NO_ROUTE), state.chains[lane], seen.routes.get(lane, ""))
        for lane in LANES
    )
    return checks


def walk(source: Source, story: tuple[State, ...] = STORY) -> list[tuple[State, list[Check]]]:
    """Every state of the story with its checks, in story order."""
    return [(state, check_state(state, source.visit(state))) for state in story]


def format_state(state: State, checks: list[Check]) -> RenderableType:
    """One state: its action, then a line per check with the story's value on a mismatch."""
    after = f" (from state {state.after})" if state.key == "U" else ""
    title = Text(f"state {state.key}{after}: {state.action}", style="bold")
    table = Table(box=None, show_header=False, padding=(0, 1, 0, 2))
    table.add_column(style="cyan")
    table.add_column()
    table.add_column()
    for check in checks:
        seen = Text(check.seen)
        if check.detail:
            seen.append(f"\n{check.detail}", style="dim")
        if not check.ok:
            seen.append(f"\nstory: {check.expected}", style="red")
        mark = Text("ok", style="green") if check.ok else Text("MISMATCH", style="bold red")
        table.add_row(check.what, seen, mark)
    return Group(title, table)


def format_walk(label: str, results: list[tuple[State, list[Check]]]) -> RenderableType:
    """The whole walk under its label, with a closing verdict."""
    failed = sum(not check.ok for _, checks in results for check in checks)
    total = sum(len(checks) for _, checks in results)
    verdict = (
        Text(f"all {total} checks match the story", style="bold green")
        if not failed
        else Text(f"{failed} of {total} checks differ from the story", style="bold red")
    )
    return Group(
        Text(f"mock-chain story — {label}", style="bold"),
        Text("(subsets marked * serve as the fallback for a lane without pods there)", style="dim"),
        *(format_state(state, checks) for state, checks in results),
        verdict,
    )


@report_invalid_input
def demo(
    filename: Annotated[
        Path, typer.Option("-f", "--filename", help="The mock-chain sample.")
    ] = SAMPLE,
    observed_dir: Annotated[
        Path | None,
        typer.Option(help="The states' observation files; default: <sample>/observed."),
    ] = None,
) -> None:
    """Walk the mock-chain story offline; exit 0 only if every state matches the story."""
    source = OfflineSource(filename, observed_dir or filename / "observed")
    results = walk(source)
    Console().print(format_walk(source.label, results))
    if not all(check.ok for _, checks in results for check in checks):
        raise typer.Exit(1)
