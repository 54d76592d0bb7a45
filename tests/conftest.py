"""Paths shared by every test, and the one-time builds the cluster tests need."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "tests" / "testdata" / "reference"
# Istio's networking CRDs ship with lanes; the tests read the same unchanged copy.
ISTIO_NETWORKING_CRDS = ROOT / "testbed" / "lanes_testbed" / "istio-networking-crds.yaml"
CLUSTER_SUITES = ("integration", "e2e")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the control plane, Helm and istioctl before any test runs, with progress shown.

    A cold build takes minutes; done here it shows its progress instead of happening silently
    inside whichever test first needs a cluster. Runs of unit tests alone build nothing.
    Under pytest-xdist the controller builds instead (below): a worker's output is not shown.
    """
    if not hasattr(session.config, "workerinput"):
        build_cluster_tools(session.config, [item.nodeid for item in session.items])


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids: list[str]) -> None:
    """Under pytest-xdist, build once in the controller before it hands any worker a test.

    Workers wait for their tests meanwhile, rather than all queueing on the build's file lock
    with their progress lost.
    """
    config = node.config
    if not config.stash.get(_BUILT, False):
        config.stash[_BUILT] = True
        build_cluster_tools(config, ids)


_BUILT = pytest.StashKey[bool]()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On pytest-xdist workers, interleave the files of the three suites.

    Workers take whole files in this order (`--dist loadfile --no-loadscope-reorder`): the slow
    end-to-end files, each starting a whole stack, then start early but seldom at the same
    time, rather than crowding the two cores together or trailing at the end of the run.
    """
    if not hasattr(config, "workerinput"):
        return
    files: dict[str, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    suites: dict[str, list[str]] = {}
    for path in files:
        suites.setdefault(path.split("/")[1] if path.count("/") > 1 else "", []).append(path)
    queues = [suites.pop(suite, []) for suite in CLUSTER_SUITES] + list(suites.values())
    order = [path for turn in itertools.zip_longest(*queues) for path in turn if path is not None]
    items[:] = [item for path in order for item in files[path]]


def build_cluster_tools(config: pytest.Config, nodeids: list[str]) -> None:
    """Build what the cluster suites need, if any of `nodeids` (rootdir-relative) is in one."""
    suites = {nodeid.split("/")[1] for nodeid in nodeids if nodeid.startswith("tests/")}
    if not suites & set(CLUSTER_SUITES):
        return
    from lanes_testbed.binaries import ensure_binaries
    from lanes_testbed.helm import ensure_helm
    from lanes_testbed.istioctl import ensure_istioctl

    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        ensure_binaries(progress=sys.stderr)
        ensure_helm(progress=sys.stderr)
        ensure_istioctl(progress=sys.stderr)


@pytest.fixture(scope="session")
def reference() -> Path:
    """The folder of the ASM mock-chain reference material."""
    assert REFERENCE.is_dir(), f"reference material missing: {REFERENCE}"
    return REFERENCE
