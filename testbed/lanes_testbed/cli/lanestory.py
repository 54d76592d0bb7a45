"""`kubectl lane demo --story lane`: mocka, mockb and mockc released as one unit on a live stack.

A LaneRelease puts 10%, 25%, then 50% of untagged requests into the canary lane, where the
new version of all three services runs, and the operator checks every service's canary
success rate from Prometheus each interval. The healthy change (all three on 2.0) passes and
is promoted together; the next change (all three on 3.0, mockc answering every request 500 via
the sample app's `fail_percent`) fails mockc's checks and the whole lane is rolled back
together. A load thread sends untagged, base-tagged and canary-tagged requests the whole time
and classifies every untagged answer's chain: one version end to end, or mixed.

The classification and the printed lines are pure functions, tested without a stack;
`LaneStory` does the actions and watches.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from rich.console import Console
from rich.text import Text

from .analysisstory import INJECTED
from .analysisstory import Load as GatewayLoad
from .livestory import HOP, IMAGE, NAMESPACE, LiveSession, sample_documents

SERVICES = ("mocka", "mockb", "mockc")
LANE = "canary"
WEIGHTS = (10, 25, 50)
# A check every 2 s over a 10 s window (the analysis story's), rolled back at the 2nd failure.
ANALYSIS: dict[str, Any] = {
    "interval": "2s",
    "threshold": 2,
    "metrics": [{"name": "request-success-rate", "interval": "10s", "thresholdRange": {"min": 99}}],
}
# The local stack's Envoy takes a route change within milliseconds; a second is ample.
ROUTE_SETTLE = "1s"
POLL_S = 0.25
LOAD_PAUSE_S = 0.01
SETTLE_S = 0.5
"""Answers within this long of an entry weight change are not counted for either weight: the
route in force at the gateway follows the release's status a moment later."""

Outcome = tuple[str, str]
PROMOTED: Outcome = ("True", "Promoted")
ROLLED_BACK: Outcome = ("False", "AnalysisFailed")


def lane_release(name: str) -> dict[str, Any]:
    """The LaneRelease of one change: the canary lane's rollouts, entry 10% -> 25% -> 50%."""
    return {
        "apiVersion": "lanes.dev/v1alpha1", "kind": "LaneRelease",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"swimLaneRef": {"name": LANE}, "steps": [{"weight": w} for w in WEIGHTS],
                 "analysis": ANALYSIS, "routeSettle": ROUTE_SETTLE},
    }


def change_commands(version: str, failing: str | None = None) -> list[str]:
    """What a user types to put every service on `version`, `failing` also failing every
    request (one template change, so its canary starts once)."""
    commands = []
    for service in SERVICES:
        if service == failing:
            patch = {"spec": {"template": {"spec": {"containers": [{
                "name": "default", "image": f"{IMAGE}:{version}",
                "env": [{"name": "fail_percent", "value": "100"}]}]}}}}
            commands.append(f"kubectl patch deployment/{service}-v1 -p "
                            f"{json.dumps(patch, separators=(',', ':'))}")
        else:
            commands.append(f"kubectl set image deployment/{service}-v1 default={IMAGE}:{version}")
    return commands


def chain_versions(body: str) -> list[str]:
    """The version of every hop of a mock-chain answer, in order."""
    return [version for _, version, _ in HOP.findall(body)]


@dataclass
class Tally:
    """What the untagged load saw: answers per entry weight by chain, and the errors.

    `by_weight[w]` counts, for answers sent while the entry weight was `w`, those whose chain
    ran the new version end to end (`lane`) and all answers (`total`). `mixed` lists answers
    whose chain mixed versions of the lane's services; `base_errors` errors of requests base
    served (untagged ones that did not meet the failing canary, and base-tagged ones). An
    untagged answer with the failing canary's injected error entered the lane.
    """

    by_weight: dict[int, list[int]] = field(default_factory=dict)
    mixed: list[str] = field(default_factory=list)
    base_errors: list[str] = field(default_factory=list)
    lane_errors: int = 0
    sent: dict[str, int] = field(default_factory=dict)

    def record(self, lane: str, status: int, body: str, weight: int | None, new: str | None
               ) -> None:
        """Count one answer; `weight` None while the route may be changing."""
        self.sent[lane] = self.sent.get(lane, 0) + 1
        entered: bool | None = None
        if status != 200:
            if lane != "base" and INJECTED in body:
                self.lane_errors += 1
                entered = True
            elif lane != "canary":
                self.base_errors.append(f"{lane}: HTTP {status} {body.strip()[:120]}")
        elif lane == "untagged":
            versions = chain_versions(body)
            if len(set(versions)) > 1:
                self.mixed.append(" -> ".join(versions))
            elif versions:
                entered = versions[0] == new
        if lane == "untagged" and entered is not None and weight is not None and new is not None:
            counts = self.by_weight.setdefault(weight, [0, 0])
            counts[0] += entered
            counts[1] += 1


