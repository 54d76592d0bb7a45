"""A validating admission webhook that stops the operator's first write of one kind in the API
server, so a test can kill the operator at exactly that point: the writes before it have
landed, this one and those after it have not.

The webhook answers on loopback with a certificate of its own, for one group's generated
objects only (an objectSelector on the group's owner labels), so nothing else in the shared
control plane is ever sent to it. A held write is refused once the test lets it go: its
client is dead by then, and refusing keeps it from landing.
"""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lanes_testbed.processes import free_port
from lanes.kube.diff import MANAGER
from lanes_testbed.inprocess import eventually
from lanes.operator.webhook import self_signed
from lanes.render import owner_selector

ISTIO = "networking.istio.io"


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the API server drops connections of writes it gave up on; nothing to report


class WriteHold:
    """Holds the first write by lanes' field manager to `plural` objects of `group`, while armed."""

    def __init__(self, api: client.ApiClient, group: str, plural: str):
        self.api = api
        self.group = group
        self.plural = plural
        self.name = f"hold-{plural}-{group}"
        self.port = free_port()
        self.armed = False
        self.held: dict[str, Any] | None = None
        self.holding = threading.Event()
        self.released = threading.Event()
        self.probed = threading.Event()
        self._lock = threading.Lock()
        cert, key = self_signed(["127.0.0.1"])
        self.ca = cert
        directory = Path(tempfile.mkdtemp(prefix="write-hold-"))
        (directory / "tls.crt").write_bytes(cert)
        (directory / "tls.key").write_bytes(key)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(directory / "tls.crt", directory / "tls.key")
        self.server = _QuietServer(("127.0.0.1", self.port), self._handler())
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self._thread = threading.Thread(target=self.server.serve_forever, name="write-hold", daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hold = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                body = json.dumps(hold.review(review)).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the API server gave up on a held write whose client is gone

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def review(self, review: dict[str, Any]) -> dict[str, Any]:
        """Answer one AdmissionReview: hold the first armed write, allow everything else."""
        request = review.get("request") or {}
        allowed, message = True, None
        if request.get("dryRun"):
            self.probed.set()
        elif (request.get("options") or {}).get("fieldManager") == MANAGER:
            with self._lock:
                take = self.armed and self.held is None
                if take:
                    self.held = request
            if take:
                self.holding.set()
                self.released.wait(60)
                allowed, message = False, "held by the test until the operator was killed"
        response: dict[str, Any] = {"uid": request.get("uid", ""), "allowed": allowed}
        if message:
            response["status"] = {"code": 403, "message": message}
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}

    def configuration(self) -> dict[str, Any]:
        return {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": self.name},
            "webhooks": [{
                "name": "hold.lanes.test",
                "clientConfig": {
                    "url": f"https://127.0.0.1:{self.port}/",
                    "caBundle": base64.b64encode(self.ca).decode(),
                },
                "rules": [{
                    "apiGroups": [ISTIO], "apiVersions": ["*"], "resources": [self.plural],
                    "operations": ["CREATE", "UPDATE", "DELETE"],
                }],
                "objectSelector": {"matchLabels": owner_selector(self.group, "istio")},
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "failurePolicy": "Fail",
                "timeoutSeconds": 30,
            }],
        }

    def __enter__(self) -> WriteHold:
        self._thread.start()
        client.AdmissionregistrationV1Api(self.api).create_validating_webhook_configuration(self.configuration())
        self._wait_in_force()
        return self

    def _wait_in_force(self) -> None:
        """The API server picks up a new configuration a moment later: send dry-run writes
        until one reaches the webhook."""
        custom = client.CustomObjectsApi(self.api)
        probe = {
            "apiVersion": f"{ISTIO}/v1",
            "kind": "DestinationRule" if self.plural == "destinationrules" else "VirtualService",
            "metadata": {"name": f"probe-{self.group}", "namespace": "default",
                         "labels": owner_selector(self.group, "istio")},
            "spec": {"host": "probe"} if self.plural == "destinationrules" else {"hosts": ["probe"]},
        }

        def reached() -> bool:
            try:
                custom.create_namespaced_custom_object(ISTIO, "v1", "default", self.plural, probe, dry_run="All")
            except ApiException:
                pass
            return self.probed.wait(0.2)

        eventually(reached, f"webhook {self.name} in force", timeout=30)

    def release(self) -> None:
        """Answer the held write (refused) and admit every later one."""
        with self._lock:
            self.armed = False
        self.released.set()

    def __exit__(self, *exc_info: object) -> None:
        self.release()
        try:
            client.AdmissionregistrationV1Api(self.api).delete_validating_webhook_configuration(self.name)
        except ApiException as error:
            if error.status != 404:
                raise
        self.server.shutdown()
        self.server.server_close()
