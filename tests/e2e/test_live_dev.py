"""`kubectl lane dev up|env|down`: the whole stack in the background, and nothing left after down."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from lanes.cli.main import app

from .chain import get
from .test_live_story import processes_mentioning


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
        assert "local stack running (flavour istio)" in err
        assert get(gateway, "/mock")[0] == 404
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
