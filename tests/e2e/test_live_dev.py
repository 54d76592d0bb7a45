"""`kubectl lane dev up|env|down`: the whole stack in the background, and nothing left after down.

The stack's Prometheus scrapes the proxies and the operator, and the operator is told to ask it;
`dev proxy-config` reads what Istio gave a proxy.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from kubernetes import client, config
from typer.testing import CliRunner

from lanes.cli.main import app
from lanes_testbed.processes import command_line
from lanes.operator.providers.prometheus import query_value

from .chain import get, until
from .test_live_story import processes_mentioning


def wait_scraped(prometheus: str, jobs: list[str], timeout: float = 30.0) -> None:
    """Until the stack's Prometheus has scraped every job in `jobs` successfully (`up` is 1)."""
    deadline = time.monotonic() + timeout
    while True:
        up = {job: query_value(prometheus, f'up{{job="{job}"}}') for job in jobs}
        if all(value == 1.0 for value in up.values()):
            return
        assert time.monotonic() < deadline, f"Prometheus did not scrape every job in {timeout}s: {up}"
        time.sleep(0.5)


GATEWAY = {"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
           "metadata": {"name": "ingressgateway", "namespace": "istio-system"},
           "spec": {"selector": {"istio": "ingressgateway"}, "servers": [
               {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]}}


def apply_gateway(kubeconfig: Path) -> None:
    api = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            "networking.istio.io", "v1", "istio-system", "gateways", GATEWAY)
    finally:
        api.close()


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def _answers(gateway: str) -> int | None:
    try:
        return get(gateway, "/mock")[0]
    except OSError:
        return None


def kubectl_lane(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_up_serves_a_gateway_env_repeats_it_and_down_stops_everything(tmp_path: Path) -> None:
    state = str(tmp_path / "dev")
    try:
        code, out, err = kubectl_lane("dev", "up", "--state-dir", state, "--gateway-port", "0")
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0] == f"export KUBECONFIG={state}/kubeconfig"
        assert lines[1].startswith("export LANES_GATEWAY=http://127.0.0.1:")
        gateway = lines[1].split("=", 1)[1]
        assert lines[2].startswith("export LANES_PROMETHEUS=http://127.0.0.1:")
        assert len(lines) == 3
        prometheus = lines[2].split("=", 1)[1]
        assert "local stack running (flavour istio)" in err and f"Prometheus {prometheus}" in err
        # As on Istio, the gateway listens once a Gateway asks it to; then unknown paths get 404.
        apply_gateway(Path(state, "kubeconfig"))
        until(lambda: _answers(gateway) == 404, "the gateway to serve the Gateway's port 80", timeout=30)
        wait_scraped(prometheus, ["envoy", "lanes-operator"])
        code, listed, _ = kubectl_lane("dev", "proxy-config", "--state-dir", state)
        assert code == 0 and "istio-system  istio-ingressgateway  http://" in listed, listed
        code, routes, _ = kubectl_lane("dev", "proxy-config", "istio-ingressgateway", "--state-dir", state)
        assert code == 0 and routes.startswith("ROUTE TABLE"), routes
        code, _, err = kubectl_lane("dev", "proxy-config", "nobody", "--state-dir", state)
        assert code == 2 and "pod default/nobody has no sidecar in the local stack" in err

        # Parts that die are restarted, as kubelet restarts containers; the rest keeps running.
        for pid_file in ("prometheus/prometheus.pid", "run/operator.pid"):
            pid = int(Path(state, pid_file).read_text())
            os.kill(pid, signal.SIGKILL)
            until(lambda: _pid(Path(state, pid_file)) not in (None, pid), f"{pid_file} restarted",
                  timeout=90)
        wait_scraped(prometheus, ["envoy", "lanes-operator"], timeout=60)
        log = Path(state, "logs", "stack.log")
        until(lambda: all(f"{part} restarted (restart 1)" in log.read_text()
                          for part in ("prometheus", "operator")), "the supervisor's log", timeout=60)
        operator = command_line(int(Path(state, "run", "operator.pid").read_text()))
        assert f"--prometheus-url {prometheus} --metric-source envoy" in operator
        assert processes_mentioning(state)

        assert kubectl_lane("dev", "up", "--state-dir", state, "--gateway-port", "0")[1] == out
        assert kubectl_lane("dev", "env", "--state-dir", state)[:2] == (0, out)
        code, _, err = kubectl_lane("dev", "up", "--state-dir", state, "--flavour", "asm")
        assert code == 1 and "runs flavour istio; `kubectl lane dev down` first" in err
        code, _, err = kubectl_lane("dev", "cluster", "up", "--state-dir", state)
        assert code == 1 and "the full local stack runs in" in err
        code, _, err = kubectl_lane("dev", "cluster", "down", "--state-dir", state)
        assert code == 1 and "stop it with `kubectl lane dev down`" in err
    finally:
        code, out, _ = kubectl_lane("dev", "down", "--state-dir", state)
    assert (code, out) == (0, f"stopped the local stack ({state})\n")
    assert processes_mentioning(state) == []
    assert kubectl_lane("dev", "down", "--state-dir", state)[1] == f"no local stack was running ({state})\n"
    code, _, err = kubectl_lane("dev", "env", "--state-dir", state)
    assert code == 1 and "start one with `kubectl lane dev up`" in err
