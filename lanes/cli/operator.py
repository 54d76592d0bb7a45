"""`kubectl lane operator`: run the lane operator against the current cluster.

The command and its options belong to the operator (`lanes.operator.main`); this verb adds it
to `kubectl lane`.
"""

from __future__ import annotations

from lanes.operator.main import operator

__all__ = ["operator"]
