"""The webhook's certificate is one, shared through a Secret, across restarts and replicas.

Operator processes on the real API server: the first creates the Secret, a second replica
and a restarted first serve the very certificate it holds, every configuration's caBundle is
that certificate, and a restart leaves the stored webhook configuration untouched.
"""

from __future__ import annotations

import base64
import ssl
import uuid

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from kubernetes import client

from lanes_testbed.inprocess import eventually
from lanes.operator.webhook import CERT_KEY

from .rollout_support import OperatorProcess, wait_for_webhook


def served_certificate(port: int) -> bytes:
    """The certificate the webhook server presents, as DER."""
    pem = ssl.get_server_certificate(("127.0.0.1", port))
    return x509.load_pem_x509_certificate(pem.encode()).public_bytes(
        Encoding.DER)


def der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


def test_replicas_and_restarts_share_one_certificate(control_plane, kube_api, namespace, tmp_path) -> None:
    tag = uuid.uuid4().hex[:6]
    secret = f"webhook-cert-{tag}"
    env = {"LANES_WEBHOOK_SECRET": secret, "POD_NAMESPACE": namespace}
    first = OperatorProcess(control_plane.kubeconfig, f"first-{tag}.lanes.dev", tmp_path / "a.log", env)
    second = OperatorProcess(control_plane.kubeconfig, f"second-{tag}.lanes.dev", tmp_path / "b.log", env)
    core, admission = client.CoreV1Api(kube_api), client.AdmissionregistrationV1Api(kube_api)

    def bundle(name: str) -> bytes:
        config = admission.read_mutating_webhook_configuration(name)
        return base64.b64decode(config.webhooks[0].client_config.ca_bundle)

    try:
        first.start()
        wait_for_webhook(kube_api, first.config_name, first.port)
        stored = core.read_namespaced_secret(secret, namespace)
        cert = base64.b64decode(stored.data[CERT_KEY])
        assert der(bundle(first.config_name)) == der(cert)
        assert served_certificate(first.port) == der(cert)

        second.start()
        wait_for_webhook(kube_api, second.config_name, second.port)
        assert der(bundle(second.config_name)) == der(cert)
        assert served_certificate(second.port) == der(cert)

        version = admission.read_mutating_webhook_configuration(first.config_name).metadata.resource_version
        first.kill()
        first.start()
        eventually(lambda: _answers(first.port), "the restarted operator's webhook server")
        eventually(lambda: (tmp_path / "a.log").read_text().count("Reconfiguring the mutating webhook") == 2,
                   "the restarted operator to send its webhook configuration")
        assert served_certificate(first.port) == der(cert)
        # The same URL and caBundle: the restart's configuration write changes nothing stored.
        assert admission.read_mutating_webhook_configuration(
            first.config_name).metadata.resource_version == version
        assert core.read_namespaced_secret(secret, namespace).metadata.resource_version == (
            stored.metadata.resource_version)
    finally:
        first.kill()
        second.kill()
        for name in (first.config_name, second.config_name):
            for delete in (admission.delete_mutating_webhook_configuration,
                           admission.delete_validating_webhook_configuration):
                try:
                    delete(name)
                except client.exceptions.ApiException as error:
                    if error.status != 404:
                        raise


def _answers(port: int) -> bool:
    try:
        ssl.get_server_certificate(("127.0.0.1", port), timeout=1)
    except OSError:
        return False
    return True
