"""`kubectl lane demo --story analysis`: two mockb releases decided by metrics on a live stack.

The stack's Prometheus scrapes the mesh Envoy every second and the operator reads mockb's
canary success rate from it each interval. A healthy release (`kubectl set image`) passes its
checks and promotes by itself; a failing one (`kubectl set env ... fail_percent=100`, every
canary answer a 500) fails them and rolls back by itself. A load thread sends canary-tagged,
base-tagged and untagged requests the whole time, so the canary has traffic to judge and
any error seen on base is counted.

The formatting and the verdict are pure functions of the rollout's live object, so they are
tested without a stack; `AnalysisStory` does the actions and watches.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from rich.console import Console
from rich.text import Text


from .livestory import HOP, IMAGE, NAMESPACE, ROUTE_HEADER, TRACE_HEADER, LiveSession, sample_documents
from .story import PATH

ROLLOUT = "rollouts-mockb"
DEPLOYMENT = "mockb-v1"
CANARY_LABEL = "lanes.dev/canary"
# Flagger's layout, the values tests/e2e/test_live_analysis.py uses: a check every 2 s over a
# 10 s window, rolled back at the 4th failed check.
ANALYSIS: dict[str, Any] = {
    "interval": "2s",
    "threshold": 4,
    "metrics": [{"name": "request-success-rate", "interval": "10s", "thresholdRange": {"min": 99}}],
}
STEPS: list[dict[str, Any]] = [{"replicas": 1, "traffic": "20%"}, {"replicas": 1}]
HEALTHY_COMMAND = f"kubectl set image deployment/{DEPLOYMENT} default={IMAGE}:2.0"
FAILING_COMMAND = f"kubectl set env deployment/{DEPLOYMENT} fail_percent=100"
POLL_S = 0.5
LOAD_PAUSE_S = 0.02
INJECTED = "injected failure"  # what the sample app answers when `fail_percent` fails a request

Outcome = tuple[str, str]
PROMOTED: Outcome = ("True", "Promoted")
ROLLED_BACK: Outcome = ("False", "AnalysisFailed")


def analysis_patch() -> dict[str, Any]:
    """The merge patch giving rollouts-mockb its traffic steps and its analysis."""
    return {"spec": {"strategy": {"canary": {"steps": STEPS, "analysis": ANALYSIS}}}}


def check_key(rollout: Mapping[str, Any]) -> tuple[int, str] | None:
    """What identifies the rollout's last check (count and time), None before any check.

    A new key means a new check landed, so the watcher prints one line per check.
    """
    found = (rollout.get("status") or {}).get("analysis") or {}
    checks = int(found.get("checks") or 0)
    if not checks:
        return None
    return checks, str(found.get("lastCheckTime") or "")


def _value(value: float | None) -> str:
    return "no value" if value is None else f"{value:.4g}"


def format_check(rollout: Mapping[str, Any]) -> str:
    """One check as a line: its number, the step and traffic it judged, each metric's value.

    The step is the one the check was made at (`status.analysis.step`, else the canary's
    current step); the traffic is that step's declared share of untagged requests.
    """
    status = rollout.get("status") or {}
    found = status.get("analysis") or {}
    canary = ((rollout.get("spec") or {}).get("strategy") or {}).get("canary") or {}
    steps = canary.get("steps") or []
    step = found.get("step") or (status.get("canaryStatus") or {}).get("currentStepIndex") or 0
    traffic = steps[step - 1].get("traffic") if 1 <= step <= len(steps) else None
    threshold = (canary.get("analysis") or {}).get("threshold")
    metrics = "  ".join(
        f"{m.get('name', '')} {_value(m.get('value'))} ({m.get('range') or '-'}) "
        f"{'ok' if m.get('ok') else 'FAIL'}"
        for m in found.get("metrics") or []
    ) or "no metrics"
    failed = f"{found.get('failedChecks') or 0}/{threshold}" if threshold else str(found.get("failedChecks") or 0)
    return (f"check {found.get('checks') or 0}  step {step}/{len(steps)}  traffic {traffic or '0%'}  "
            f"{metrics}  failed {failed}  {found.get('phase', '')}")


def release_outcome(rollout: Mapping[str, Any]) -> Outcome | None:
    """The `Succeeded` condition (status, reason) once the release has ended, else None."""
    status = rollout.get("status") or {}
    if status.get("phase") not in ("Healthy", "Failed"):
        return None
    return next(((str(c.get("status")), str(c.get("reason"))) for c in status.get("conditions") or []
                 if c.get("type") == "Succeeded"), None)


def release_started(rollout: Mapping[str, Any]) -> bool:
    """Whether a release is under way: the rollout left Healthy for its steps."""
    return (rollout.get("status") or {}).get("phase") in ("Progressing", "Paused", "Promoting", "RollingBack")


def format_outcome(name: str, outcome: Outcome | None, rollout: Mapping[str, Any]) -> Text:
    """How a release ended, with the rollout's message; green when it ended as it should."""
    found = (rollout.get("status") or {}).get("analysis") or {}
    message = (rollout.get("status") or {}).get("message") or ""
    counts = f"{found.get('checks') or 0} checks, {found.get('failedChecks') or 0} failed"
    if outcome == PROMOTED:
        return Text(f"{name} release: promoted by its metrics ({counts})", style="bold green")
    if outcome == ROLLED_BACK:
        return Text(f"{name} release: rolled back by its metrics ({counts}): {message}", style="bold yellow")
    shown = "did not end" if outcome is None else f"ended {outcome[0]}/{outcome[1]}"
    return Text(f"{name} release: {shown} ({counts}) {message}".rstrip(), style="bold red")


