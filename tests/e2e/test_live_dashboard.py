"""`kubectl lane dashboard` in a real browser, on the real stack, through two lane releases.

The dev stack runs; the dashboard runs as users run it (`kubectl lane dashboard`, the stack's
kubeconfig and Prometheus); headless Chromium (Debian's) opens the page. Under steady load
through the gateway, a healthy change of the whole lane waits at its first step for approval,
which is clicked on the page, and moves 10% -> 25% -> 50% -> promoted; then a change with
mockc failing every request is rolled back by its analysis. The page must show the graph with
its lanes, each entry weight in turn, mockc's canary success rate marked as failing, the
approve taking effect and the roll back. Screenshots are kept in the test's artefacts folder.
"""

from __future__ import annotations

import io
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from rich.console import Console

from lanes_testbed.browser import Browser
from lanes_testbed.cli.lanestory import LANE, Load, LaneStory, change_commands, lane_release
from lanes_testbed.processes import free_port
from lanes_testbed.stack import METRIC_SOURCE, Stack, child_env

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "mock-chain"
PAGE_TIMEOUT_S = 240.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("dashboard") / "stack", gateway_port=0) as running:
        yield running


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots are kept (printed, so a failed run can be looked at)."""
    folder = tmp_path_factory.mktemp("artefacts") / "dashboard"
    folder.mkdir(parents=True, exist_ok=True)
    print(f"dashboard screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def dashboard(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`kubectl lane dashboard` as a user starts it; its URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("dashboard-log") / "dashboard.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "lanes.cli.main", "dashboard", "--port", str(port),
             "--kubeconfig", str(stack.kubeconfig), "--prometheus-url", stack.prometheus_url,
             "--metric-source", METRIC_SOURCE],
            stdout=out, stderr=subprocess.STDOUT, env=child_env())
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "api/state", trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def release_card(name: str) -> str:
    return f"document.querySelector('article[data-kind=\"lanerelease\"][data-name=\"{name}\"]')"


def card_field(name: str, field: str) -> str:
    return f"({release_card(name)} || {{dataset: {{}}}}).dataset.{field}"


def approve_on_page(browser: Browser, name: str) -> str:
    """Click approve on the release's card until the operator's check lets it through, as a
    user would when the step's first check has not passed yet; the granted answer."""
    card = release_card(name)
    seq = f"Number({card}.querySelector('.answer')?.dataset.seq || 0)"
    deadline = time.monotonic() + PAGE_TIMEOUT_S
    answer = None
    while time.monotonic() < deadline:
        before = browser.evaluate(seq)
        browser.click(f'article[data-name="{name}"] button[data-action="approve"]')
        browser.wait_for(f"{seq} > {before}", timeout=30, what="the approve's answer")
        answer = browser.evaluate(f"[{card}.querySelector('.answer').className, "
                                  f"{card}.querySelector('.answer').innerText]")
        if "granted" in answer[0]:
            return answer[1]
        time.sleep(1)
    raise TimeoutError(f"{name}: approve was refused until the end: {answer}")


