"""`python -m lanes_testbed.node`: run a local node until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from lanes_testbed.node.addresses import AddressPool
from lanes_testbed.node.node import LocalNode
from lanes_testbed.node.serve import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lanes_testbed.node", description=__doc__)
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--name", default="lanes-local", help="the Node's name")
    parser.add_argument("--istiod", metavar="HOST:PORT",
                        help="the local istiod's xDS address: every pod gets a sidecar it configures")
    parser.add_argument("--scrape-file", type=Path,
                        help="keep the sidecars' stats endpoints here, for Prometheus' file_sd")
    parser.add_argument("--namespace", action="append", dest="namespaces",
                        help="bind pending pods only in this namespace (repeatable) "
                        "[default: all but kube-system]")
    parser.add_argument("--selector", help="bind only pending pods matching this label selector")
    parser.add_argument("--addresses", metavar="FIRST-LAST",
                        help="loopback range for pod IPs [default: .10-.250 of a 127.N.M block "
                        "that no other process hands out]")
    parser.add_argument("--log-dir", type=Path, help="where container output goes")
    parser.add_argument("--simulate", action="store_true",
                        help="run nothing: mark pods Running and Ready at once (benchmarks only)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.simulate:
        from lanes_testbed.node.simulated import SimulatedNode

        return serve(SimulatedNode(args.kubeconfig, args.name, namespaces=args.namespaces,
                                   label_selector=args.selector))
    if args.addresses:
        first, _, last = args.addresses.partition("-")
        addresses = AddressPool(first, last or first)
    else:
        addresses = AddressPool.own()
    node = LocalNode(args.kubeconfig, args.name, args.istiod, scrape_file=args.scrape_file, namespaces=args.namespaces,
                     label_selector=args.selector, addresses=addresses,
                     log_dir=args.log_dir)
    return serve(node)


if __name__ == "__main__":
    sys.exit(main())
