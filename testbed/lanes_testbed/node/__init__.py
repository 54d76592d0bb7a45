"""A local node: runs the sample's pods on the local control plane as local processes.

Like a tiny kubelet. It registers a Node and keeps it Ready, binds pending pods to it (no
scheduler runs locally), runs one process per container with the container's env, gives
each pod its own loopback address so pods are distinct endpoints on the same port, and
reports pod status as kubelet does. Given a local istiod, each pod gets a sidecar it configures
and a WorkloadEntry while Ready (see `sidecars`). Only images the project knows run (see `images`).

    with LocalNode(kubeconfig, istiod="127.0.0.1:15010") as node:
        ...

or standalone: `python -m lanes_testbed.node --kubeconfig PATH`.
"""

from lanes_testbed.node.addresses import AddressPool
from lanes_testbed.node.images import ImageNotKnown, program_for
from lanes_testbed.node.node import LocalNode, RunningPod

__all__ = ["AddressPool", "ImageNotKnown", "LocalNode", "RunningPod", "program_for"]
