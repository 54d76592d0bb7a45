"""The mock-chain sample service; see `lanes_testbed.mesh.mockapp` for its env settings.

Runs from a checkout without installing lanes, e.g.
`app=mocka version=v1 POD_IP=127.0.0.2 python samples/mock-chain/app/mock.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from lanes_testbed.mesh.mockapp import main  # noqa: E402

if __name__ == "__main__":
    main()
