"""`python -m lanes.dev.operator --kubeconfig PATH`: the lane operator with the rollout handlers.

What the local stack runs: lane groups, WorkloadRollouts and the admission webhook that holds
a base Deployment, in one kopf operator process. Webhook settings come from `LANES_WEBHOOK_*`
(see `lanes.operator.webhook.WebhookOptions.from_env`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging

import kopf

from lanes.operator import rollouts
from lanes.operator.run import build_registry
from lanes.operator.runtime import Options, Runtime


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lanes.dev.operator", description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    runtime = Runtime(Options(kubeconfig=args.kubeconfig, metrics_port=None))
    registry = rollouts.register(build_registry())
    asyncio.run(
        kopf.operator(
            registry=registry, clusterwide=True, standalone=True, memo=kopf.Memo(runtime=runtime)
        )
    )


if __name__ == "__main__":
    main()
