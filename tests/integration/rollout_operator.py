"""`python -m tests.integration.rollout_operator KUBECONFIG`: the lane and rollout handlers as
one operator process, so crash tests can SIGKILL it. Webhook settings come from
`LANES_WEBHOOK_*` (see `lanes.operator.webhook.WebhookOptions.from_env`)."""

from __future__ import annotations

import asyncio
import logging
import sys

import kopf

from lanes.operator import rollouts
from lanes.operator.run import build_registry
from lanes.operator.runtime import Options, Runtime


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    runtime = Runtime(Options(kubeconfig=sys.argv[1], metrics_port=None))
    registry = rollouts.register(build_registry())
    asyncio.run(
        kopf.operator(
            registry=registry, clusterwide=True, standalone=True, memo=kopf.Memo(runtime=runtime)
        )
    )


if __name__ == "__main__":
    main()