def test_a_lane_release_is_watched_approved_and_rolled_back_from_the_page(
    stack: Stack, dashboard: str, artefacts: Path
) -> None:
    out = io.StringIO()
    story = LaneStory(stack.kubeconfig, stack.plane.binaries.kubectl, stack.gateway_url, SAMPLE,
                      Console(file=out, width=200), timeout=180)
    try:
        story.setup()
        with Browser() as browser, Load(stack.gateway_url):
            browser.goto(dashboard)
            browser.wait_for("document.querySelector('.connection.live')", timeout=60,
                             what="the page to be live")
            graph = "document.querySelector('.graph[data-group=\"rollout\"]')"
            lanes = browser.wait_for(f"{graph} && {graph}.dataset.lanes", timeout=PAGE_TIMEOUT_S,
                                     what="the group's graph")
            assert lanes.split() == ["base", "canary"]
            subsets = browser.evaluate(f"{graph}.dataset.subsets").split()
            assert {"default/mocka:base", "default/mockb:base", "default/mockc:base"} <= set(subsets)
            browser.screenshot(artefacts / "1-group.png")

            # The healthy change: 10% waits for approval, clicked on the page.
            healthy = lane_release("lane-v2")
            healthy["spec"]["steps"][0]["pause"] = {}
            story.run_kubectl("apply", "--server-side", "--field-manager=kubectl", "-f", "-",
                              input=yaml.safe_dump(healthy))
            for command in change_commands("2.0"):
                words = command.removeprefix("kubectl ").split()
                story.run_kubectl(*words, "-n", "default")
            browser.wait_for(f"{card_field('lane-v2', 'weight')} === '10'",
                             timeout=PAGE_TIMEOUT_S, what="lane-v2 at entry weight 10%")
            canary_subsets = browser.wait_for(
                f"{graph}.dataset.subsets.includes('default/mockc:canary') && "
                f"{graph}.dataset.subsets", timeout=PAGE_TIMEOUT_S,
                what="the canary lane drawn at every service")
            assert {"default/mocka:canary", "default/mockb:canary"} <= set(canary_subsets.split())
            browser.screenshot(artefacts / "2-waiting-for-approval.png")
            granted = approve_on_page(browser, "lane-v2")
            assert "lanerelease/lane-v2: step 1 approved" in granted
            browser.wait_for(f"{card_field('lane-v2', 'phase')} === 'Succeeded'",
                             timeout=PAGE_TIMEOUT_S, what="lane-v2 promoted")
            history = browser.evaluate(
                f"{release_card('lane-v2')}.querySelector('.history').dataset.history").split()
            assert [w for w in history if w in ("10", "25", "50")] == ["10", "25", "50"], history
            browser.screenshot(artefacts / "3-promoted.png")
            events = browser.evaluate(
                "[...document.querySelectorAll('#events li')].map(e => e.innerText).join('\\n')")
            assert "Approved" in events, events
            story.wait(lambda: not story.canaries(), "every canary of lane-v2 to be gone")

            # The failing change: mockc's canary fails every request; the lane rolls back.
            # Rolled back at the 6th failed check, not the 2nd: the page is given a few
            # seconds of the failing canary before its pods go.
            failing_release = lane_release("lane-v3")
            failing_release["spec"]["analysis"] = {**failing_release["spec"]["analysis"],
                                                   "threshold": 6}
            story.run_kubectl("apply", "--server-side", "--field-manager=kubectl", "-f", "-",
                              input=yaml.safe_dump(failing_release))
            for command in change_commands("3.0", failing="mockc"):
                words = command.removeprefix("kubectl ").split(" -p ")
                args = [*words[0].split(), *(["-p", words[1]] if len(words) > 1 else [])]
                story.run_kubectl(*args, "-n", "default")
            row = f"document.querySelector('tr[data-service=\"default/mockc\"][data-lane=\"{LANE}\"]')"
            browser.wait_for(
                f"{row} && {row}.querySelector('td.request-success-rate.failing') && "
                f"{graph}.dataset.failing.split(' ').includes('default/mockc:canary')",
                timeout=PAGE_TIMEOUT_S,
                what="mockc's canary success rate marked failing, in the table and the graph")
            browser.screenshot(artefacts / "4-mockc-failing.png")
            # mockc's callers answer its errors too, so theirs may fail beside it.
            failing = browser.evaluate(
                f"[...{release_card('lane-v3')}.querySelectorAll("
                "'tr.failing[data-metric=\"request-success-rate\"]')].map(r => r.dataset.service)")
            assert any(service.endswith("mockc") for service in failing), failing
            browser.wait_for(f"{card_field('lane-v3', 'phase')} === 'Failed'",
                             timeout=PAGE_TIMEOUT_S, what="lane-v3 rolled back")
            card_text = browser.evaluate(f"{release_card('lane-v3')}.innerText")
            assert "undone" in card_text, card_text
            events = browser.evaluate(
                "[...document.querySelectorAll('#events li')].map(e => e.innerText).join('\\n')")
            assert "HaltAdvancement" in events and "lanerelease/lane-v3" in events, events
            browser.screenshot(artefacts / "5-rolled-back.png")
    finally:
        story.close()
    for shot in ("1-group", "2-waiting-for-approval", "3-promoted", "4-mockc-failing",
                 "5-rolled-back"):
        assert (artefacts / f"{shot}.png").stat().st_size > 10_000, shot