def share_ok(weight: int, lane: int, total: int) -> tuple[bool, float]:
    """Whether `lane` of `total` untagged answers is a fair sample of `weight` percent.

    Each untagged request enters the lane with probability weight/100, independently, so the
    share seen is binomial: it is accepted within 4 standard deviations (about 1 in 16,000 of
    honest samples falls outside), and never tighter than 5 points for small samples.
    """
    p = weight / 100
    share = lane / total if total else 0.0
    tolerance = max(4 * (p * (1 - p) / max(total, 1)) ** 0.5, 0.05)
    return total > 0 and abs(share - p) <= tolerance, share


def format_check(release: Mapping[str, Any]) -> str:
    """One check of the lane as a line: step, entry weight, each service's success rate."""
    status = release.get("status") or {}
    weights = [s.get("weight") for s in (release.get("spec") or {}).get("steps") or []]
    services = "  ".join(
        f"{s.get('service')} " + " ".join(
            f"{'-' if m.get('value') is None else format(m['value'], '.4g')}"
            f"{'%' if m.get('name') == 'request-success-rate' else ''} "
            f"{'ok' if m.get('ok') else 'FAIL'}" for m in s.get("metrics") or [])
        for s in status.get("services") or []
    )
    threshold = ((release.get("spec") or {}).get("analysis") or {}).get("threshold")
    step = status.get("checkStep") or status.get("currentStepIndex", 0)
    weight = weights[step - 1] if 1 <= step <= len(weights) else status.get("weight", 0)
    return (f"check {status.get('checks', 0)}  step {step}/"
            f"{len(weights)}  entry {weight}%  {services}  failed "
            f"{status.get('failedChecks', 0)}/{threshold}")


def release_outcome(release: Mapping[str, Any]) -> Outcome | None:
    """The `Succeeded` condition (status, reason) once the release ended, else None."""
    status = release.get("status") or {}
    if status.get("phase") not in ("Succeeded", "Failed"):
        return None
    return next(((str(c.get("status")), str(c.get("reason"))) for c in status.get("conditions")
                 or [] if c.get("type") == "Succeeded"), None)


def format_shares(tally: Tally) -> list[str]:
    """Per entry weight, the share of untagged answers the lane served."""
    lines = []
    for weight in sorted(tally.by_weight):
        lane, total = tally.by_weight[weight]
        if weight in (0, 100):
            continue
        ok, share = share_ok(weight, lane, total)
        lines.append(f"entry {weight}%: {lane}/{total} untagged answers from the lane "
                     f"({share:.0%}){'' if ok else ' OUT OF RANGE'}")
    return lines


def missing(healthy: Outcome | None, failing: Outcome | None, tally: Tally) -> list[str]:
    """What did not happen that the demo promises; empty when it all did."""
    wrong = []
    if healthy != PROMOTED:
        wrong.append(f"the healthy lane was not promoted together (saw {healthy or 'no outcome'})")
    if failing != ROLLED_BACK:
        wrong.append(f"the failing lane was not rolled back together (saw {failing or 'no outcome'})")
    if tally.mixed:
        wrong.append(f"{len(tally.mixed)} untagged answers mixed versions, first: {tally.mixed[0]}")
    if tally.base_errors:
        wrong.append(f"{len(tally.base_errors)} requests served by base got an error, first: "
                     f"{tally.base_errors[0]}")
    for weight in WEIGHTS:
        lane, total = tally.by_weight.get(weight, [0, 0])
        if not total:
            continue
        ok, share = share_ok(weight, lane, total)
        if not ok:
            wrong.append(f"at entry {weight}% the lane served {share:.0%} of {total} untagged answers")
    return wrong


class Load(GatewayLoad):
    """Untagged (twice as many), base- and canary-tagged requests through the gateway.

    `weight` and `new` are set by the watcher: the entry weight in force (None while it
    changes) and the version the lane runs.
    """

    LANES = ("untagged", "untagged", "base", "canary")

    def __init__(self, gateway_url: str) -> None:
        super().__init__(gateway_url)
        self.lane_tally = Tally()
        self.weight: int | None = None
        self.new: str | None = None

    def run(self) -> None:
        while not self.stop.is_set():
            for lane in self.LANES:
                weight, new = self.weight, self.new
                status, body = self.ask(lane)
                if self.weight != weight:
                    weight = None
                self.lane_tally.record(lane, status, body, weight, new)
            time.sleep(LOAD_PAUSE_S)


