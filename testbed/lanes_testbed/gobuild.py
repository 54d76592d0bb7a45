"""Run `go build` with a progress line, since a cold Kubernetes build takes minutes.

`cached_install` keeps a tool under the cache once per version, whether built or unpacked.
"""

from __future__ import annotations

import collections
import fcntl
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

PROGRESS_INTERVAL_S = 30.0


class GoBuildError(RuntimeError):
    """`go build` failed or Go is not installed."""


def go_executable() -> str:
    """Find the Go toolchain, naming the way out when it is missing."""
    go = shutil.which("go")
    if go is None:
        raise GoBuildError(
            "the local control plane is built from Go modules, but `go` is not on PATH; "
            "install Go >= 1.25 or point KUBEBUILDER_ASSETS at prebuilt binaries"
        )
    return go


# Static, reproducible builds that never rewrite our go.mod or go.sum.
STATIC_ENV = {"CGO_ENABLED": "0"}
GOFLAGS = ("-mod=readonly", "-buildvcs=false")


def build_env() -> dict[str, str]:
    """The environment with `STATIC_ENV` set and `GOFLAGS` added to any the user has."""
    env = {**os.environ, **STATIC_ENV}
    env["GOFLAGS"] = " ".join(flag for flag in (env.get("GOFLAGS", ""), *GOFLAGS) if flag)
    return env


def count_packages(module_dir: Path, package: str = ".") -> int | None:
    """Count the packages the build links, so progress can be shown as a fraction."""
    result = subprocess.run(
        [go_executable(), "list", "-deps", "-f", "{{.ImportPath}}", package],
        cwd=module_dir,
        env=build_env(),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        return None
    return len(result.stdout.split())


def format_elapsed(seconds: float) -> str:
    """Render a duration as `12m05s`, the precision a long build needs."""
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def go_build(
    module_dir: Path,
    output: Path,
    ldflags: str,
    *,
    what: str,
    log_path: Path,
    progress: TextIO | None,
    package: str = ".",
) -> float:
    """Build a main package (by default the one in `module_dir`) into `output`; return seconds.

    Go's own build cache is reused, so only the first build is slow. Progress goes to
    `progress` every PROGRESS_INTERVAL_S; the full `go build -v` output goes to `log_path`.
    """
    go = go_executable()
    total = count_packages(module_dir, package)
    argv = [go, "build", "-v", "-trimpath", "-ldflags", ldflags, "-o", str(output), package]
    started = time.monotonic()
    built = 0
    last_package = ""
    tail: collections.deque[str] = collections.deque(maxlen=40)
    done = threading.Event()

    def report() -> None:
        while not done.wait(PROGRESS_INTERVAL_S):
            fraction = f"{built}/{total}" if total else str(built)
            _say(
                progress,
                f"lanes: building {what}: {format_elapsed(time.monotonic() - started)}, "
                f"{fraction} packages compiled, last {last_package or '-'}",
            )

    _say(progress, f"lanes: building {what} (minutes when cold; log: {log_path})")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    reporter = threading.Thread(target=report, name="go-build-progress", daemon=True)
    with log_path.open("w") as log:
        process = subprocess.Popen(
            argv,
            cwd=module_dir,
            env=build_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        reporter.start()
        try:
            assert process.stderr is not None
            for line in process.stderr:
                log.write(line)
                tail.append(line.rstrip())
                if line and not line[0].isspace() and ":" not in line:
                    built += 1
                    last_package = line.strip()
            returncode = process.wait()
        except BaseException:
            process.kill()
            process.wait()
            raise
        finally:
            done.set()
            reporter.join()
    elapsed = time.monotonic() - started
    if returncode != 0:
        raise GoBuildError(
            f"go build of {what} failed (exit {returncode}); see {log_path}:\n" + "\n".join(tail)
        )
    _say(progress, f"lanes: built {what} in {format_elapsed(elapsed)}")
    return elapsed


def cached_tool(
    cache: Path,
    name: str,
    version: str,
    module_dir: Path,
    package: str,
    ldflags: str,
    what: str,
    progress: TextIO | None,
) -> Path:
    """`cache/<name>-<version>/<name>`, built from `package` of `module_dir` on first use."""
    directory = cache / f"{name}-{version}"

    def build(staging: Path) -> None:
        go_build(
            module_dir,
            staging / name,
            ldflags,
            what=what,
            log_path=directory / "build.log",
            progress=progress,
            package=package,
        )

    return cached_install(cache, f"{name}-{version}", (name,), build) / name


def cached_install(
    cache: Path, key: str, executables: Sequence[str], install: Callable[[Path], None]
) -> Path:
    """`cache/<key>/`, holding `executables` that `install(staging)` makes on first use.

    A file lock makes concurrent callers (parallel test workers) install once. `install`
    writes into a fresh staging folder beside the cache, whose executables are then renamed
    into place, so a half-made file is never taken as done.
    """
    directory = cache / key
    if _all_executable(directory, executables):
        return directory
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / f"{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _all_executable(directory, executables):
            directory.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=cache))
            try:
                install(staging)
                missing = [e for e in executables if not os.access(staging / e, os.X_OK)]
                if missing:
                    raise RuntimeError(f"installing {key} made no executable {', '.join(missing)}")
                for executable in executables:
                    (staging / executable).replace(directory / executable)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return directory


def _all_executable(directory: Path, executables: Sequence[str]) -> bool:
    return all(os.access(directory / e, os.X_OK) for e in executables)


def _say(stream: TextIO | None, message: str) -> None:
    if stream is not None:
        print(message, file=stream, flush=True)
