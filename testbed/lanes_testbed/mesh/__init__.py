"""The local mesh: Istio's own xDS generation, a sidecar per pod, and the sample service.

`LocalMesh` runs the local istiod (a program of the test bed's built from Istio's own
packages, see `istiod`) and the ingress gateway it configures; every pod gets a stock Envoy
as its sidecar, configured by the same istiod. Nothing in Python turns Istio objects into
Envoy config. `mockapp` is the mock-chain sample service the pods run.
"""

from .binary import envoy_binary
from .istiod import LocalIstiod, Sidecar, ensure_istiod
from .local import Endpoint, LocalMesh, PodProxy

__all__ = [
    "Endpoint",
    "LocalIstiod",
    "LocalMesh",
    "PodProxy",
    "Sidecar",
    "ensure_istiod",
    "envoy_binary",
]
