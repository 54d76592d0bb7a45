"""`kubectl lane demo --story analysis` in-process: its own stack, both releases decided by
metrics, every check printed, base never erring, and nothing left running afterwards."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from lanes.cli.main import app

from .test_live_story import processes_mentioning


def test_the_analysis_demo_promotes_rolls_back_and_leaves_nothing_running() -> None:
    before = set(processes_mentioning("lanes-demo-"))
    result = CliRunner().invoke(app, ["demo", "--story", "analysis", "--gateway-port", "0",
                                      "--timeout", "120"])
    output = result.output
    assert result.exit_code == 0, output
    assert "$ kubectl set image deployment/mockb-v1" in output
    assert "$ kubectl set env deployment/mockb-v1 fail_percent=100" in output
    assert re.search(r"check \d+  step 1/2  traffic 20%  request-success-rate \S+", output), output
    assert "healthy release: promoted by its metrics" in output
    assert "failing release: rolled back by its metrics" in output
    assert re.search(r"request-success-rate [\d.]+ \(>= 99\) FAIL", output), output
    assert "; 0 base errors" in output
    assert "healthy release promoted, failing release rolled back, base served every request" in output
    assert "did not happen" not in output
    assert set(processes_mentioning("lanes-demo-")) <= before
