"""`kubectl lane demo`: the mock-chain story on a real local stack, checked state by state.

The demo starts a stack of its own (control plane, operator, local node, Envoy) in a
temporary directory, applies `samples/mock-chain`, walks the story with real requests through
the gateway, and stops everything at the end. It never uses or disturbs a `kubectl lane dev up`
stack, so it gives the same result on any machine whatever else runs there.

`--offline` walks the same table without any process: objects rendered from the sample's
observation files and requests traced through the call graph.

`--story analysis` tells another story on its own stack: two mockb releases decided by their
metrics, a healthy one promoted and a failing one rolled back (`testbed/lanes_testbed/cli/analysisstory.py`).
`--story lane` releases mocka, mockb and mockc as one lane with a LaneRelease, a healthy change
promoted together and a failing one rolled back together (`testbed/lanes_testbed/cli/lanestory.py`).
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from lanes.api.load import load_observations
from lanes.api.observations import Observations
from lanes.api.swimlane import SwimLane
from lanes.api.swimlanegroup import SwimLaneGroup
from lanes.api.topology import resolve
from lanes.graph import build_graph, explain
from lanes.render import render_group

from lanes.cli.console import make_console
from lanes.cli.inputs import invalid_file, invalid_option, read_input, report_invalid_input
from .story import (
    LANES,
    LIVE_STORY,
    NO_ROUTE,
    PATH,
    Check,
    Seen,
    State,
    destination_rule_subsets,
    format_heading,
    format_state,
    format_verdict,
    format_walk,
    short_name,
    steps,
    walk,
)

if TYPE_CHECKING:
    from lanes_testbed.stack import Stack

    from .livestory import LiveSource

SAMPLE = Path(__file__).resolve().parents[3] / "samples" / "mock-chain"
FLAVOURS = ("istio", "asm")
STORIES = ("chain", "analysis", "lane")


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


def walk_live(
    console: Console, sample: Path, flavour: str, gateway_port: int, timeout: float
) -> bool:
    """Start a stack, walk the live story on it, stop it; True when every state matched."""
    from lanes_testbed.stack import Stack

    from .livestory import LiveSource

    workdir = Path(tempfile.mkdtemp(prefix="lanes-demo-"))
    stack: Stack | None = None
    results: list[list[Check]] = []
    complete = False
    started = time.monotonic()
    console.print(format_heading(f"{LiveSource.label}; flavour {flavour}", traced=False))
    try:
        with console.status("starting the local stack") as status:
            stack = Stack(workdir, flavour=flavour, gateway_port=gateway_port,
                          progress=_ticker(status.update))
            stack.start()
        console.print(_stack_ready(stack, time.monotonic() - started))
        source = LiveSource(stack.kubeconfig, stack.plane.binaries.kubectl, stack.gateway_url, sample,
                            flavour=flavour, timeout=timeout)
        try:
            complete = _walk_states(console, source, results)
        finally:
            source.close()
        console.print(f"{source.requests} requests sent through the gateway")
    except KeyboardInterrupt:
        _stop(console, stack)
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    except Exception as error:  # noqa: BLE001 (reported with the logs to read, then exit 1)
        console.print(Text(f"error: {error}", style="bold red"))
    _stop(console, stack)
    passed = complete and all(check.ok for checks in results for check in checks)
    console.print(format_verdict(results))
    return _finish(console, workdir, started, passed)


def walk_analysis(
    console: Console, sample: Path, flavour: str, gateway_port: int, timeout: float
) -> bool:
    """Start a stack, run the analysis story on it, stop it; True when it all went as told."""
    from .analysisstory import AnalysisStory, missing

    title = "analysis story — live: releases of mockb decided by Prometheus metrics"
    done = "healthy release promoted, failing release rolled back, base served every request"
    return walk_metrics_story(console, sample, flavour, gateway_port, timeout, title,
                              AnalysisStory, missing, done)


def walk_lane(
    console: Console, sample: Path, flavour: str, gateway_port: int, timeout: float
) -> bool:
    """Start a stack, release the canary lane twice as one unit, stop it; True when both
    outcomes happened with no mixed chain and no base error."""
    from .lanestory import LaneStory, missing

    title = ("lane story — live: mocka, mockb and mockc released as one lane, entry weight "
             "10% -> 25% -> 50%, checked per service by Prometheus")
    done = ("healthy lane promoted together, failing lane rolled back together; no untagged "
            "request saw mixed versions, base served every request")
    return walk_metrics_story(console, sample, flavour, gateway_port, timeout, title,
                              LaneStory, missing, done)


def walk_metrics_story(
    console: Console, sample: Path, flavour: str, gateway_port: int, timeout: float,
    title: str, story_class: Any, missing: Any, done: str,
) -> bool:
    """Start a stack, run a story whose `run()` gives what `missing` judges, stop the stack."""
    from lanes_testbed.stack import Stack

    workdir = Path(tempfile.mkdtemp(prefix="lanes-demo-"))
    stack: Stack | None = None
    wrong = ["the story did not run to its end"]
    started = time.monotonic()
    console.print(Text(f"{title}; flavour {flavour}", style="bold"))
    try:
        with console.status("starting the local stack") as status:
            stack = Stack(workdir, flavour=flavour, gateway_port=gateway_port,
                          progress=_ticker(status.update))
            stack.start()
        console.print(_stack_ready(stack, time.monotonic() - started))
        with console.status("") as status:
            story = story_class(stack.kubeconfig, stack.plane.binaries.kubectl, stack.gateway_url,
                                  sample, console, flavour=flavour, progress=_ticker(status.update),
                                  timeout=timeout)
            try:
                wrong = missing(*story.run())
            finally:
                story.close()
    except KeyboardInterrupt:
        _stop(console, stack)
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    except Exception as error:  # noqa: BLE001 (reported with the logs to read, then exit 1)
        console.print(Text(f"error: {error}", style="bold red"))
    _stop(console, stack)
    console.print(_verdict(wrong, done))
    return _finish(console, workdir, started, not wrong)


def _finish(console: Console, workdir: Path, started: float, passed: bool) -> bool:
    """Say how long the demo took; drop its folder when it passed, else point at the logs."""
    console.print(Text(f"demo took {time.monotonic() - started:.1f}s", style="dim"))
    if passed:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        console.print(f"logs kept in {workdir / 'logs'} (components) and {workdir / 'pods'} (pods)")
    return passed


def _verdict(wrong: list[str], done: str) -> Text:
    """A story's closing line, or what did not happen, one line each."""
    if not wrong:
        return Text(done, style="bold green")
    return Text("\n".join(f"did not happen: {line}" for line in wrong), style="bold red")


