"""A real Prometheus for the demo and the tests, fetched as Debian's package and run on loopback.

The `prometheus` package of Debian bookworm, at the release pinned below, is downloaded once
(with `apt-get download`, which needs no root, or straight from the Debian mirror that apt's
sources name), checked against its pinned sha256, and its two executables are unpacked into
`${XDG_CACHE_HOME:-~/.cache}/lanes/prometheus-<version>/`. Nothing is installed system-wide.

`Prometheus` runs one server with static scrape targets and its TSDB in a work folder;
`backfill` loads recorded OpenMetrics series into that TSDB before it starts, as
`promtool tsdb create-blocks-from openmetrics` does, so tests can query known data.
"""

from __future__ import annotations

import base64
import hashlib
import io
import lzma
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import bcrypt
import yaml

from lanes_testbed.binaries import cache_root
from lanes_testbed.gobuild import cached_install
from lanes_testbed.processes import Child, Served, free_port, spawn, wait_until

VERSION = "2.42.0+ds-5+deb12u1"
PACKAGE = "prometheus"
# sha256 of the .deb per Debian architecture, as bookworm's Packages index lists it.
DEB_SHA256 = {
    "amd64": "81d59a24fce84f7fbe97a45a4f2914b6a5881b5cd1db2a6a0e129e515e1a5f55",
}
EXECUTABLES = ("prometheus", "promtool")
MIRROR_ENV = "LANES_DEBIAN_MIRROR"
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
_HTTP = ("http://", "https://")
# Backfilled blocks older than the retention are deleted at start; recorded series in tests
# are minutes old, and a long retention keeps older recordings queryable too.
RETENTION = "3650d"

# Calls to the local server go to loopback directly, whatever proxy the environment names.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class PrometheusError(RuntimeError):
    """Prometheus could not be fetched, unpacked, backfilled or started."""


@dataclass(frozen=True)
class Paths:
    """The two executables of one unpacked Prometheus release."""

    prometheus: Path
    promtool: Path


def ensure_prometheus(progress: TextIO | None = sys.stderr) -> Paths:
    """The pinned Prometheus and promtool, downloaded and unpacked on first use (seconds)."""
    arch = debian_arch()
    key = f"prometheus-{VERSION}"

    def install(staging: Path) -> None:
        _say(progress, f"lanes: fetching Debian's {PACKAGE} {VERSION} ({arch})")
        started = time.monotonic()
        deb = download_deb(arch, staging)
        verify_sha256(deb, DEB_SHA256[arch])
        unpack_executables(deb, staging, {f"usr/bin/{name}": name for name in EXECUTABLES})
        deb.unlink()
        _say(progress, f"lanes: unpacked Prometheus {VERSION} in {time.monotonic() - started:.1f}s")

    directory = cached_install(cache_root(), key, EXECUTABLES, install)
    return Paths(prometheus=directory / "prometheus", promtool=directory / "promtool")


def debian_arch() -> str:
    """The Debian architecture of this machine, refused when no package sha256 is pinned for it."""
    machine = platform.machine().lower()
    arch = _ARCH.get(machine, machine)
    if arch not in DEB_SHA256:
        raise PrometheusError(
            f"no pinned sha256 of Debian's {PACKAGE} {VERSION} for architecture {arch}; "
            f"pinned: {', '.join(sorted(DEB_SHA256))}"
        )
    return arch


def deb_filename(arch: str) -> str:
    return f"{PACKAGE}_{VERSION}_{arch}.deb"


def pool_path(arch: str) -> str:
    """Where the package lies under a Debian mirror, by Debian's pool layout."""
    return f"pool/main/{PACKAGE[0]}/{PACKAGE}/{deb_filename(arch)}"


def download_deb(arch: str, into: Path) -> Path:
    """Fetch the pinned .deb into `into`: by `apt-get download`, else from a mirror.

    `apt-get download` fails on a machine whose package lists were never updated, so the
    mirror of apt's own sources (or `$LANES_DEBIAN_MIRROR`) is tried next.
    """
    errors = []
    apt_get = shutil.which("apt-get")
    if apt_get is not None:
        result = subprocess.run(
            [apt_get, "download", "-q", f"{PACKAGE}:{arch}={VERSION}"],
            cwd=into,
            capture_output=True,
            text=True,
            timeout=300,
        )
        found = sorted(into.glob(f"{PACKAGE}_*.deb"))
        if result.returncode == 0 and found:
            return found[0]
        errors.append(f"apt-get download: {result.stderr.strip() or result.stdout.strip()}")
    else:
        errors.append("apt-get is not installed")
    mirrors = debian_mirrors()
    for mirror in mirrors:
        url = f"{mirror.rstrip('/')}/{pool_path(arch)}"
        target = into / deb_filename(arch)
        try:
            _fetch(url, target)
            return target
        except OSError as error:
            errors.append(f"{url}: {error}")
    if not mirrors:
        errors.append(f"no Debian mirror in apt's sources and {MIRROR_ENV} is not set")
    raise PrometheusError(
        f"could not download Debian's {PACKAGE} {VERSION}:\n  " + "\n  ".join(errors)
    )


