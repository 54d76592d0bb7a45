"""The story on a running stack: each state's action done for real, then what it shows, read live.

Actions are what a user would type: `kubectl apply`, `kubectl set image`, `kubectl lane approve`
and `undo`. What a state shows is read from the API server (DestinationRule subsets, rollout
phases) and from real requests through the gateway; after an action the source polls until
the state has settled, that is until two polls in a row show the story's row and the rollouts
are in the phases the next action needs, or until the timeout.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import re
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import typer
import yaml
from kubernetes import client

from lanes.api.workloadrollout import WorkloadRollout
from lanes.kube.connect import connect
from lanes.rollout import Intent, check_intent

from .story import LANES, NO_ROUTE, PATH, SERVICES, Seen, State, check_state, destination_rule_subsets

IMAGE = "registry.cn-beijing.aliyuncs.com/aliacs-app-catalog/go-http-sample"
NAMESPACE = "default"
ROUTE_HEADER = "x-asm-prefer-tag"
TRACE_HEADER = "my-request-id"
HOP = re.compile(r"-> (\w+)\(version: (v[\d.]+), ip: ([\d.]+)\)")
REQUESTS_PER_LANE = 2
SETTLED_POLLS = 2
POLL_S = 0.25

Progress = Callable[[str], None]

# Per state (key, the state it comes from): what the user does, in order.
ACTIONS: dict[tuple[str, str | None], tuple[tuple[str, str], ...]] = {
    ("0", None): (("apply", ""),),
    ("1", "0"): (("image", "mocka"),),
    ("2", "1"): (("image", "mockb"), ("image", "mockc")),
    ("U", "2"): (("undo", "mocka"),),
    ("2", "U"): (("image", "mocka"),),
    ("3", "2"): (("approve", "mockb"),),
    ("4", "3"): (("approve", "mocka"), ("approve", "mockc")),
}
HEALTHY, PAUSED = "Healthy", "Paused"
# The rollout phases a settled state has: what lets the next action go ahead.
PHASES: dict[str, dict[str, str]] = {
    "0": dict.fromkeys(("mocka", "mockb", "mockc"), HEALTHY),
    "1": {"mocka": PAUSED, "mockb": HEALTHY, "mockc": HEALTHY},
    "2": dict.fromkeys(("mocka", "mockb", "mockc"), PAUSED),
    "U": {"mocka": HEALTHY, "mockb": PAUSED, "mockc": PAUSED},
    "3": {"mocka": PAUSED, "mockb": HEALTHY, "mockc": PAUSED},
    "4": dict.fromkeys(("mocka", "mockb", "mockc"), HEALTHY),
}


def command_line(verb: str, service: str, sample: Path) -> str:
    """The command a user types for one action."""
    if verb == "apply":
        return f"kubectl apply --server-side -f {sample}"
    if verb == "image":
        return f"kubectl set image deployment/{service}-v1 default={IMAGE}:2.0"
    return f"kubectl lane {verb} rollout/rollouts-{service}"


def chain_of(body: str) -> str:
    """`-> mocka(version: v1, ip: ...)-> mockb(...)` as `mocka v1 -> mockb v1`."""
    return " -> ".join(f"{app} {version}" for app, version, _ in HOP.findall(body))


def sample_documents(sample: Path, flavour: str) -> list[dict]:
    """The sample's objects, its lane group set to `flavour`."""
    documents = []
    for path in sorted(sample.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            if doc.get("kind") == "SwimLaneGroup":
                doc.setdefault("spec", {})["flavour"] = flavour
            documents.append(doc)
    return documents


@dataclass(frozen=True)
class Answer:
    """One request through the gateway and its answer."""

    lane: str
    request_id: int
    status: int
    body: str

    @property
    def chain(self) -> str:
        if self.status == 404:
            return NO_ROUTE
        if self.status != 200:
            return f"HTTP {self.status}: {self.body.strip()[:80]}"
        return chain_of(self.body) or self.body.strip()[:80]


class LiveSession:
    """What a story driving a running stack shares: its API client, kubectl, and waiting.

    `kubectl_timeout` bounds one kubectl call (None: no bound); `poll_s` is how often a wait
    looks again.
    """

    kubectl_timeout: float | None = None
    poll_s: float = POLL_S

    def __init__(
        self,
        kubeconfig: Path,
        kubectl: Path,
        gateway_url: str,
        sample: Path,
        *,
        flavour: str = "istio",
        progress: Progress | None = None,
        timeout: float = 90.0,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.kubectl = kubectl
        self.gateway_url = gateway_url
        self.sample = sample
        self.flavour = flavour
        self.progress = progress or (lambda _: None)
        self.timeout = timeout
        self.api = connect(str(kubeconfig))

    def close(self) -> None:
        self.api.close()

    def run_kubectl(self, *args: str, input: str | None = None) -> str:
        argv = [str(self.kubectl), f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(argv, input=input, capture_output=True, text=True,
                                timeout=self.kubectl_timeout)
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def rollouts(self) -> Mapping[str, dict]:
        """The rollouts of the story's namespace, by name."""
        items = client.CustomObjectsApi(self.api).list_namespaced_custom_object(
            "lanes.dev", "v1alpha1", NAMESPACE, "workloadrollouts"
        )["items"]
        return {item["metadata"]["name"]: item for item in items}

    def targeted(self, service: str) -> bool:
        """Whether a rollout is Healthy and has labelled its Deployment, so the webhook holds it."""
        rollout = self.rollouts().get(f"rollouts-{service}") or {}
        if (rollout.get("status") or {}).get("phase") != HEALTHY:
            return False
        deployment = client.AppsV1Api(self.api).read_namespaced_deployment(f"{service}-v1", NAMESPACE)
        return (deployment.metadata.labels or {}).get("lanes.dev/rollout") == f"rollouts-{service}"

    def wait(self, check: Callable[[], bool], what: str) -> None:
        self.progress(f"waiting for {what}")
        deadline = time.monotonic() + self.timeout
        while not check():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {self.timeout:.0f}s waiting for {what}")
            time.sleep(self.poll_s)


class LiveSource(LiveSession):
    """A story `Source` acting on a running stack and reading what it shows.

    Args:
        kubeconfig: the stack's control plane.
        kubectl: the kubectl executable to run actions with.
        gateway_url: the stack's gateway, `http://127.0.0.1:PORT`.
        sample: the mock-chain sample folder.
        flavour: the lane group's flavour.
        progress: told what the source does or waits for.
        timeout: how long a state may take to settle.
    """

    label = "live: local control plane, operator, local node and Envoy; real requests"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.requests = 0

    def visit(self, state: State) -> Seen:
        """Do the state's actions, then wait until it settles; report what it shows."""
        started = time.monotonic()
        commands: list[str] = []
        for verb, service in self.actions(state):
            commands.append(f"$ {command_line(verb, service, self.sample)}")
            said = self.act(state, verb, service)
            if said:
                commands.append(said)
        seen = self.settle(state)
        return replace(seen, commands=tuple(commands), elapsed=time.monotonic() - started)

    def actions(self, state: State) -> tuple[tuple[str, str], ...]:
        try:
            return ACTIONS[(state.key, state.after)]
        except KeyError:
            raise ValueError(f"no live action leads to state {state.key} from {state.after}") from None

    def act(self, state: State, verb: str, service: str) -> str:
        """Carry out one action once what it needs holds; return what the command said."""
        if verb == "apply":
            documents = sample_documents(self.sample, self.flavour)
            self.run_kubectl("apply", "--server-side", "--field-manager=kubectl", "-f", "-",
                             input=yaml.safe_dump_all(documents))
            return ""
        rollout = f"rollouts-{service}"
        intent = cast(Intent, verb)
        if verb == "image":
            self.wait(lambda: self.targeted(service), f"{rollout} to be Healthy and target {service}-v1")
            self.run_kubectl("set", "image", f"deployment/{service}-v1", f"default={IMAGE}:2.0",
                             "-n", NAMESPACE)
            return ""
        def allowed() -> bool:
            body = self.rollouts().get(rollout)
            return body is not None and check_intent(WorkloadRollout.model_validate(body), intent) is None

        self.wait(allowed, f"{rollout} to accept `{verb}`")
        return self.request_intent(intent, rollout)

    def request_intent(self, verb: Intent, rollout: str) -> str:
        """`kubectl lane approve|undo rollout/NAME`, through the same code as the CLI."""
        from lanes.cli.intents import request

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                request(verb, f"rollout/{rollout}", NAMESPACE, str(self.kubeconfig), None)
            except typer.Exit as exit_:
                if exit_.exit_code:
                    raise RuntimeError(f"kubectl lane {verb} rollout/{rollout}: {err.getvalue().strip()}") from None
        return out.getvalue().strip()

    def settle(self, state: State) -> Seen:
        """Poll until the state shows its row and its rollout phases, or the timeout passes."""
        deadline = time.monotonic() + self.timeout
        good = 0
        while True:
            seen, phases = self.observe()
            waiting = [f"{c.what}: {c.expected}" for c in check_state(state, seen) if not c.ok]
            waiting += [
                f"rollouts-{s} to be {phase} (now {phases.get(s) or 'no phase'})"
                for s, phase in PHASES[state.key].items() if phases.get(s) != phase
            ]
            good = 0 if waiting else good + 1
            if good >= SETTLED_POLLS:
                return seen
            if time.monotonic() > deadline:
                return replace(seen, notes=(*seen.notes, f"did not settle in {self.timeout:.0f}s; "
                                            f"still waiting for {'; '.join(waiting)}"))
            self.progress(f"state {state.key}: waiting for {waiting[0]}" if waiting
                          else f"state {state.key}: checking it stays so")
            time.sleep(POLL_S)

    def observe(self) -> tuple[Seen, dict[str, str]]:
        """DestinationRule subsets, the chain per lane and the rollout phases, read now."""
        subsets = self.subsets()
        chains: dict[str, str] = {}
        details: dict[str, str] = {}
        for lane in LANES:
            answers = [self.ask(lane) for _ in range(REQUESTS_PER_LANE)]
            found = sorted({a.chain for a in answers})
            chains[lane] = " | ".join(found)
            last = answers[-1]
            details[lane] = f"[{TRACE_HEADER} {last.request_id}] {last.body.strip() or last.status}"
        phases = {
            short: (body.get("status") or {}).get("phase", "")
            for name, body in self.rollouts().items()
            for short in [name.removeprefix("rollouts-")]
        }
        shown = " · ".join(f"{s} {phases.get(s) or '-'}" for s in ("mocka", "mockb", "mockc"))
        return Seen(subsets, chains, details, notes=(f"rollouts: {shown}",)), phases

    def ask(self, lane: str) -> Answer:
        """One `GET /mock` through the gateway in a lane."""
        self.requests += 1
        host, port = self.gateway_url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            connection.request("GET", PATH, headers={ROUTE_HEADER: lane, TRACE_HEADER: str(self.requests)})
            response = connection.getresponse()
            return Answer(lane, self.requests, response.status, response.read().decode(errors="replace"))
        except OSError as error:
            return Answer(lane, self.requests, 0, f"no answer: {error}")
        finally:
            connection.close()

    def subsets(self) -> dict[str, tuple[str, ...]]:
        items = client.CustomObjectsApi(self.api).list_cluster_custom_object(
            "networking.istio.io", "v1", "destinationrules"
        )["items"]
        found = destination_rule_subsets([{**item, "kind": "DestinationRule"} for item in items])
        return {s: found[s] for s in SERVICES if s in found}