class LaneStory(LiveSession):
    """The lane story's actions and watching, on a running stack.

    `on_status`, if given, sees each release's body at every poll of the watch (release name,
    body), so a fault can be injected at a chosen point of a release.
    """

    kubectl_timeout = 180.0
    poll_s = POLL_S

    def __init__(self, kubeconfig: Path, kubectl: Path, gateway_url: str, sample: Path,
                 console: Console, on_status: Callable[[str, Mapping[str, Any]], None] | None = None,
                 **options: Any) -> None:
        super().__init__(kubeconfig, kubectl, gateway_url, sample, **options)
        self.console = console
        self.on_status = on_status

    def run(self) -> tuple[Outcome | None, Outcome | None, Tally]:
        """Set up, then the healthy and the failing change under load; how each ended."""
        self.setup()
        healthy = failing = None
        with Load(self.gateway_url) as load:
            try:
                healthy = self.release("healthy", "lane-v2", "2.0", None, load)
                if healthy == PROMOTED:
                    failing = self.release("failing", "lane-v3", "3.0", "mockc", load)
            except TimeoutError as error:
                self.console.print(Text(str(error), style="bold red"))
        tally = load.lane_tally
        for line in format_shares(tally):
            self.console.print(f"  {line}")
        self.console.print(
            f"untagged answers: {tally.sent.get('untagged', 0)}, {len(tally.mixed)} with mixed "
            f"versions; {len(tally.base_errors)} base errors; {tally.lane_errors} errors from "
            "the failing lane")
        return healthy, failing, tally

    def setup(self) -> None:
        """Apply the sample; wait until every rollout targets its base and base answers."""
        self.say(f"kubectl apply --server-side -f {self.sample}")
        self.run_kubectl("apply", "--server-side", "--field-manager=kubectl", "-f", "-",
                         input=yaml.safe_dump_all(sample_documents(self.sample, self.flavour)))
        self.wait(lambda: all(self.targeted(s) for s in SERVICES),
                  "every rollout to be Healthy and target its Deployment")
        self.wait(lambda: Load(self.gateway_url).ask("base")[0] == 200, "base to answer")

    def release(self, name: str, release: str, version: str, failing: str | None,
                load: Load) -> Outcome | None:
        """Create the release, make the change, print each check, return how it ended."""
        self.console.print(Text(f"\n{name} change: mocka, mockb, mockc {version}"
                                + (f", {failing} failing" if failing else ""), style="bold"))
        body = lane_release(release)
        self.say(f"kubectl apply -f lanerelease-{release}.yaml  # lane {LANE}, entry "
                 + " -> ".join(f"{w}%" for w in WEIGHTS))
        self.run_kubectl("apply", "--server-side", "--field-manager=kubectl", "-f", "-",
                         input=yaml.safe_dump(body))
        for command in change_commands(version, failing):
            self.say(command)
            words = command.removeprefix("kubectl ").split(" -p ")
            args = [*words[0].split(), *(["-p", words[1]] if len(words) > 1 else [])]
            self.run_kubectl(*args, "-n", NAMESPACE)
        load.new = f"v{version.split('.')[0]}"
        return self.watch(name, release, load)

    def watch(self, name: str, release: str, load: Load) -> Outcome | None:
        """Print each check as it lands until the release ends."""
        shown: int | None = None
        weight = None
        changed = time.monotonic()
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            body = self.release_body(release)
            if self.on_status is not None:
                self.on_status(release, body)
            status = body.get("status") or {}
            if status.get("weight", 0) != weight:
                weight, changed = status.get("weight", 0), time.monotonic()
                load.weight = None
            elif time.monotonic() - changed >= SETTLE_S:
                load.weight = weight
            key = status.get("checks")
            if key and key != shown:
                shown = key
                self.console.print(f"  {format_check(body)}")
            outcome = release_outcome(body)
            if outcome is not None:
                load.weight = None
                self.console.print(Text(f"{name} change: {status.get('message', '')}",
                                        style="bold green" if outcome in (PROMOTED, ROLLED_BACK)
                                        else "bold red"))
                self.wait(lambda: not self.canaries(), "every canary to be gone")
                return outcome
            self.progress(f"{name} change: {status.get('phase', 'Initial')}: "
                          f"{status.get('message', '')}"[:100])
            time.sleep(POLL_S)
        self.console.print(Text(f"{name} change: did not end in {self.timeout:.0f}s",
                                style="bold red"))
        return None

    def say(self, command: str) -> None:
        self.console.print(Text(f"  $ {command}", style="yellow"))

    def release_body(self, name: str) -> dict[str, Any]:
        return client.CustomObjectsApi(self.api).get_namespaced_custom_object(
            "lanes.dev", "v1alpha1", NAMESPACE, "lanereleases", name)

    def canaries(self) -> list[Any]:
        return client.AppsV1Api(self.api).list_namespaced_deployment(
            NAMESPACE, label_selector="lanes.dev/canary").items

