"""Every controller of one operator process, made and wired in one place.

The SwimLaneGroup controller (with the stores its watches fill), the WorkloadRollout and the
LaneRelease controllers share one API client (so every write is counted and, with an election,
only the leader writes) and the analysis defaults; each gets what it needs here, passed in,
and none looks another up. `registry` puts every handler on one kopf registry, with the login,
the operator's HTTP endpoints, and the leader election that starts and stops all of their
workers together.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kopf
from kubernetes.client import ApiClient

from lanes.kube.lanereleases import LaneReleasesApi
from lanes.kube.lease import LeaseApi
from lanes.kube.peers import PeersApi
from lanes.kube.rollouts import RolloutsApi

from .checks import AnalysisSettings
from .handlers import register as register_groups
from .controller import Controller
from .lanereleases import LaneReleaseController
from .lanereleases import register as register_lanereleases
from .leader import LeaderElector
from .metrics import MetricsServer
from .modules import ModuleServer
from .peers import PeerController
from .peers import register as register_peers
from .rollouts import RolloutController
from .rollouts import register as register_rollouts
from .runtime import Options, Runtime

log = logging.getLogger("lanes.operator")


@dataclass
class Operator:
    """The controllers of one operator process and what they share."""

    runtime: Runtime
    rollouts: RolloutController
    lanereleases: LaneReleaseController
    peers: PeerController | None = None
    metrics_server: MetricsServer | None = None
    module_server: ModuleServer | None = None

    @property
    def options(self) -> Options:
        """How the operator runs."""
        return self.runtime.options

    @property
    def controllers(self) -> list[Controller]:
        """Every controller, whose workers only the leader runs."""
        peers = [self.peers] if self.peers is not None else []
        return [self.runtime.reconciler, self.rollouts, self.lanereleases, *peers]


def wire(options: Options, runtime: Runtime | None = None) -> Operator:
    """Make every controller, sharing the group runtime's API client and analysis defaults."""
    runtime = runtime or Runtime(options)
    settings = AnalysisSettings(options.prometheus_url, options.metric_source)
    return Operator(
        runtime,
        RolloutController(RolloutsApi(runtime.api), workers=options.rollout_workers,
                          settings=settings),
        LaneReleaseController(LaneReleasesApi(runtime.api), workers=2, settings=settings),
        PeerController(PeersApi(runtime.api)) if options.serve_peers else None,
    )


def connection_info(operator: Operator, settings: kopf.OperatorSettings) -> kopf.ConnectionInfo:
    """kopf's credentials from the same configuration the kube layer uses."""
    config = operator.runtime.api.configuration
    header = config.get_api_key_with_prefix("BearerToken") or config.get_api_key_with_prefix(
        "authorization"
    )
    parts = header.split(" ", 1) if header else []
    scheme, token = (None, None) if not parts else (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    return kopf.ConnectionInfo(
        server=config.host,
        ca_path=config.ssl_ca_cert,
        insecure=not config.verify_ssl,
        scheme=scheme,
        token=token,
        certificate_path=config.cert_file,
        private_key_path=config.key_file,
        trust_env=settings.networking.trust_env,
    )


def registry(operator: Operator, on_lost: Callable[[], None]) -> kopf.OperatorRegistry:
    """A registry with every controller's handlers, the login, and the leader election.

    `on_lost` runs when a leader loses its Lease.
    """
    built = register_groups(kopf.OperatorRegistry(), operator.runtime)
    register_rollouts(built, operator.rollouts)
    register_lanereleases(built, operator.lanereleases)
    if operator.peers is not None:
        register_peers(built, operator.peers)

    def operator_login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo:
        return connection_info(operator, settings)

    kopf.on.login(registry=built)(operator_login)
    register_endpoints(built, operator)
    register_leadership(built, operator, on_lost)
    return built


def register_endpoints(registry: kopf.OperatorRegistry, operator: Operator) -> None:
    """Serve the metrics and the trace-affinity module on every replica, leading or not: a
    probe or a proxy's fetch may reach any of them."""
    options = operator.options

    async def endpoints_startup(**_: Any) -> None:
        served = options.served_module
        if served is not None:
            operator.module_server = ModuleServer(served).start()
            log.info("trace-affinity module (sha256 %s) served on port %d", served.sha256,
                     operator.module_server.port)
        if options.metrics_port is not None:
            operator.metrics_server = MetricsServer(
                operator.runtime.metrics, options.metrics_port, options.metrics_host
            ).start()
            log.info("metrics on port %d", operator.metrics_server.port)

    async def endpoints_cleanup(**_: Any) -> None:
        for server in (operator.metrics_server, operator.module_server):
            if server is not None:
                server.stop()
        operator.metrics_server = operator.module_server = None

    kopf.on.startup(registry=registry, id="endpoints-startup")(endpoints_startup)
    kopf.on.cleanup(registry=registry, id="endpoints-cleanup")(endpoints_cleanup)


def register_leadership(registry: kopf.OperatorRegistry, operator: Operator, on_lost: Callable[[], None]) -> None:
    """Start every controller's workers after the other startup handlers primed the stores:
    at once without an election, else once this replica leads; stop them on cleanup."""
    runtime = operator.runtime
    state: dict[str, Any] = {}

    async def leadership_startup(**_: Any) -> None:
        election = operator.options.election
        if election is None:
            runtime.metrics.leader.set(1)
            for controller in operator.controllers:
                controller.start()
            return
        lease_client = ApiClient(runtime.api.configuration)

        async def started() -> None:
            runtime.metrics.leader.set(1)
            for controller in operator.controllers:
                controller.start()
            runtime.trigger_all(force=True)

        def lost() -> None:
            runtime.metrics.leader.set(0)
            on_lost()

        elector = LeaderElector(
            LeaseApi(lease_client, election.namespace, election.name), election, started, lost
        )
        runtime.api.may_write = lambda: elector.leading
        runtime.metrics.leader.set(0)
        state.update(elector=elector, lease_client=lease_client,
                     task=asyncio.create_task(elector.run(), name="lanes-leader-election"))

    async def leadership_cleanup(**_: Any) -> None:
        elector = state.get("elector")
        if elector is not None:
            state["task"].cancel()
        for controller in operator.controllers:
            await controller.stop()
        if elector is not None:
            await asyncio.to_thread(elector.release)
            state["lease_client"].close()

    kopf.on.startup(registry=registry, id="leadership-startup")(leadership_startup)
    kopf.on.cleanup(registry=registry, id="leadership-cleanup")(leadership_cleanup)
