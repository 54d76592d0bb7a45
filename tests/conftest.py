"""Paths shared by every test."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
REFERENCE = SHARED / "reference"


@pytest.fixture(scope="session")
def reference() -> Path:
    """The folder of the ASM mock-chain reference material."""
    assert REFERENCE.is_dir(), f"reference material missing: {REFERENCE}"
    return REFERENCE
