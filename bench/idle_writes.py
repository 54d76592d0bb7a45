"""API writes per idle minute with 100 services x 4 lanes (the target is zero).

Usage: python bench/idle_writes.py [--services N] [--lanes N] [--minutes M] [--kubeconfig PATH]

The operator runs as its own process with a short resync, so the idle window includes full
reconciles that re-read and diff every generated object. Writes are counted twice: by the
operator's own `lanes_api_writes_total` metric, and independently by watches on everything
the operator may write (generated objects, groups, lanes, events).
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
import urllib.request
import uuid

from kubernetes import client, config, watch
from prometheus_client.parser import text_string_to_metric_families

from convergence import cluster, create_group, group_bodies, operator_process
from lanes_testbed.inprocess import make_pod

WATCHED = [
    ("networking.istio.io", "v1", "virtualservices"),
    ("networking.istio.io", "v1", "destinationrules"),
    ("lanes.dev", "v1alpha1", "swimlanegroups"),
    ("lanes.dev", "v1alpha1", "swimlanes"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape(port: int) -> dict[str, float]:
    """Totals of the operator's writes and reconciles from its metrics endpoint."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "lanes_api_writes_total":
                totals["writes"] = totals.get("writes", 0) + sample.value
            elif sample.name == "lanes_reconciles_total":
                key = f"reconciles:{sample.labels['result']}"
                totals[key] = totals.get(key, 0) + sample.value
    return totals


class Audit:
    """Counts every change the API server reports on the watched kinds and on events."""

    def __init__(self, api: client.ApiClient):
        self.custom, self.core = client.CustomObjectsApi(api), client.CoreV1Api(api)
        self.changes: list[str] = []
        self._streams: list[watch.Watch] = []
        self._stopped = False
        self._lock = threading.Lock()
        sources = [
            (self.custom.list_cluster_custom_object, args, "/".join(args[1:]))
            for args in WATCHED
        ]
        sources.append((self.core.list_event_for_all_namespaces, (), "events"))
        for lister, args, what in sources:
            version = self._version(lister, args)
            threading.Thread(target=self._follow, args=(lister, args, what, version), daemon=True).start()

    @staticmethod
    def _version(lister, args) -> str:
        listing = lister(*args)
        return listing["metadata"]["resourceVersion"] if isinstance(listing, dict) else listing.metadata.resource_version

    def _follow(self, lister, args, what: str, version: str) -> None:
        stream = watch.Watch()
        self._streams.append(stream)
        try:
            for event in stream.stream(lister, *args, resource_version=version):
                obj = event["object"]
                name = obj["metadata"]["name"] if isinstance(obj, dict) else obj.metadata.name
                with self._lock:
                    self.changes.append(f"{event['type']} {what} {name}")
        except Exception:
            if not self._stopped:
                raise

    def stop(self) -> None:
        self._stopped = True
        for stream in self._streams:
            stream.stop()


def wait_converged(custom: client.CustomObjectsApi, name: str, objects: int, timeout: float = 300.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        group = custom.get_cluster_custom_object("lanes.dev", "v1alpha1", "swimlanegroups", name)
        status = group.get("status") or {}
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or [])
        if ready and status.get("generated") == objects:
            return time.monotonic() - started
        time.sleep(0.2)
    raise TimeoutError(f"group {name} did not converge in {timeout:.0f}s")


def wait_quiet(port: int, quiet: float = 5.0, timeout: float = 120.0) -> None:
    """Until the operator's write count has not moved for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    last, since = scrape(port).get("writes"), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = scrape(port).get("writes")
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
    raise TimeoutError("the operator kept writing")


def run(kubeconfig: str, services: int, lanes: int, minutes: float, resync: float) -> None:
    api = config.new_client_from_config(config_file=kubeconfig)
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    suffix = uuid.uuid4().hex[:6]
    namespace, name = f"idle-{suffix}", f"idle-{suffix}"
    names = [f"svc-{i:03d}" for i in range(services)]
    lane_names = [f"lane{k}-{suffix}" for k in range(lanes)]
    group, lane_bodies = group_bodies(name, namespace, names, lane_names)
    port = free_port()
    started = time.monotonic()
    create_group(api, namespace, group, lane_bodies, names)
    pods = 0
    for i, service in enumerate(names):
        make_pod(core, namespace, f"{service}-0", {"app": service, "lane": lane_names[0]})
        pods += 1
        extra = i % lanes
        if extra:
            make_pod(core, namespace, f"{service}-{extra}", {"app": service, "lane": lane_names[extra]})
            pods += 1
    setup = time.monotonic() - started
    objects = 1 + 2 * services
    with operator_process(kubeconfig, metrics_port=port, resync=resync):
        converge = wait_converged(custom, name, objects)
        wait_quiet(port)
        audit = Audit(api)
        before = scrape(port)
        window = minutes * 60
        time.sleep(window)
        after = scrape(port)
        audit.stop()
    writes = after.get("writes", 0) - before.get("writes", 0)
    reconciles = {
        k.split(":", 1)[1]: int(after[k] - before.get(k, 0)) for k in after if k.startswith("reconciles:") and after[k] - before.get(k, 0)
    }
    print(f"idle writes: {services} services x {lanes} lanes, {pods} ready pods, {objects} generated objects")
    print(f"  setup (services, lanes, pods)      {setup:6.1f} s")
    print(f"  operator start -> group converged  {converge:6.1f} s")
    print(f"  idle window                        {window:6.0f} s  (operator resync every {resync:.0f} s)")
    print(f"  reconciles in the window           {reconciles or 'none'}")
    print(f"  operator writes (own counter)      {writes:6.0f}  = {writes / minutes:.1f} per idle minute")
    print(f"  changes seen by watches            {len(audit.changes):6d}  = {len(audit.changes) / minutes:.1f} per idle minute")
    for change in audit.changes[:20]:
        print(f"    {change}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--lanes", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--resync", type=float, default=15.0, help="operator resync period in seconds")
    parser.add_argument("--kubeconfig", help="an existing cluster; default: start a local control plane")
    args = parser.parse_args()
    with cluster(args.kubeconfig) as kubeconfig:
        run(kubeconfig, args.services, args.lanes, args.minutes, args.resync)


if __name__ == "__main__":
    main()
