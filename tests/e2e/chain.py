"""The mock-chain under test: its pods, the objects of a state, and requests through it."""

from __future__ import annotations

import http.client
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from lanes.api.load import Document, load_observations, read_documents
from lanes.api.observations import Observations
from lanes_testbed.mesh import Endpoint, LocalMesh
from lanes.importers import parse_documents
from lanes.render import TraceAffinityModule, render_group

ROOT = Path(__file__).resolve().parents[2]
INPUTS = ROOT / "tests" / "testdata" / "reference" / "asm-mock-chain-inputs.yaml"
OBSERVED = ROOT / "samples" / "mock-chain" / "observed"
CHAIN = ("mocka", "mockb", "mockc")
# The flavours whose routing the local mesh can show. It is Istio's own: the asm flavour's
# routes use ASM's extensions (label-named subsets, `fallback`), which open-source Istio does
# not have, so its output is checked against ASM's generated objects instead (unit tests).
ROUTED_FLAVOURS = ("istio",)
UPSTREAM = {"mocka": "http://mockb:8000/", "mockb": "http://mockc:8000/", "mockc": ""}
IMAGE = "registry.cn-beijing.aliyuncs.com/aliacs-app-catalog/go-http-sample"
TRACE_HEADER = "my-request-id"
HOP = re.compile(r"-> (\w+)\(version: (v[\d.]+), ip: ([\d.]+)\)")
# A sidecar's inbound cluster: every request it handed to its pod's app (Istio may end the
# name with `;`, where its stats tag rules cut).
INBOUND_REQUESTS = r"^cluster\.inbound\|8000\|\|;?\.upstream_rq_total$"


@dataclass(frozen=True)
class Pod:
    service: str
    lane: str
    version: str
    ip: str

    def labels(self) -> dict[str, str]:
        return {"app": self.service, "ASM_TRAFFIC_TAG": self.lane}

    def endpoint(self) -> Endpoint:
        return Endpoint(self.ip, self.labels())


@dataclass(frozen=True)
class Hop:
    app: str
    version: str
    ip: str


class Chain:
    """The running pods of mocka -> mockb -> mockc and the Istio objects for any state."""

    def __init__(self, pods: list[Pod], mesh: LocalMesh, module: TraceAffinityModule) -> None:
        self.pods = pods
        self.mesh = mesh
        self.module = module
        self.by_ip = {p.ip: p for p in pods}
        self.documents = read_documents(INPUTS)
        self.plain = [
            d.body for d in self.documents if d.body["kind"] in {"Service", "Gateway"}
        ]

    def pod(self, service: str, lane: str, version: str) -> Pod:
        wanted = (service, lane, version)
        return next(p for p in self.pods if (p.service, p.lane, p.version) == wanted)

    def endpoints(self, base: Mapping[str, str], canary: Mapping[str, bool]) -> list[Endpoint]:
        """The endpoints of a state: each service's base pod at a version, its canary if any."""
        chosen = [self.pod(s, "base", base[s]) for s in CHAIN]
        chosen += [self.pod(s, "canary", "v2") for s in CHAIN if canary.get(s)]
        return [p.endpoint() for p in chosen]

    def objects(
        self,
        observed: Observations,
        flavour: str,
        weighted: int | None = None,
        trace_affinity: TraceAffinityModule | None | bool = True,
    ) -> list[dict]:
        """Rendered VirtualServices and DestinationRules, plus the Services and the Gateway.

        `weighted` switches the group to weighted entry with that percentage for canary;
        `trace_affinity` adds the WasmPlugins of ASM's trace-ID mode (the sample is in it) for
        the served module (True), another (a module) or none (None).
        """
        if trace_affinity is True:
            trace_affinity = self.module
        documents = self.documents
        if weighted is not None:
            documents = [_weighted(d, weighted) for d in documents]
        bundle = parse_documents(documents)
        group = bundle.groups[0]
        rendered = render_group(group, bundle.lanes, observed, flavour, trace_affinity)
        return [*self.plain, *rendered]

    def apply(self, objects: list[dict], endpoints: list[Endpoint]) -> None:
        self.mesh.update(objects, endpoints)

    def get(
        self,
        path: str = "/mock",
        headers: Mapping[str, str] | None = None,
        *,
        trace: bool = True,
        timeout: float = 10.0,
    ) -> tuple[int, str]:
        """One request through the gateway; with `trace`, a fresh trace value unless given.

        A traced client sends one on every request, and in trace-ID mode it is what keeps a
        request's lane past the first hop.
        """
        headers = dict(headers or {})
        if trace:
            headers.setdefault(TRACE_HEADER, uuid.uuid4().hex)
        return get(self.mesh.gateway_url, path, headers, timeout)

    def hops(self, body: str) -> list[Hop]:
        return [Hop(*m) for m in HOP.findall(body)]


def served(mesh: LocalMesh, admin_url: str) -> int:
    """Requests the sidecar at `admin_url` has handed to its pod's app: a per-pod count."""
    return sum(mesh.stats(INBOUND_REQUESTS, [admin_url]).values())


def get(base_url: str, path: str, headers: Mapping[str, str] | None = None,
        timeout: float = 10.0) -> tuple[int, str]:
    """One GET on a fresh connection: status and body."""
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", path, headers=dict(headers or {}))
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def observations(state: str) -> Observations:
    """The observed lanes of one story state, as the sample's observation files give them."""
    return load_observations(OBSERVED / f"state-{state}.yaml")


def _weighted(document: Document, canary_weight: int) -> Document:
    """The document with weighted entry turned on and the canary lane's share set."""
    body = yaml.safe_load(yaml.safe_dump(document.body))
    kind = body.get("kind")
    if kind == "ASMSwimLaneGroup":
        body["spec"]["ingress"]["ingressRouting"]["ingressRoutingStrategy"] = "weighted"
    elif kind == "ASMSwimLane" and body["metadata"]["name"] == "canary":
        body["spec"]["ingressWeight"] = {
            "destination": {"host": "mocka.default.svc.cluster.local"}, "weight": canary_weight,
        }
    return Document(document.source, body)


def until(check: Callable[[], object], what: str, timeout: float = 60.0,
          every: float = 0.2) -> object:
    """The first truthy result of `check`, polled; fails naming `what` and the last result."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")

