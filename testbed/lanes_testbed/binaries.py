"""Find or build the control-plane binaries: etcd, kube-apiserver, kube-controller-manager, kubectl.

They come from one multi-call Go binary (testbed/lanes_testbed/kube) built once per pinned version and
cached under `${XDG_CACHE_HOME:-~/.cache}/lanes/`. `KUBEBUILDER_ASSETS`, the envtest
convention, overrides the build with binaries someone already has.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO

from lanes_testbed.gobuild import go_build

GO_MODULE_DIR = Path(__file__).parent / "kube"
MULTICALL_NAME = "lanes-kube"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")
ASSETS_ENV = "KUBEBUILDER_ASSETS"


@dataclass(frozen=True)
class Versions:
    """The releases pinned in testbed/lanes_testbed/kube/go.mod, the single source of truth."""

    kubernetes: str
    etcd: str

    @property
    def cache_key(self) -> str:
        return f"kube-{self.kubernetes}-etcd-{self.etcd}"


@dataclass(frozen=True)
class Paths:
    """Executables of one control plane.

    `kube_controller_manager` is None when KUBEBUILDER_ASSETS lacks it (envtest ships
    none); the control plane then runs without controllers.
    """

    etcd: Path
    kube_apiserver: Path
    kubectl: Path
    kube_controller_manager: Path | None
    source: Literal["build", "assets"]


def pinned_versions(go_mod: Path = GO_MODULE_DIR / "go.mod") -> Versions:
    """Read the Kubernetes and etcd versions our go.mod requires."""
    text = go_mod.read_text()

    def required(module: str) -> str:
        match = re.search(rf"^\s*{re.escape(module)}\s+(v\S+)", text, re.MULTILINE)
        if match is None:
            raise ValueError(f"{go_mod} does not require {module}")
        return match.group(1)

    return Versions(
        kubernetes=required("k8s.io/kubernetes"), etcd=required("go.etcd.io/etcd/server/v3")
    )


def ldflags(versions: Versions) -> str:
    """Stamp the version, or `/version` reports v0.0.0 and kubectl warns about skew."""
    match = re.fullmatch(r"v(\d+)\.(\d+)\.\d+.*", versions.kubernetes)
    if match is None:
        raise ValueError(f"unexpected Kubernetes version {versions.kubernetes!r}")
    major, minor = match.groups()
    stamps = {
        "k8s.io/component-base/version": versions.kubernetes,
        "k8s.io/client-go/pkg/version": versions.kubernetes,
    }
    flags = ["-s", "-w"]
    for package, version in stamps.items():
        flags += [
            f"-X {package}.gitVersion={version}",
            f"-X {package}.gitMajor={major}",
            f"-X {package}.gitMinor={minor}",
            f"-X {package}.gitTreeState=clean",
        ]
    return " ".join(flags)


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lanes"


def cached_paths(directory: Path) -> Paths:
    return Paths(
        etcd=directory / "etcd",
        kube_apiserver=directory / "kube-apiserver",
        kubectl=directory / "kubectl",
        kube_controller_manager=directory / "kube-controller-manager",
        source="build",
    )


def assets_paths(directory: Path) -> Paths:
    """Use envtest-style binaries, failing loudly on the ones a control plane cannot lack."""
    missing = [name for name in ("etcd", "kube-apiserver", "kubectl") if not (directory / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{ASSETS_ENV}={directory} lacks {', '.join(missing)}")
    manager = directory / "kube-controller-manager"
    return Paths(
        etcd=directory / "etcd",
        kube_apiserver=directory / "kube-apiserver",
        kubectl=directory / "kubectl",
        kube_controller_manager=manager if manager.is_file() else None,
        source="assets",
    )


def is_complete(directory: Path) -> bool:
    binary = directory / MULTICALL_NAME
    return os.access(binary, os.X_OK) and all(
        (directory / name).resolve() == binary.resolve() for name in COMPONENTS
    )


def ensure_binaries(progress: TextIO | None = sys.stderr) -> Paths:
    """Return the control-plane executables, building them first if needed.

    A file lock keeps concurrent callers (pytest-xdist workers, a CLI in another shell)
    from building twice; the later ones wait and reuse the result.
    """
    assets = os.environ.get(ASSETS_ENV)
    if assets:
        return assets_paths(Path(assets))
    versions = pinned_versions()
    directory = cache_root() / versions.cache_key
    if is_complete(directory):
        return cached_paths(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with (cache_root() / f"{versions.cache_key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not is_complete(directory):
            build_into(directory, versions, progress)
    return cached_paths(directory)


def build_into(directory: Path, versions: Versions, progress: TextIO | None) -> None:
    """Build the multi-call binary and give it one name per component."""
    partial = directory / f".{MULTICALL_NAME}.{os.getpid()}"
    try:
        go_build(
            GO_MODULE_DIR,
            partial,
            ldflags(versions),
            what=f"Kubernetes {versions.kubernetes} and etcd {versions.etcd}",
            log_path=directory / "build.log",
            progress=progress,
        )
        partial.replace(directory / MULTICALL_NAME)
    finally:
        partial.unlink(missing_ok=True)
    for name in COMPONENTS:
        link = directory / f".{name}.{os.getpid()}"
        link.unlink(missing_ok=True)
        link.symlink_to(MULTICALL_NAME)
        link.replace(directory / name)


def reported_version(paths: Paths) -> str:
    """Ask kube-apiserver its version, e.g. `v1.35.4`, whatever its source."""
    output = subprocess.run(
        [str(paths.kube_apiserver), "--version"], capture_output=True, text=True, check=True
    ).stdout
    return output.split()[-1]
