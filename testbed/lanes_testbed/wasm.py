"""Build the trace-affinity proxy-wasm module from its Rust source, cached like the control plane.

The module (lanes/traceaffinity, the `proxy-wasm` SDK) gives plain Istio ASM's trace-ID lane
affinity; the local mesh loads it into its Envoy, and the operator image carries it for the
chart to serve to Istio's proxies. It is built with cargo for `wasm32-wasip1`, a target this
build adds with rustup when it is missing. The cache key is a digest of the sources and the
Rust version, so an edited source is rebuilt; cargo's own build folder sits beside it, so a
rebuild compiles only the module.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections import deque
from importlib import resources
from pathlib import Path
from typing import TextIO

from lanes_testbed.binaries import cache_root
from lanes_testbed.gobuild import cached_install, format_elapsed

MODULE_DIR = Path(str(resources.files("lanes") / "traceaffinity"))
MODULE_FILE = "traceaffinity.wasm"
# The Envoy stats the module keeps (Envoy prefixes a Wasm module's metrics with `wasmcustom.`).
STAT_PREFIX = "wasmcustom.lanes_trace_affinity."
STATS = ("hits", "misses", "evictions", "expired", "remembered")
# The module's build; the Dockerfile's build stage runs the same one (a unit test compares them),
# so the module in the operator image is the one the local mesh and tests load.
TARGET = "wasm32-wasip1"
BUILD_FLAGS = ("--release", "--locked", "--target", TARGET)
# Where cargo leaves the module, under its build folder.
BUILT_PATH = f"{TARGET}/release/{MODULE_FILE}"


class WasmBuildError(RuntimeError):
    """The module's build failed, or Rust or its Wasm target is not installed."""


def cargo_executable() -> str:
    """Find cargo, naming the way out when it is missing."""
    cargo = shutil.which("cargo")
    if cargo is None:
        raise WasmBuildError(
            "the trace-affinity module is built with Rust, but `cargo` is not on PATH; "
            "install Rust with rustup, then run again (the build adds the wasm32-wasip1 target)"
        )
    return cargo


def cargo_env() -> dict[str, str]:
    """The environment cargo runs in: its build folder in the cache, never in the source."""
    return {**os.environ, "CARGO_TARGET_DIR": str(cache_root() / "traceaffinity-target")}


def source_digest(module_dir: Path = MODULE_DIR) -> str:
    """A digest of the module's Rust sources, Cargo.toml and Cargo.lock, naming the build."""
    digest = hashlib.sha256()
    paths = [module_dir / "Cargo.toml", module_dir / "Cargo.lock",
             *sorted((module_dir / "src").glob("*.rs"))]
    for path in paths:
        digest.update(path.relative_to(module_dir).as_posix().encode() + b"\0"
                      + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def rust_version() -> str:
    """`rustc`'s version (`1.95.0`), part of the cache key."""
    cargo_executable()
    result = subprocess.run(["rustc", "--version"], cwd=MODULE_DIR, capture_output=True, text=True)
    if result.returncode != 0:
        raise WasmBuildError(f"`rustc --version` failed: {result.stderr.strip()}")
    return result.stdout.split()[1]


def ensure_target(progress: TextIO | None) -> None:
    """Add the `wasm32-wasip1` standard library with rustup when the toolchain lacks it."""
    rustup = shutil.which("rustup")
    if rustup is None:
        sysroot = subprocess.run(["rustc", "--print", "sysroot"], cwd=MODULE_DIR,
                                 capture_output=True, text=True)
        if (Path(sysroot.stdout.strip()) / "lib" / "rustlib" / TARGET).is_dir():
            return
        raise WasmBuildError(
            f"the Rust toolchain has no {TARGET} target and `rustup` is not on PATH to add it; "
            f"install Rust with rustup, or add the {TARGET} standard library to this toolchain"
        )
    installed = subprocess.run([rustup, "target", "list", "--installed"], cwd=MODULE_DIR,
                               capture_output=True, text=True)
    if installed.returncode == 0 and TARGET in installed.stdout.split():
        return
    _say(progress, f"lanes: adding the Rust target {TARGET} (`rustup target add {TARGET}`)")
    added = subprocess.run([rustup, "target", "add", TARGET], cwd=MODULE_DIR,
                           capture_output=True, text=True)
    if added.returncode != 0:
        raise WasmBuildError(
            f"`rustup target add {TARGET}` failed (exit {added.returncode}):\n"
            + added.stderr[-4000:]
        )


def cargo_build(output: Path, progress: TextIO | None) -> None:
    """Build the module into `output`, passing cargo's progress lines on to `progress`."""
    cargo = cargo_executable()
    ensure_target(progress)
    started = time.monotonic()
    _say(progress, "lanes: building the trace-affinity Wasm module (cargo, about 15 s when cold)")
    tail: deque[str] = deque(maxlen=60)
    process = subprocess.Popen([cargo, "build", *BUILD_FLAGS], cwd=MODULE_DIR, env=cargo_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        for line in process.stderr:
            tail.append(line.rstrip())
            if line.lstrip().startswith(("Downloaded ", "Compiling ")):
                _say(progress, f"lanes:   {line.strip()}")
        returncode = process.wait()
    except BaseException:
        process.kill()
        process.wait()
        raise
    if returncode != 0:
        raise WasmBuildError(
            f"cargo build of the trace-affinity module failed (exit {returncode}):\n"
            + "\n".join(tail)
        )
    built = Path(cargo_env()["CARGO_TARGET_DIR"]) / BUILT_PATH
    shutil.copyfile(built, output)
    _say(progress, f"lanes: built the trace-affinity Wasm module in "
                   f"{format_elapsed(time.monotonic() - started)}")


def ensure_trace_affinity(progress: TextIO | None = sys.stderr) -> Path:
    """The built module (`~/.cache/lanes/traceaffinity-<digest>-rust<version>/traceaffinity.wasm`).

    About 15 s to build on first use; afterwards the cached file is returned at once.
    """
    key = f"traceaffinity-{source_digest()}-rust{rust_version()}"

    def build(staging: Path) -> None:
        output = staging / MODULE_FILE
        cargo_build(output, progress)
        # cached_install takes executables as the mark of a finished install.
        output.chmod(0o755)

    return cached_install(cache_root(), key, (MODULE_FILE,), build) / MODULE_FILE


def module_sha256(path: Path) -> str:
    """The hex sha256 of a built module, as Istio's WasmPlugin `sha256` wants it."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _say(stream: TextIO | None, message: str) -> None:
    if stream is not None:
        print(message, file=stream, flush=True)
