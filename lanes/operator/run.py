"""Start the operator: one kopf registry, one Runtime, cluster-wide, no peering.

`serve` is a coroutine so tests and benchmarks can run an operator in a thread with a stop
flag; `run` is the blocking entry point behind `kubectl lane operator`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import kopf

from .handlers import register
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
    """A registry with lanes' handlers and a login from the operator's own configuration."""
    registry = register(kopf.OperatorRegistry())

    def operator_login(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> kopf.ConnectionInfo:
        return connection_info(memo.runtime, settings)

    kopf.on.login(registry=registry)(operator_login)
    return registry


async def serve(
    options: Options,
    *,
    runtime: Runtime | None = None,
    stop_flag: Any = None,
    ready_flag: Any = None,
) -> None:
    """Run until `stop_flag` is set (or a signal arrives, in the main thread)."""
    runtime = runtime or Runtime(options)
    await kopf.operator(
        registry=build_registry(),
        clusterwide=True,
        standalone=True,
        memo=kopf.Memo(runtime=runtime),
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


class OperatorThread:
    """An operator running in a background thread of this process, for tests and benchmarks."""

    def __init__(self, options: Options, runtime: Runtime | None = None):
        self.options = options
        self.runtime = runtime or Runtime(options)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="lanes-operator", daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(
                serve(self.options, runtime=self.runtime, stop_flag=self._stop, ready_flag=self._ready)
            )
        except BaseException as error:  # surfaced by stop()
            self._error = error

    def __enter__(self) -> OperatorThread:
        self._thread.start()
        if not self._ready.wait(60):
            raise RuntimeError("the operator did not start within 60s")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop and join; re-raise what ended the operator abnormally."""
        self._stop.set()
        self._thread.join(60)
        if self._error is not None:
            raise self._error