def debian_mirrors(
    env: Mapping[str, str] = os.environ, apt_dir: Path = Path("/etc/apt")
) -> list[str]:
    """Mirror base URLs to fetch from: `$LANES_DEBIAN_MIRROR`, then those apt's sources name."""
    found = [env[MIRROR_ENV]] if env.get(MIRROR_ENV) else []
    for path in sorted(apt_dir.glob("sources.list.d/*.sources")):
        found += parse_deb822_sources(path.read_text(errors="replace"))
    for path in [apt_dir / "sources.list", *sorted(apt_dir.glob("sources.list.d/*.list"))]:
        if path.is_file():
            found += parse_one_line_sources(path.read_text(errors="replace"))
    return list(dict.fromkeys(found))


def parse_deb822_sources(text: str) -> list[str]:
    """URIs of the deb822 stanzas that serve binary packages of Debian's `main` component."""
    uris = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            name, sep, value = line.partition(":")
            if sep and not line.startswith((" ", "\t", "#")):
                fields[name.strip().lower()] = value.strip()
        binary = "deb" in fields.get("types", "").split()
        if binary and "main" in fields.get("components", "").split():
            uris += [u for u in fields.get("uris", "").split() if u.startswith(_HTTP)]
    return uris


def parse_one_line_sources(text: str) -> list[str]:
    """URIs of the `deb URI suite main...` lines of a one-line-style sources.list."""
    uris = []
    for line in text.splitlines():
        words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
        if len(words) >= 4 and words[0] == "deb" and "main" in words[3:]:
            if words[1].startswith(_HTTP):
                uris.append(words[1])
    return uris


