"""Fetching Prometheus without a package manager: mirrors from apt's sources, the .deb read
in Python, the sha256 pin, and the once-only cached install."""

from __future__ import annotations

import hashlib
import io
import lzma
import os
import tarfile
from pathlib import Path

import pytest

from lanes_testbed.gobuild import cached_install
from lanes_testbed.prometheus import (
    DEB_SHA256,
    VERSION,
    Prometheus,
    PrometheusError,
    ScrapeTarget,
    debian_mirrors,
    parse_deb822_sources,
    parse_one_line_sources,
    pool_path,
    unpack_executables,
    verify_sha256,
)


def make_deb(path: Path, files: dict[str, bytes], *, odd_control: bool = True) -> Path:
    """A Debian package as dpkg writes one: ar of debian-binary, control.tar.xz, data.tar.xz."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:xz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    control = lzma.compress(b"x" * (7 if odd_control else 8))  # odd sizes are padded in ar
    members = [(b"debian-binary", b"2.0\n"), (b"control.tar.xz", control), (b"data.tar.xz", data.getvalue())]
    out = bytearray(b"!<arch>\n")
    for name, content in members:
        header = name.ljust(16) + b"0".ljust(12) + b"0".ljust(6) + b"0".ljust(6) + b"100644".ljust(8)
        out += header + str(len(content)).encode().ljust(10) + b"`\n" + content
        if len(content) % 2:
            out += b"\n"
    path.write_bytes(bytes(out))
    return path


def test_the_executables_are_unpacked_from_the_deb_and_made_executable(tmp_path: Path) -> None:
    deb = make_deb(tmp_path / "p.deb", {"usr/bin/prometheus": b"P" * 3001, "usr/bin/promtool": b"T",
                                        "etc/prometheus/prometheus.yml": b"{}"})
    unpack_executables(deb, tmp_path, {"usr/bin/prometheus": "prometheus", "usr/bin/promtool": "promtool"})
    assert (tmp_path / "prometheus").read_bytes() == b"P" * 3001
    assert (tmp_path / "promtool").read_bytes() == b"T"
    assert os.access(tmp_path / "promtool", os.X_OK)
    assert not (tmp_path / "prometheus.yml").exists()


def test_a_package_without_the_executable_is_refused_naming_it(tmp_path: Path) -> None:
    deb = make_deb(tmp_path / "p.deb", {"usr/bin/prometheus": b"P"}, odd_control=False)
    with pytest.raises(PrometheusError, match=r"p.deb holds no ./usr/bin/promtool"):
        unpack_executables(deb, tmp_path, {"usr/bin/prometheus": "prometheus", "usr/bin/promtool": "promtool"})


def test_a_file_that_is_not_a_deb_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.deb").write_bytes(b"<html>not found</html>")
    with pytest.raises(PrometheusError, match="x.deb is not a Debian package"):
        unpack_executables(tmp_path / "x.deb", tmp_path, {"usr/bin/prometheus": "prometheus"})


def test_a_download_with_another_sha256_is_refused(tmp_path: Path) -> None:
    deb = tmp_path / "p.deb"
    deb.write_bytes(b"tampered")
    with pytest.raises(PrometheusError, match=f"sha256 {hashlib.sha256(b'tampered').hexdigest()} is not the pinned"):
        verify_sha256(deb, DEB_SHA256["amd64"])


def test_mirrors_come_from_the_override_then_apts_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.test/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb-src\nURIs: http://src.test/debian\nSuites: bookworm\nComponents: main\n"
    )
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb [arch=amd64] https://old.test/debian bookworm main contrib\n"
        "deb http://contrib-only.test/debian bookworm contrib\n"
    )
    env = {"LANES_DEBIAN_MIRROR": "http://local.test/debian"}
    assert debian_mirrors(env, tmp_path) == [
        "http://local.test/debian", "http://mirror.test/debian", "https://old.test/debian"]
    assert debian_mirrors({}, tmp_path / "none") == []


def test_sources_parsers_skip_sources_without_main_binaries() -> None:
    assert parse_deb822_sources("Types: deb-src\nURIs: http://a/\nComponents: main\n") == []
    assert parse_one_line_sources("deb-src http://a/ bookworm main\ndeb cdrom:/x bookworm main\n") == []


def test_the_pool_path_follows_debians_layout() -> None:
    assert pool_path("amd64") == f"pool/main/p/prometheus/prometheus_{VERSION}_amd64.deb"


def test_an_install_runs_once_and_is_found_after(tmp_path: Path) -> None:
    calls = []

    def install(staging: Path) -> None:
        calls.append(staging)
        for name in ("a", "b"):
            (staging / name).write_text("#!/bin/sh\n")
            (staging / name).chmod(0o755)

    first = cached_install(tmp_path, "tool-1", ("a", "b"), install)
    again = cached_install(tmp_path, "tool-1", ("a", "b"), install)
    assert first == again == tmp_path / "tool-1"
    assert len(calls) == 1 and not calls[0].exists(), "the staging folder is removed"
    assert sorted(p.name for p in first.iterdir()) == ["a", "b"]


def test_an_install_that_makes_nothing_leaves_nothing_cached(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="installing tool-1 made no executable b"):
        cached_install(tmp_path, "tool-1", ("a", "b"), lambda staging: _executable(staging / "a"))
    assert not (tmp_path / "tool-1" / "a").exists()


def _executable(path: Path) -> None:
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)


def test_the_config_scrapes_each_target_as_its_own_job(tmp_path: Path) -> None:
    server = Prometheus(tmp_path, [ScrapeTarget("envoy", "127.0.0.1:15000", "/stats/prometheus"),
                                   ScrapeTarget("operator", "127.0.0.1:9090", labels={"app": "lanes"})],
                        scrape_interval="1s", port=9999, progress=None)
    config = server.config()
    assert config["global"]["scrape_interval"] == "1s"
    assert config["scrape_configs"] == [
        {"job_name": "envoy", "metrics_path": "/stats/prometheus",
         "static_configs": [{"targets": ["127.0.0.1:15000"], "labels": {}}]},
        {"job_name": "operator", "metrics_path": "/metrics",
         "static_configs": [{"targets": ["127.0.0.1:9090"], "labels": {"app": "lanes"}}]},
    ]
    assert server.url == "http://127.0.0.1:9999"
