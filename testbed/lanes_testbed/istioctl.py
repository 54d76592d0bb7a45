"""Find or build istioctl, whose `analyze` checks the Istio objects lanes generates.

istioctl is built from its Go module at the commit pinned in testbed/lanes_testbed/istioctl/go.mod and
cached beside the control-plane binaries; an `istioctl` already on PATH is not used, so every
machine analyzes with the same release. `go install istioctl@1.30.x` cannot be used: Istio's
go.mod names pseudo-versions the module proxy does not serve, which our go.mod replaces.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from lanes_testbed.binaries import cache_root
from lanes_testbed.gobuild import cached_tool

MODULE_DIR = Path(__file__).parent / "istioctl"
PACKAGE = "istio.io/istio/istioctl/cmd/istioctl"
# analyze exits with this when it found messages at or above --failure-threshold.
EXIT_MESSAGES_FOUND = 79


def pinned_version(go_mod: Path = MODULE_DIR / "go.mod") -> str:
    """The istio.io/istio version our go.mod requires (a pseudo-version on the 1.30 branch)."""
    match = re.search(r"^\s*(?:require\s+)?istio\.io/istio\s+(v\S+)", go_mod.read_text(), re.MULTILINE)
    if match is None:
        raise ValueError(f"{go_mod} does not require istio.io/istio")
    return match.group(1)


def ensure_istioctl(progress: TextIO | None = sys.stderr) -> Path:
    """Return the pinned istioctl executable, building it first if needed (about 5 minutes cold)."""
    version = pinned_version()
    return cached_tool(
        cache_root(),
        "istioctl",
        version,
        MODULE_DIR,
        PACKAGE,
        f"-s -w -X istio.io/istio/pkg/version.buildVersion={version}",
        f"istioctl {version}",
        progress,
    )


@dataclass(frozen=True)
class Message:
    """One finding of `istioctl analyze`, e.g. IST0101 on `VirtualService default/mocka`."""

    code: str
    level: str
    object: str
    text: str

    def __str__(self) -> str:
        return f"{self.level} [{self.code}] ({self.object}) {self.text}"


# `Error [IST0101] (VirtualService ns/name file.yaml:3) Referenced host not found: "x"`
_LINE = re.compile(r"^(?P<level>Error|Warning|Info) \[(?P<code>IST\d{4})\] \((?P<origin>[^)]*)\) (?P<text>.*)$")
_ORIGIN = re.compile(r"^(?P<kind>\S+) (?P<name>\S+)(?: \S+:\d+)?$")
_QUIET = re.compile(r"^(✔ No validation issues found|Skipping analysis)")


def parse_analysis(output: str) -> list[Message]:
    """Read analyze's default (log) output; a line it does not recognise is an error, not noise."""
    messages = []
    for line in output.splitlines():
        if not line.strip() or _QUIET.match(line):
            continue
        found = _LINE.match(line)
        if found is None:
            raise ValueError(f"unrecognised istioctl analyze output: {line!r}")
        origin = _ORIGIN.match(found["origin"])
        subject = f"{origin['kind']} {origin['name']}" if origin else found["origin"]
        messages.append(Message(found["code"], found["level"], subject, found["text"]))
    return messages


@dataclass(frozen=True)
class Ignored:
    """A message that does not concern what lanes generates, and why."""

    code: str
    reason: str
    object: str | None = None  # a regular expression over Message.object; None: any object

    def covers(self, message: Message) -> bool:
        return message.code == self.code and (
            self.object is None or re.fullmatch(self.object, message.object) is not None
        )


IGNORED: tuple[Ignored, ...] = (
    Ignored(
        "IST0102",
        "namespace not labelled for sidecar injection: injection belongs to the mesh install, and "
        "lanes generates no Namespace",
        object=r"Namespace \S+",
    ),
    Ignored(
        "IST0101",
        "the ingress Gateway's selector matches no pod: the Gateway is the mesh install's, and the "
        "local control plane runs no ingress-gateway Deployment",
        object=r"Gateway istio-system/ingressgateway",
    ),
)


def unexpected(messages: Sequence[Message], ignored: Sequence[Ignored] = IGNORED) -> list[Message]:
    """The messages no entry of `ignored` covers."""
    return [m for m in messages if not any(entry.covers(m) for entry in ignored)]


def analyze(
    istioctl: Path, files: Sequence[Path] = (), *, kubeconfig: Path | None = None, timeout: float = 120.0
) -> list[Message]:
    """Run `istioctl analyze -A` over `files` (offline) or a live cluster; return its messages."""
    argv = [str(istioctl), "analyze", "-A", "--output-threshold=Info", "--color=false"]
    if kubeconfig is None:
        argv.append("--use-kube=false")
    else:
        argv.append(f"--kubeconfig={kubeconfig}")
    argv += [str(f) for f in files]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if result.returncode not in (0, EXIT_MESSAGES_FOUND):
        raise RuntimeError(
            f"istioctl analyze failed (exit {result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return parse_analysis(result.stdout)