def hop_ips(body: str) -> set[str]:
    """The pod IPs a mock-chain answer went through."""
    return {ip for _, _, ip in HOP.findall(body)}


@dataclass
class Tally:
    """What the load saw: requests per lane, and the errors that count against base.

    An untagged request the traffic step sent to a failing canary may fail, so an untagged
    answer with the sample app's injected failure waits in `untagged` until `settle` knows
    every canary pod's IP (the load may see a canary's answer before the watcher sees that
    canary); any other untagged error is a base error at once.
    """

    sent: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    base_errors: list[str] = field(default_factory=list)
    untagged: list[tuple[str, frozenset[str]]] = field(default_factory=list)

    def record(self, lane: str, status: int, body: str) -> None:
        """Count one answer and file its error, if any, as base's or as one to settle."""
        self.sent[lane] = self.sent.get(lane, 0) + 1
        if status == 200:
            return
        self.errors[lane] = self.errors.get(lane, 0) + 1
        line = f"{lane}: HTTP {status} {body.strip()[:120]}"
        if lane == "base":
            self.base_errors.append(line)
        elif lane == "untagged" and INJECTED in body:
            self.untagged.append((line, frozenset(hop_ips(body))))
        elif lane == "untagged":
            self.base_errors.append(line)

    def settle(self, canary_ips: Iterable[str]) -> None:
        """Count as base errors the untagged errors that went through no canary pod."""
        canaries = set(canary_ips)
        self.base_errors += [line for line, ips in self.untagged if not ips & canaries]
        self.untagged = []


def format_load(tally: Tally) -> str:
    """The load's totals per lane, and its errors."""
    lanes = ("canary", "base", "untagged")
    shown = ", ".join(f"{tally.sent.get(l, 0)} {l} ({tally.errors.get(l, 0)} errors)" for l in lanes)
    return f"requests through the gateway: {shown}; {len(tally.base_errors)} base errors"


def missing(healthy: Outcome | None, failing: Outcome | None, tally: Tally) -> list[str]:
    """What did not happen that the demo promises; empty when it all did."""
    wrong = []
    if healthy != PROMOTED:
        wrong.append(f"the healthy release was not promoted by its metrics (saw {healthy or 'no outcome'})")
    if failing != ROLLED_BACK:
        wrong.append(f"the failing release did not roll back by itself (saw {failing or 'no outcome'})")
    if tally.base_errors:
        count = len(tally.base_errors)
        wrong.append(f"{count} request{'s' if count != 1 else ''} on base got an error, "
                     f"first: {tally.base_errors[0]}")
    if not tally.sent:
        wrong.append("no request was sent through the gateway")
    return wrong


class Load:
    """Canary-tagged, base-tagged and untagged requests through the gateway, in a thread.

    `canary_ips` is fed by the watcher with every canary pod IP it sees, so an untagged request
    the traffic step sent to a failing canary does not count against base.
    """

    LANES: Sequence[str] = ("canary", "base", "untagged")

    def __init__(self, gateway_url: str) -> None:
        host, port = gateway_url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.tally = Tally()
        self.canary_ips: set[str] = set()
        self.sent = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, name="analysis-demo-load", daemon=True)

    def ask(self, lane: str) -> tuple[int, str]:
        """One `GET /mock` in a lane (no header for untagged); status 0 when nothing answered.

        Each request has a trace value of its own, as a traced client's does: the sample app
        passes on only that, and the mesh keeps the request's lane by it (trace-ID mode).
        """
        self.sent += 1
        trace = {TRACE_HEADER: f"analysis-{self.sent}"}
        headers = trace if lane == "untagged" else {ROUTE_HEADER: lane, **trace}
        connection = http.client.HTTPConnection(self.host, self.port, timeout=5)
        try:
            connection.request("GET", PATH, headers=headers)
            response = connection.getresponse()
            return response.status, response.read().decode(errors="replace")
        except OSError as error:
            return 0, f"no answer: {error}"
        finally:
            connection.close()

    def run(self) -> None:
        while not self.stop.is_set():
            for lane in self.LANES:
                status, body = self.ask(lane)
                self.tally.record(lane, status, body)
            time.sleep(LOAD_PAUSE_S)

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)
        self.tally.settle(self.canary_ips)


