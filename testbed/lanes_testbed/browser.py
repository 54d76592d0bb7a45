"""Headless Chromium driven over the Chrome DevTools protocol, for the dashboard's browser test.

Chromium comes from Debian's package (`/usr/bin/chromium`); where it is missing the test bed
installs it (`apt-get install -y chromium`), as it fetches its other tools. The protocol is
spoken over the browser's own WebSocket (websocket-client, which the kubernetes client already
needs), so no Node or driver download is involved: a page is opened, JavaScript is evaluated
in it, and screenshots are taken.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import websocket

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1600,1200", "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
)
START_TIMEOUT_S = 60.0


def ensure_chromium(progress: Callable[[str], None] | None = None) -> str:
    """The Chromium executable, installed from Debian's package when missing.

    Raises:
        RuntimeError: when it is missing and cannot be installed, naming why.
    """
    found = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    if found:
        return found
    if progress:
        progress("installing chromium (apt-get install -y chromium)")
    apt = shutil.which("apt-get")
    if apt is None:
        raise RuntimeError("chromium is not installed and apt-get is not available to install it")
    for command in ([apt, "update"], [apt, "install", "-y", "--no-install-recommends", "chromium"]):
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()[-500:]}")
    return shutil.which("chromium") or CHROMIUM


class Browser:
    """One headless Chromium with one page; a context manager.

    Each instance has a fresh profile directory, removed on close.
    """

    def __init__(self, executable: str | None = None) -> None:
        self.executable = executable or ensure_chromium()
        self.profile = Path(tempfile.mkdtemp(prefix="lanes-chromium-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.socket: websocket.WebSocket | None = None
        self._ids = itertools.count(1)

    def __enter__(self) -> Browser:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> Browser:
        """Start Chromium and attach to its first page."""
        self.process = subprocess.Popen(
            [self.executable, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT_S
        while not port_file.exists() or not port_file.read_text().strip():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not start (exit {self.process.poll()})")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", trust_env=False).json()
        page = next(t for t in targets if t.get("type") == "page")
        self.socket = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60,
                                                  suppress_origin=True)
        self.call("Page.enable")
        self.call("Runtime.enable")
        return self

    def close(self) -> None:
        """Stop Chromium and remove its profile."""
        if self.socket is not None:
            self.socket.close()
            self.socket = None
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        shutil.rmtree(self.profile, ignore_errors=True)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """One protocol command's result; the events arriving meanwhile are dropped."""
        if self.socket is None:
            raise RuntimeError("the browser is not started")
        ident = next(self._ids)
        self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result") or {}

    def goto(self, url: str) -> None:
        """Open `url` and wait until its document has loaded."""
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'", timeout=60, what=f"{url} to load")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-able values only)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails'].get('text')}: "
                               f"{result['exceptionDetails'].get('exception', {}).get('description')}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, *, timeout: float, what: str, every: float = 0.2) -> Any:
        """The expression's first truthy value, evaluated every `every` seconds.

        Raises:
            TimeoutError: naming `what` and the page's text.
        """
        deadline = time.monotonic() + timeout
        # An element is not JSON: it comes back as true, so `wait_for("querySelector(...)")` works.
        wrapped = f"(() => {{ const v = ({expression}); return v instanceof Node ? true : v; }})()"
        while time.monotonic() < deadline:
            value = self.evaluate(wrapped)
            if value:
                return value
            time.sleep(every)
        text = self.evaluate("document.body ? document.body.innerText : ''")
        raise TimeoutError(f"waited {timeout:.0f}s for {what}; the page shows:\n{text[:3000]}")

    def click(self, selector: str) -> None:
        """Click the element `selector` names, as a user would (a real mouse event)."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return null; e.scrollIntoView({block: 'center'});"
            " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        if box is None:
            raise LookupError(f"nothing on the page matches {selector}")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left",
                      clickCount=1)

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page into `path`."""
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"],
                               "scale": 1})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path