def _stop(console: Console, stack: Stack | None) -> None:
    if stack is not None:
        with console.status("stopping the local stack"):
            stack.stop()


def _walk_states(console: Console, source: LiveSource, results: list[list[Check]]) -> bool:
    """Visit the live story's states in order, printing each; stop at the first that fails."""
    previous = None
    timings = []
    with console.status("") as status:
        source.progress = _ticker(status.update)
        walker = steps(source, LIVE_STORY)
        for state in LIVE_STORY:
            status.update(f"state {state.key}: {state.action}")
            try:
                _, seen, checks = next(walker)
            except (TimeoutError, RuntimeError) as error:
                console.print(Text(f"state {state.key}: {error}", style="bold red"))
                return False
            results.append(checks)
            console.print(format_state(state, checks, seen, previous))
            timings.append(f"{state.key} {seen.elapsed:.1f}s")
            previous = state.key
            if not all(check.ok for check in checks):
                console.print(Text(f"stopping: state {state.key} does not match the story",
                                   style="bold red"))
                return False
    console.print(Text("timings: " + " · ".join(timings), style="dim"))
    return True


def _ticker(update: Callable[[str], object]) -> Callable[[str], None]:
    """A progress callback that shows how long the current wait has lasted."""
    since = {"text": "", "at": time.monotonic()}

    def say(text: str) -> None:
        if text != since["text"]:
            since["text"], since["at"] = text, time.monotonic()
        update(f"{text}  [dim]{time.monotonic() - since['at']:.0f}s[/dim]")

    return say


