"""Build the trace-affinity proxy-wasm module from its Go source, cached like the control plane.

The module (lanes/traceaffinity, standard library only) gives plain Istio ASM's trace-ID
lane affinity; the local mesh loads it into its Envoy, and the operator image carries it for
the chart to serve to Istio's proxies. It is built with Go's own `wasip1` target, so no SDK or
other toolchain is needed. The cache key is a digest of the sources and the Go version, so an edited source is rebuilt.
"""

from __future__ import annotations

import hashlib
from importlib import resources
import subprocess
import sys
from pathlib import Path
from typing import TextIO

from lanes_testbed.binaries import cache_root
from lanes_testbed.gobuild import GoBuildError, build_env, cached_install, go_executable

MODULE_DIR = Path(str(resources.files("lanes") / "traceaffinity"))
MODULE_FILE = "traceaffinity.wasm"
# The Envoy stats the module keeps (Envoy prefixes a Wasm module's metrics with `wasmcustom.`).
STAT_PREFIX = "wasmcustom.lanes_trace_affinity."
STATS = ("hits", "misses", "evictions", "expired", "remembered")
# The module's build; the Dockerfile's build stage runs the same one (a unit test compares them),
# so the module in the operator image is the one the local mesh and tests load.
TARGET_ENV = {"GOOS": "wasip1", "GOARCH": "wasm"}
BUILD_FLAGS = ("-buildmode=c-shared", "-trimpath")


def source_digest(module_dir: Path = MODULE_DIR) -> str:
    """A digest of the module's Go sources and go.mod, naming the build in the cache."""
    digest = hashlib.sha256()
    for path in sorted(module_dir.iterdir()):
        if path.suffix == ".go" and not path.name.endswith("_test.go") or path.name == "go.mod":
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def go_version() -> str:
    result = subprocess.run([go_executable(), "env", "GOVERSION"], capture_output=True, text=True)
    if result.returncode != 0:
        raise GoBuildError(f"`go env GOVERSION` failed: {result.stderr.strip()}")
    return result.stdout.strip()


def ensure_trace_affinity(progress: TextIO | None = sys.stderr) -> Path:
    """The built module (`~/.cache/lanes/traceaffinity-<digest>-<go>/traceaffinity.wasm`).

    About 10 s to build on first use; afterwards the cached file is returned at once.
    """
    key = f"traceaffinity-{source_digest()}-{go_version()}"

    def build(staging: Path) -> None:
        if progress is not None:
            print("lanes: building the trace-affinity Wasm module", file=progress, flush=True)
        env = {**build_env(), **TARGET_ENV}
        output = staging / MODULE_FILE
        result = subprocess.run(
            [go_executable(), "build", *BUILD_FLAGS, "-o", str(output), "."],
            cwd=MODULE_DIR,
            env=env,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise GoBuildError(
                f"go build of the trace-affinity module failed (exit {result.returncode}):\n"
                + result.stderr[-4000:]
            )
        # cached_install takes executables as the mark of a finished install.
        output.chmod(0o755)

    return cached_install(cache_root(), key, (MODULE_FILE,), build) / MODULE_FILE


def module_sha256(path: Path) -> str:
    """The hex sha256 of a built module, as Istio's WasmPlugin `sha256` wants it."""
    return hashlib.sha256(path.read_bytes()).hexdigest()
