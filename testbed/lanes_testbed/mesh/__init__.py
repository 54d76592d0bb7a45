"""A local service mesh on one real Envoy, and the mock-chain sample service it routes.

`translate` (pure) turns Istio objects and pod endpoints into Envoy config; `EnvoyMesh` runs
Envoy on loopback and applies new config within a second without dropping requests.
"""

from .envoy import EnvoyMesh, envoy_binary
from .inputs import Endpoint, MeshConfigError, Service, endpoints_from_pods, services_of
from .translate import EnvoyConfig, MeshOptions, bootstrap, translate

__all__ = [
    "Endpoint",
    "EnvoyConfig",
    "EnvoyMesh",
    "MeshConfigError",
    "MeshOptions",
    "Service",
    "bootstrap",
    "endpoints_from_pods",
    "envoy_binary",
    "services_of",
    "translate",
]