def _stack_ready(stack: Stack, elapsed: float) -> Text:
    text = Text(f"local stack ready in {elapsed:.1f}s\n", style="bold")
    text.append(f"  gateway     {stack.gateway_url}\n")
    text.append(f"  KUBECONFIG  {stack.kubeconfig}  (while the demo runs)\n")
    text.append(f"  requests    curl -H 'x-asm-prefer-tag: base|canary' -H 'my-request-id: N' "
                f"{stack.gateway_url}{PATH}", style="dim")
    return text


def _interrupt(*_: object) -> None:
    """SIGTERM stops the demo as Ctrl-C does, so its stack is stopped too."""
    raise KeyboardInterrupt


@report_invalid_input
def demo(
    filename: Annotated[
        Path, typer.Option("-f", "--filename", help="The mock-chain sample.")
    ] = SAMPLE,
    offline: Annotated[
        bool, typer.Option("--offline", help="Walk the story without any process: render and trace.")
    ] = False,
    observed_dir: Annotated[
        Path | None,
        typer.Option(help="Offline: the states' observation files; default: <sample>/observed."),
    ] = None,
    flavour: Annotated[
        str, typer.Option(help="The lane group's flavour: istio (live or offline) or asm (offline: "
                               "its routes need ASM's own mesh).")
    ] = "istio",
    gateway_port: Annotated[
        int, typer.Option(help="The gateway's port; if taken, a free one is used and printed.")
    ] = 8080,
    timeout: Annotated[
        float, typer.Option(help="Seconds a state may take to settle before the demo fails.")
    ] = 90.0,
    story: Annotated[
        str, typer.Option(help="chain: the mock-chain story, state by state; analysis: a healthy "
                               "and a failing release decided by their metrics; lane: mocka, "
                               "mockb and mockc released as one lane.")
    ] = "chain",
) -> None:
    """Walk the mock-chain story on a local stack; exit 0 only if every state matches the story.

    With `--story analysis`: a healthy and a failing mockb release decided by their metrics;
    exit 0 only if the first promotes, the second rolls back by itself and base never errs.
    With `--story lane`: mocka, mockb and mockc released as one lane, a healthy change promoted
    together and a failing one rolled back together; exit 0 only if both happened, no untagged
    request saw mixed versions and base never erred.
    """
    if flavour not in FLAVOURS:
        raise invalid_option("--flavour", f"{flavour!r} is not one of {', '.join(FLAVOURS)}")
    if story not in STORIES:
        raise invalid_option("--story", f"{story!r} is not one of {', '.join(STORIES)}")
    if story in ("analysis", "lane") and offline:
        raise invalid_option("--offline", f"the {story} story needs metrics, so it runs live only")
    if flavour != "istio" and not offline:
        raise invalid_option(
            "--flavour",
            f"the local mesh is open-source Istio, and the {flavour} flavour's routes use ASM's own "
            "extensions (subsets named by label, `fallback`), which it does not have; run the story "
            f"live with --flavour istio, or walk the {flavour} flavour's objects with --offline",
        )
    console = make_console()
    if offline:
        source = OfflineSource(filename, observed_dir or filename / "observed")
        results = walk(source)
        console.print(format_walk(source.label, results))
        passed = all(check.ok for _, checks in results for check in checks)
    else:
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            walker = {"analysis": walk_analysis, "lane": walk_lane}.get(story, walk_live)
            passed = walker(console, filename, flavour, gateway_port, timeout)
        except KeyboardInterrupt:
            print("interrupted; the local stack is stopped", file=sys.stderr)
            raise typer.Exit(130) from None
        finally:
            signal.signal(signal.SIGTERM, previous)
    if not passed:
        raise typer.Exit(1)
