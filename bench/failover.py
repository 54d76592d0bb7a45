"""Leader failover: SIGKILL the leading operator, time until the standby leads and acts.

Usage: python bench/failover.py [--trials N] [--lease-duration S] [--renew-deadline S]
                                [--retry-period S] [--kubeconfig PATH]

Two operator processes (`python -m lanes.operator --leader-elect`, the chart's timings by
default: 15 / 10 / 2 s) run against a local control plane. Each trial waits a random part of
a retry period (so the kill lands anywhere between two renewals), SIGKILLs the leader and at
once marks a canary pod Ready, then times (1) until the Lease names the standby and (2) until
the canary's subset and route are in force, written by the new leader. The killed replica is
started again as the next trial's standby. The target is takeover within lease duration + 2 s.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
import uuid

from convergence import Routes, cluster, create_group, group_bodies, lane_routed, report
from kubernetes import client, config

from lanes_testbed.inprocess import delete_pod, make_pod, set_ready


def holder(coordination: client.CoordinationV1Api, namespace: str, lease: str) -> str | None:
    try:
        return coordination.read_namespaced_lease(lease, namespace).spec.holder_identity or None
    except client.exceptions.ApiException as error:
        if error.status == 404:
            return None
        raise


def start(kubeconfig: str, name: str, namespace: str, lease: str, timings: list[str]) -> subprocess.Popen:
    env = {**os.environ, "POD_NAME": name, "POD_NAMESPACE": namespace, "LANES_WEBHOOK": "off"}
    return subprocess.Popen(
        [sys.executable, "-m", "lanes.operator", "--kubeconfig", kubeconfig, "--metrics-port", "-1",
         "--log-level", "warning", "--leader-elect", "--lease-name", lease, *timings],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def wait_for(probe, what: str, timeout: float = 120.0) -> float:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.02)
    return time.monotonic()


def run(kubeconfig: str, trials: int, duration: float, renew: float, retry: float) -> None:
    api = config.new_client_from_config(config_file=kubeconfig)
    core, coordination = client.CoreV1Api(api), client.CoordinationV1Api(api)
    suffix = uuid.uuid4().hex[:6]
    namespace, name, lease = f"failover-{suffix}", f"failover-{suffix}", f"lanes-{suffix}"
    services, lanes = ["mocka", "mockb", "mockc"], [f"base-{suffix}", f"canary-{suffix}"]
    group, lane_bodies = group_bodies(name, namespace, services, lanes)
    create_group(api, namespace, group, lane_bodies, services)
    for service in services:
        make_pod(core, namespace, f"{service}-base", {"app": service, "lane": lanes[0]})
    routes = Routes(api, namespace)
    dr_name, canary = f"lanes-{name}-mockb", lanes[1]
    timings = ["--lease-duration", str(duration), "--renew-deadline", str(renew), "--retry-period", str(retry)]
    procs = {n: start(kubeconfig, n, namespace, lease, timings) for n in ("a", "b")}
    to_lease, to_route = [], []
    try:
        wait_for(lambda: holder(coordination, namespace, lease), "a first leader")
        routes.wait(lambda latest: ("destinationrules", dr_name) in latest, timeout=60)
        for trial in range(trials):
            leader = holder(coordination, namespace, lease)
            standby = "b" if leader == "a" else "a"
            pod = f"mockb-canary-{trial}"
            make_pod(core, namespace, pod, {"app": "mockb", "lane": canary}, ready=False)
            time.sleep(2 * retry + random.uniform(0, retry))  # the standby has seen the Lease move
            procs[leader].send_signal(signal.SIGKILL)
            killed = time.monotonic()
            procs[leader].wait()
            set_ready(core, namespace, pod, True)
            leads = wait_for(lambda: holder(coordination, namespace, lease) == standby, "the standby to lead")
            routed = routes.wait(lambda latest: lane_routed(latest, "mockb", dr_name, canary), timeout=60)
            to_lease.append(leads - killed)
            to_route.append(routed - killed)
            print(f"  trial {trial + 1}: {leader} killed; {standby} leads after {leads - killed:5.2f} s, "
                  f"the change in force after {routed - killed:5.2f} s", flush=True)
            delete_pod(core, namespace, pod)
            routes.wait(lambda latest: not lane_routed(latest, "mockb", dr_name, canary), timeout=60)
            procs[leader] = start(kubeconfig, leader, namespace, lease, timings)
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait()
        routes.stop()
    print(f"failover over {trials} trials: two operator processes, lease {duration:g} s, "
          f"renew deadline {renew:g} s, retry {retry:g} s (target: takeover <= {duration + 2:g} s)")
    report("SIGKILL -> standby holds the Lease", to_lease)
    report("SIGKILL -> change in force", to_route)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--lease-duration", type=float, default=15.0)
    parser.add_argument("--renew-deadline", type=float, default=10.0)
    parser.add_argument("--retry-period", type=float, default=2.0)
    parser.add_argument("--kubeconfig", help="an existing cluster; default: start a local control plane")
    args = parser.parse_args()
    with cluster(args.kubeconfig) as kubeconfig:
        run(kubeconfig, args.trials, args.lease_duration, args.renew_deadline, args.retry_period)


if __name__ == "__main__":
    main()
