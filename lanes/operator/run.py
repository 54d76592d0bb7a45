"""Start the operator: one kopf registry, one Runtime, cluster-wide, no kopf peering.

`serve` is a coroutine so tests and benchmarks can run an operator in a thread with a stop
flag; `run` is the blocking entry point behind `kubectl lane operator`. With an `Election`
in the options, the reconcile workers start only once this replica holds the Lease (see
`leader`); watches, indices and the admission webhook run on every replica.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Any

import kopf
from kubernetes.client import ApiClient

from lanes.kube.lease import LeaseApi

from .handlers import register
from .lanereleases import register as register_lanereleases
from .leader import LeaderElector
from .rollouts import register as register_rollouts
from .runtime import Options, Runtime

log = logging.getLogger("lanes.operator")

# The exit code of a replica that lost its Lease (its supervisor restarts it as a standby).
LOST_LEASE_EXIT = 3


def connection_info(runtime: Runtime, settings: kopf.OperatorSettings) -> kopf.ConnectionInfo:
    """kopf's credentials from the same configuration the kube layer uses."""
    config = runtime.api.configuration
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


def build_registry() -> kopf.OperatorRegistry:
    """A registry with lanes' handlers and a login from the operator's own configuration.

    Lane groups, WorkloadRollouts, LaneReleases and the rollout admission webhook all run in
    one operator.
    """
    registry = register_lanereleases(register_rollouts(register(kopf.OperatorRegistry())))

    def operator_login(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> kopf.ConnectionInfo:
        return connection_info(memo.runtime, settings)

    kopf.on.login(registry=registry)(operator_login)
    register_leadership(registry)
    return registry


def _workers(memo: Any) -> list[Any]:
    """The rollout and lane-release workers, which only the leader runs."""
    return [w for w in (getattr(memo, "rollouts", None), getattr(memo, "lanereleases", None)) if w is not None]


def register_leadership(registry: kopf.OperatorRegistry) -> None:
    """Start and stop leader election, after the other startup handlers made the workers."""

    async def leadership_startup(memo: Any, **_: Any) -> None:
        runtime: Runtime = memo.runtime
        election = runtime.options.election
        if election is None:
            return
        memo.lease_client = ApiClient(runtime.api.configuration)

        async def started() -> None:
            runtime.metrics.leader.set(1)
            runtime.scheduler.start()
            for workers in _workers(memo):
                workers.start()
            runtime.trigger_all(force=True)

        def lost() -> None:
            runtime.metrics.leader.set(0)
            memo.on_lost()

        elector = LeaderElector(
            LeaseApi(memo.lease_client, election.namespace, election.name), election, started, lost
        )
        runtime.api.may_write = lambda: elector.leading
        runtime.metrics.leader.set(0)
        memo.elector = elector
        memo.election_task = asyncio.create_task(elector.run(), name="lanes-leader-election")

    async def leadership_cleanup(memo: Any, **_: Any) -> None:
        elector = getattr(memo, "elector", None)
        if elector is None:
            return
        memo.election_task.cancel()
        await memo.runtime.scheduler.stop()
        for workers in _workers(memo):
            await workers.stop()
        await asyncio.to_thread(elector.release)
        memo.lease_client.close()

    kopf.on.startup(registry=registry, id="leadership-startup")(leadership_startup)
    kopf.on.cleanup(registry=registry, id="leadership-cleanup")(leadership_cleanup)


def exit_lost_lease() -> None:
    """What controller-runtime does when its lease is lost: exit at once, writing nothing more."""
    log.error("the leader Lease was lost; exiting so a fresh process starts as a standby")
    logging.shutdown()
    os._exit(LOST_LEASE_EXIT)


async def serve(
    options: Options,
    *,
    runtime: Runtime | None = None,
    memo: kopf.Memo | None = None,
    stop_flag: Any = None,
    ready_flag: Any = None,
    on_lost: Callable[[], None] | None = None,
) -> None:
    """Run until `stop_flag` is set (or a signal arrives, in the main thread).

    `memo` is the handlers' shared memo, for a caller that reads it (the rollouts' queue) or
    fills it (`webhook_options`); its `runtime` is set here. `on_lost` runs when a leader
    loses its Lease (default: exit the process).
    """
    memo = memo if memo is not None else kopf.Memo()
    memo.runtime = runtime or Runtime(options)
    memo.on_lost = on_lost or exit_lost_lease
    await kopf.operator(
        registry=build_registry(),
        clusterwide=True,
        standalone=True,
        memo=memo,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )


def run(options: Options, log_level: str = "info") -> None:
    """Run the operator in the foreground until interrupted."""
    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    asyncio.run(serve(options))