def verify_sha256(path: Path, expected: str) -> None:
    """Refuse a download whose content is not the pinned package."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        raise PrometheusError(
            f"{path.name}: sha256 {digest.hexdigest()} is not the pinned {expected}"
        )


def unpack_executables(deb: Path, into: Path, members: Mapping[str, str]) -> None:
    """Extract `members` (paths in the package's data.tar -> file names in `into`), executable.

    A .deb is an ar archive holding data.tar.*; reading it here means no dpkg is needed.
    """
    data_name, data = _ar_member(deb, "data.tar")
    mode = {".xz": "r|xz", ".gz": "r|gz", ".tar": "r|"}.get(Path(data_name).suffix)
    if mode is None:
        raise PrometheusError(f"{deb.name}: unsupported {data_name}")
    wanted = {f"./{k.lstrip('./')}": v for k, v in members.items()}
    try:
        with tarfile.open(fileobj=data, mode=mode) as tar:
            for info in tar:
                name = f"./{info.name.lstrip('./')}"
                if name in wanted and info.isfile():
                    source = tar.extractfile(info)
                    assert source is not None
                    target = into / wanted.pop(name)
                    with target.open("wb") as out:
                        shutil.copyfileobj(source, out)
                    target.chmod(0o755)
    except (tarfile.TarError, lzma.LZMAError, EOFError) as error:
        raise PrometheusError(f"{deb.name}: {data_name} is damaged: {error}") from error
    if wanted:
        raise PrometheusError(f"{deb.name} holds no {', '.join(sorted(wanted))}")


def _ar_member(deb: Path, prefix: str) -> tuple[str, io.BufferedIOBase]:
    """The first member of the ar archive `deb` whose name starts with `prefix`, as a stream."""
    file = deb.open("rb")
    if file.read(8) != b"!<arch>\n":
        file.close()
        raise PrometheusError(f"{deb.name} is not a Debian package (no ar header)")
    while header := file.read(60):
        if len(header) < 60:
            break
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        if name.startswith(prefix):
            return name, _Slice(file, file.tell(), size)
        file.seek(size + (size & 1), os.SEEK_CUR)
    file.close()
    raise PrometheusError(f"{deb.name} has no {prefix}* member")


class _Slice(io.RawIOBase):
    """A read-only window onto part of an open file, so tarfile reads one ar member."""

    def __init__(self, file: io.BufferedReader, start: int, size: int) -> None:
        self._file, self._start, self._size, self._pos = file, start, size, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), self._size - self._pos)
        if want <= 0:
            return 0
        self._file.seek(self._start + self._pos)
        data = self._file.read(want)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        self._file.close()
        super().close()


def _fetch(url: str, target: Path) -> None:
    partial = target.with_name(f".{target.name}.part")
    with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as out:
        shutil.copyfileobj(response, out)
    partial.replace(target)


@dataclass(frozen=True)
class ScrapeTarget:
    """One scrape job: `address` is host:port; `metrics_path` e.g. `/stats/prometheus`.

    With `file`, the targets are the ones that file lists (Prometheus' file_sd JSON), read
    again whenever it changes: how the sidecars of pods that come and go are scraped. Targets
    of one job make one scrape config.
    """

    job: str
    address: str = ""
    metrics_path: str = "/metrics"
    labels: Mapping[str, str] = field(default_factory=dict)
    file: Path | None = None

    def discovery(self) -> dict:
        if self.file is not None:
            return {"file_sd_configs": [{"files": [str(self.file)], "refresh_interval": "5s"}]}
        return {"static_configs": [{"targets": [self.address], "labels": dict(self.labels)}]}


class Prometheus(Served):
    """One Prometheus server on 127.0.0.1 scraping static targets, its TSDB in `workdir`.

    Use as a context manager, or call `start` and `stop`. `backfill` before `start` loads
    recorded series; `url` is the HTTP API's base once started. With `basic_auth` (user,
    password) every request must carry them (Prometheus' `--web.config.file`), as a Prometheus
    behind authentication asks.
    """

    def __init__(
        self,
        workdir: Path,
        targets: Iterable[ScrapeTarget] = (),
        scrape_interval: str = "1s",
        *,
        paths: Paths | None = None,
        port: int | None = None,
        retention: str = RETENTION,
        progress: TextIO | None = sys.stderr,
        basic_auth: tuple[str, str] | None = None,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.targets = list(targets)
        self.scrape_interval = scrape_interval
        self.port = port or free_port()
        self.retention = retention
        self._paths = paths
        self._progress = progress
        self.basic_auth = basic_auth
        self._child: Child | None = None

    @property
    def paths(self) -> Paths:
        if self._paths is None:
            self._paths = ensure_prometheus(self._progress)
        return self._paths

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def tsdb_dir(self) -> Path:
        return self.workdir / "tsdb"

    @property
    def log_path(self) -> Path:
        return self.workdir / "prometheus.log"

    def config(self) -> dict:
        """The prometheus.yml this server runs: one scrape config per job, scraped every interval."""
        jobs: dict[str, dict] = {}
        for target in self.targets:
            job = jobs.setdefault(target.job, {"job_name": target.job, "metrics_path": target.metrics_path})
            if job["metrics_path"] != target.metrics_path:
                raise ValueError(f"job {target.job}: its targets name two metrics paths")
            for key, configs in target.discovery().items():
                job.setdefault(key, []).extend(configs)
        jobs = list(jobs.values())
        return {
            "global": {
                "scrape_interval": self.scrape_interval,
                "evaluation_interval": self.scrape_interval,
            },
            "scrape_configs": jobs,
        }

    def backfill(self, openmetrics_text: str) -> None:
        """Load recorded series (OpenMetrics text with timestamps, ending in `# EOF`) into the TSDB.

        Must run before `start`: Prometheus picks blocks up when it opens the TSDB. Sample
        timestamps must lie within the retention of the newest data, or the blocks are dropped.
        """
        if self._child is not None:
            raise PrometheusError(
                "backfill before start: a running Prometheus does not load new blocks"
            )
        self.tsdb_dir.mkdir(parents=True, exist_ok=True)
        source = self.workdir / f"backfill-{time.monotonic_ns()}.om.txt"
        source.write_text(openmetrics_text)
        result = subprocess.run(
            [str(self.paths.promtool), "tsdb", "create-blocks-from", "openmetrics",
             str(source), str(self.tsdb_dir)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise PrometheusError(
                f"promtool could not backfill {source}: {(result.stderr or result.stdout).strip()}"
            )

    def start(self, timeout: float = 30.0) -> None:
        """Write the config, start Prometheus and wait until `/-/ready` answers."""
        if self._child is not None:
            raise PrometheusError("Prometheus is already running")
        self.tsdb_dir.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        argv = [
            str(self.paths.prometheus),
            f"--config.file={config_path}",
            f"--storage.tsdb.path={self.tsdb_dir}",
            f"--storage.tsdb.retention.time={self.retention}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
            "--log.level=warn",
        ]
        if self.basic_auth is not None:
            argv.append(f"--web.config.file={self._write_web_config()}")
        self._child = spawn("prometheus", argv, self.log_path, self.workdir / "prometheus.pid")
        try:
            wait_until(
                self._ready, what="Prometheus to be ready", timeout=timeout, watch=[self._child]
            )
        except BaseException:
            self.stop()
            raise

    def _write_web_config(self) -> Path:
        """The web config asking every request for `basic_auth`, its password bcrypt-hashed."""
        user, password = self.basic_auth
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
        path = self.workdir / "web.yml"
        path.write_text(yaml.safe_dump({"basic_auth_users": {user: hashed}}))
        return path

    def _ready(self) -> bool:
        request = urllib.request.Request(f"{self.url}/-/ready")
        if self.basic_auth is not None:
            pair = base64.b64encode(":".join(self.basic_auth).encode()).decode()
            request.add_header("Authorization", f"Basic {pair}")
        try:
            with _DIRECT.open(request, timeout=1) as response:
                return response.status == 200
        except OSError:
            return False


def _say(stream: TextIO | None, message: str) -> None:
    if stream is not None:
        print(message, file=stream, flush=True)
