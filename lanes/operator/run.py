"""Start the operator: one kopf registry, one Runtime, cluster-wide, no peering.

`serve` is a coroutine so tests and benchmarks can run an operator in a thread with a stop
flag; `run` is the blocking entry point behind `kubectl lane operator`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from .handlers import register
from .lanereleases import register as register_lanereleases
from .rollouts import register as register_rollouts
from .runtime import Options, Runtime


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
    return registry


async def serve(
    options: Options,
    *,
    runtime: Runtime | None = None,
    memo: kopf.Memo | None = None,
    stop_flag: Any = None,
    ready_flag: Any = None,
) -> None:
    """Run until `stop_flag` is set (or a signal arrives, in the main thread).

    `memo` is the handlers' shared memo, for a caller that reads it (the rollouts' queue) or
    fills it (`webhook_options`); its `runtime` is set here.
    """
    memo = memo if memo is not None else kopf.Memo()
    memo.runtime = runtime or Runtime(options)
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