class AnalysisStory(LiveSession):
    """The analysis story's actions and watching, on a running stack.

    Args:
        kubeconfig: the stack's control plane.
        kubectl: the kubectl executable actions run with.
        gateway_url: the stack's gateway.
        sample: the mock-chain sample folder.
        console: where checks and outcomes are printed.
        flavour: the lane group's flavour.
        progress: told what the story waits for.
        timeout: how long one wait (a release's outcome included) may take.
    """

    kubectl_timeout = 180.0
    poll_s = POLL_S

    def __init__(self, kubeconfig: Path, kubectl: Path, gateway_url: str, sample: Path,
                 console: Console, **options: Any) -> None:
        super().__init__(kubeconfig, kubectl, gateway_url, sample, **options)
        self.console = console

    def run(self) -> tuple[Outcome | None, Outcome | None, Tally]:
        """Set up, then the healthy and the failing release under load; what each ended as."""
        self.setup()
        healthy = failing = None
        with Load(self.gateway_url) as load:
            try:
                healthy = self.release("healthy", HEALTHY_COMMAND, load)
                if healthy == PROMOTED:
                    self.wait(lambda: len(self.base_pods()) == 1, "one mockb base pod, the promoted one")
                    failing = self.release("failing", FAILING_COMMAND, load)
            except TimeoutError as error:
                self.console.print(Text(str(error), style="bold red"))
        self.console.print(format_load(load.tally))
        return healthy, failing, load.tally

    def setup(self) -> None:
        """Apply the sample, give rollouts-mockb its steps and analysis, wait until base serves."""
        self.say("kubectl apply --server-side -f " + str(self.sample))
        self.run_kubectl("apply", "--server-side", "--field-manager=kubectl", "-f", "-",
                         input=yaml.safe_dump_all(sample_documents(self.sample, self.flavour)))
        patch = json.dumps(analysis_patch(), separators=(",", ":"))
        self.say(f"kubectl patch workloadrollout/{ROLLOUT} --type=merge -p '{patch}'")
        self.run_kubectl("patch", f"workloadrollout/{ROLLOUT}", "--type=merge", "-p", patch,
                         "-n", NAMESPACE)
        self.wait(lambda: (self.rollout().get("status") or {}).get("phase") == "Healthy",
                  f"{ROLLOUT} to be Healthy")
        self.wait(lambda: Load(self.gateway_url).ask("base")[0] == 200, "base to answer")

    def release(self, name: str, command: str, load: Load) -> Outcome | None:
        """Start a release with `command`, print each check as it lands, return how it ended."""
        self.console.print(Text(f"\n{name} release", style="bold"))
        self.say(command)
        previous = check_key(self.rollout())
        self.run_kubectl(*command.removeprefix("kubectl ").split(), "-n", NAMESPACE)
        self.wait(lambda: release_started(self.rollout()), f"the {name} release to start")
        try:
            return self.watch(name, load, previous)
        finally:
            load.canary_ips |= self.canary_ips()

    def watch(self, name: str, load: Load, previous: tuple[int, str] | None) -> Outcome | None:
        """Print each check as it lands until the release ends; how it ended, None on timeout.

        `previous` is the last check of the release before, never printed as this one's.
        """
        shown = previous
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            rollout = self.rollout()
            load.canary_ips |= self.canary_ips()
            key = check_key(rollout)
            if key is not None and key != shown:
                shown = key
                self.console.print(f"  {format_check(rollout)}")
            outcome = release_outcome(rollout)
            if outcome is not None:
                self.console.print(format_outcome(name, outcome, rollout))
                return outcome
            self.progress(f"{name} release: waiting for the next check")
            time.sleep(POLL_S)
        rollout = self.rollout()
        self.console.print(format_outcome(name, None, rollout))
        return None

    def say(self, command: str) -> None:
        self.console.print(Text(f"  $ {command}", style="yellow"))

    def rollout(self) -> dict[str, Any]:
        return client.CustomObjectsApi(self.api).get_namespaced_custom_object(
            "lanes.dev", "v1alpha1", NAMESPACE, "workloadrollouts", ROLLOUT
        )

    def pods(self) -> list[Any]:
        return client.CoreV1Api(self.api).list_namespaced_pod(NAMESPACE, label_selector="app=mockb").items

    def canary_ips(self) -> set[str]:
        """The IPs of mockb's canary pods now."""
        return {p.status.pod_ip for p in self.pods()
                if CANARY_LABEL in (p.metadata.labels or {}) and p.status and p.status.pod_ip}

    def base_pods(self) -> set[str]:
        """mockb's base pods that are not going away."""
        return {p.metadata.uid for p in self.pods()
                if CANARY_LABEL not in (p.metadata.labels or {}) and not p.metadata.deletion_timestamp}
