"""The mock-chain story as a table, and how what a state shows is checked against it.

Pure: the states (action, the pods it leaves, expected DestinationRule subsets and chains), the
checks and their formatting. Where a state's view comes from is a `Source`: the offline walk
in `demo` renders and traces; the live one (`livestory`) drives a real stack and asks Envoy.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Protocol

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from lanes.api.common import service_key

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

_BY_KEY = {state.key: state for state in STORY}
# A live walk takes the undo branch right at state 2, where the story branches, then releases
# mocka again, which brings state 2 back for 3 and 4: one stack, no reset in between.
AGAIN = replace(
    _BY_KEY["2"], action="set mocka-v1's image to 2.0 again: a new release after the undo", after="U"
)
LIVE_STORY: tuple[State, ...] = (
    _BY_KEY["0"], _BY_KEY["1"], _BY_KEY["2"], _BY_KEY["U"], AGAIN, _BY_KEY["3"], _BY_KEY["4"]
)


@dataclass(frozen=True)
class Seen:
    """What one state shows: DestinationRule subsets per service, the chain per lane header.

    `routes` optionally says, per lane header, how the chain was served (the subsets of each
    hop, `*` for a fallback; or the raw answer). `commands` (what was done to reach the state,
    and what it said) are shown before the checks, `notes` after them.
    """

    subsets: dict[str, tuple[str, ...]]
    chains: dict[str, str]
    routes: dict[str, str] = field(default_factory=dict)
    commands: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    elapsed: float | None = None


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


def check_state(state: State, seen: Seen) -> list[Check]:
    """What a state shows next to what the story says: subsets, then each lane's chain."""
    checks = [Check("DR subsets", describe_subsets(seen.subsets), describe_subsets(state.subsets))]
    checks.extend(
        Check(lane, seen.chains.get(lane, NO_ROUTE), state.chains[lane], seen.routes.get(lane, ""))
        for lane in LANES
    )
    return checks


def steps(source: Source, story: Iterable[State] = STORY) -> Iterator[tuple[State, Seen, list[Check]]]:
    """Each state of the story as the source shows it, with its checks, one at a time."""
    for state in story:
        seen = source.visit(state)
        yield state, seen, check_state(state, seen)


def walk(source: Source, story: Iterable[State] = STORY) -> list[tuple[State, list[Check]]]:
    """Every state of the story with its checks, in story order."""
    return [(state, checks) for state, _, checks in steps(source, story)]


def format_state(
    state: State, checks: list[Check], seen: Seen | None = None, previous: str | None = None
) -> RenderableType:
    """One state: its action, a line per check with the story's value on a mismatch, notes.

    The state it starts from is named when that is not the one shown just before.
    """
    after = f" (from state {state.after})" if state.key == "U" or state.after != previous else ""
    title = Text(f"state {state.key}{after}: {state.action}", style="bold")
    if seen is not None and seen.elapsed is not None:
        title.append(f"  [{seen.elapsed:.1f}s]", style="dim")
    table = Table(box=None, show_header=False, padding=(0, 1, 0, 2))
    table.add_column(style="cyan")
    table.add_column()
    table.add_column()
    for check in checks:
        shown = Text(check.seen)
        if check.detail:
            shown.append(f"\n{check.detail}", style="dim")
        if not check.ok:
            shown.append(f"\nstory: {check.expected}", style="red")
        mark = Text("ok", style="green") if check.ok else Text("MISMATCH", style="bold red")
        table.add_row(check.what, shown, mark)
    commands = [Text(f"  {line}", style="yellow") for line in (seen.commands if seen else ())]
    notes = [Text(f"  {note}", style="dim") for note in (seen.notes if seen else ())]
    return Group(title, *commands, table, *notes)


def format_verdict(results: Iterable[list[Check]]) -> Text:
    """All checks matched, or how many did not."""
    results = list(results)
    failed = sum(not check.ok for checks in results for check in checks)
    total = sum(len(checks) for checks in results)
    if not failed:
        return Text(f"all {total} checks match the story", style="bold green")
    return Text(f"{failed} of {total} checks differ from the story", style="bold red")


def format_heading(label: str, traced: bool = True) -> RenderableType:
    """The walk's title, and for traced chains how to read the subsets of each hop."""
    title = Text(f"mock-chain story — {label}", style="bold")
    if not traced:
        return title
    return Group(
        title,
        Text("(subsets marked * serve as the fallback for a lane without pods there)", style="dim"),
    )


def format_walk(label: str, results: list[tuple[State, list[Check]]]) -> RenderableType:
    """The whole walk under its label, with a closing verdict."""
    shown = []
    previous = None
    for state, checks in results:
        shown.append(format_state(state, checks, previous=previous))
        previous = state.key
    return Group(format_heading(label), *shown, format_verdict(c for _, c in results))
