"""The operator SIGKILLed while a lane release runs under load, on the dev stack (`dev up`).

The lane story's two releases run as in `test_live_lanerelease`, through the gateway with
untagged, base- and canary-tagged load all along, and the operator process is killed three
times: the healthy release in its 25% entry step and again mid-promotion (some members already
approved, their bases rolling), the failing one once its first check has failed. Each time the
stack's supervisor starts a new operator after its back-off, as kubelet would, and that one
resumes from the release's status: the healthy lane is promoted and the failing one rolled
back as without the kills, no untagged answer mixes versions and no request base served fails.
"""

from __future__ import annotations

import io
import os
import signal
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from rich.console import Console

from lanes.api.swimlanegroup import SwimLaneGroup
from lanes.render import flavour_for
from lanes_testbed import stackd
from lanes_testbed.binaries import ensure_binaries
from lanes_testbed.cli.lanestory import LANE, PROMOTED, ROLLED_BACK, LaneStory, share_ok

from .chain import until

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "mock-chain"


@dataclass
class Kill:
    """One point of a release at which the operator is killed, and the pid it had then.

    `routed`, if set, is the entry weight the gateway's route must give the lane first: the
    release's status names a new weight a moment before the group's route carries it, and a
    kill in that moment would hold the old weight at the gateway for the whole outage (safe,
    but not the step the load counts its answers for).
    """

    release: str
    what: str
    due: Callable[[Mapping[str, Any]], bool]
    routed: int | None = None
    pid: int | None = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class OperatorKiller:
    """Watches the releases' status (`LaneStory.on_status`) and SIGKILLs the operator at each
    kill point, once, and only an operator that was not killed already (one restarted)."""

    def __init__(self, state_dir: Path, kubeconfig: Path, kills: list[Kill]) -> None:
        self.pid_file = state_dir / "run" / "operator.pid"
        self.kills = kills
        self.api = config.new_client_from_config(config_file=str(kubeconfig))

    def close(self) -> None:
        self.api.close()

    def routed(self, lane: str = LANE, group: str = "rollout") -> int | None:
        """The entry weight the group's live gateway route gives `lane`, as lanes reads it."""
        custom = client.CustomObjectsApi(self.api)
        try:
            body = SwimLaneGroup.model_validate(custom.get_cluster_custom_object(
                "lanes.dev", "v1alpha1", "swimlanegroups", group))
            flavour = flavour_for(body.spec.flavour)
            where = flavour.entry_route(body)
            if where is None:
                return None
            route = custom.get_namespaced_custom_object(
                "networking.istio.io", "v1", where[0], "virtualservices", where[1])
        except ApiException:
            return None
        return flavour.entered_weight(route, body, lane)

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def restarted(self) -> int | None:
        """The running operator's pid once it is none of those killed; else None."""
        pid = self.pid()
        killed = {k.pid for k in self.kills}
        return pid if pid is not None and pid not in killed and _alive(pid) else None

    def __call__(self, release: str, body: Mapping[str, Any]) -> None:
        status = body.get("status") or {}
        for kill in self.kills:
            if kill.pid is None and kill.release == release and kill.due(status):
                if kill.routed is not None and self.routed() != kill.routed:
                    return
                pid = self.restarted()
                if pid is not None:
                    kill.pid = pid
                    os.kill(pid, signal.SIGKILL)
                return


KILLS = [
    Kill("lane-v2", "in the 25% entry step",
         lambda s: s.get("phase") == "Progressing" and s.get("weight") == 25, routed=25),
    Kill("lane-v2", "mid-promotion, members approved",
         lambda s: s.get("phase") == "Promoting" and any(r.get("promoted") for r in s.get("rollouts") or [])),
    Kill("lane-v3", "after the failing lane's first failed check",
         lambda s: s.get("phase") == "Progressing" and (s.get("failedChecks") or 0) >= 1),
]


@pytest.fixture(scope="module")
def dev_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    """A `kubectl lane dev up` stack: its supervisor restarts any part that exits."""
    state_dir = tmp_path_factory.mktemp("lanerelease-killed") / "dev"
    try:
        yield state_dir, stackd.up(state_dir, gateway_port=0, progress=None)
    finally:
        stackd.down(state_dir)


def test_an_operator_killed_mid_lane_release_under_load_mixes_no_chain(
    dev_stack: tuple[Path, dict[str, Any]],
) -> None:
    state_dir, info = dev_stack
    killer = OperatorKiller(state_dir, Path(info["kubeconfig"]),
                            [Kill(k.release, k.what, k.due, k.routed) for k in KILLS])
    out = io.StringIO()
    story = LaneStory(Path(info["kubeconfig"]), ensure_binaries(None).kubectl, info["gateway_url"],
                      SAMPLE, Console(file=out, width=200), on_status=killer, timeout=300)
    try:
        healthy, failing, tally = story.run()
    finally:
        story.close()
        killer.close()
    printed = out.getvalue()
    assert [k.what for k in killer.kills if k.pid is None] == [], printed
    new = until(killer.restarted, "an operator started after the last kill", timeout=120)
    log = state_dir / "logs" / "stack.log"
    until(lambda: log.read_text().count("operator restarted (restart") >= len(KILLS),
          "the supervisor to log a restart after every kill", timeout=60)
    assert new not in {k.pid for k in killer.kills}

    assert healthy == PROMOTED, printed
    assert failing == ROLLED_BACK, printed
    assert tally.mixed == [], printed
    assert tally.base_errors == [], printed
    # The gateway kept the step's weight while no operator ran. The shares of the other steps
    # are the lane story's own (test_live_lanerelease): the load files an answer under the
    # weight the release's status names, which the gateway's route follows a moment later.
    lane, total = tally.by_weight.get(25, [0, 0])
    ok, share = share_ok(25, lane, total)
    assert total >= 30 and ok, f"entry 25%: {share:.0%} of {total} untagged answers from the lane"
    assert tally.lane_errors > 0, "the failing canary was never reached"
