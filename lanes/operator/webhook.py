"""The admission webhook that holds a base Deployment when its pod template changes.

Without it the Deployment controller starts rolling a new template the moment it is stored,
before any controller can react; with it the change is stored already paused, so the base
never runs a pod of the new revision before the release is approved (OpenKruise Rollout's
approach).

- Scope: the webhook configuration's objectSelector matches Deployments carrying
  `lanes.dev/rollout` (the operator labels each rollout's target) and not `lanes.dev/canary`,
  so the API server calls it for nothing else. Only UPDATE is seen: a new Deployment has no
  running version to protect.
- failurePolicy Ignore: a down operator never blocks anyone's deploys. The price is that while
  it is down a template change is admitted unpaused and the Deployment controller starts
  rolling; when the operator is back, the state machine pauses the base itself as soon as it
  sees the new template and runs the canary from there.
- The configuration is persistent: kopf leaves it in place on shutdown, so a rolling restart
  of the operator cannot remove the webhook that its successor has just registered.
- The operator's own writes (restoring a template on undo) carry the `lanes` field manager and
  are admitted untouched.
- TLS: kopf's WebhookServer with a self-signed certificate made here (with `cryptography`,
  which lanes already needs), sent to the API server as the configuration's caBundle. The
  certificate lives in a Secret (`LANES_WEBHOOK_SECRET` in the operator's namespace) that the
  first replica to start creates and every replica and every later start reuses, so the
  caBundle stays the same across restarts and replicas: a restart re-sends the same
  configuration, which the API server stores as no change, and no replica ever serves a
  certificate the API server does not trust. It is replaced only when it no longer covers
  the webhook's names or expires within `RENEW_BEFORE`.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import tempfile
from pathlib import Path
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import kopf
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lanes.kube.diff import MANAGER
from lanes.kube.secrets import Data, shared_secret
from lanes.rollout import CANARY_LABEL, HELD_ANNOTATION, ROLLOUT_LABEL, template_hash

CONFIG_NAME = "lanes.dev"
VALIDITY = datetime.timedelta(days=365)
RENEW_BEFORE = datetime.timedelta(days=30)
SECRET_NAME = "lanes-webhook-cert"
CERT_KEY, PKEY_KEY = "tls.crt", "tls.key"


@dataclass(frozen=True)
class WebhookOptions:
    """Where the webhook listens and how the API server reaches it.

    `host` is the name in the URL the API server calls (in a cluster, the operator's Service,
    e.g. `lanes-webhook.lanes-system.svc`); `port` 0 picks a free port.
    """

    enabled: bool = True
    addr: str = "127.0.0.1"
    port: int = 9443
    host: str | None = None
    config_name: str = CONFIG_NAME
    # The Secret every replica reads the certificate from (None: a certificate of this
    # process only, as before), in `namespace` (the operator's own).
    secret: str | None = SECRET_NAME
    namespace: str = "default"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> WebhookOptions:
        """Options from `LANES_WEBHOOK_*` variables, so a Helm chart can set them."""
        default = cls()
        return cls(
            enabled=env.get("LANES_WEBHOOK", "on").lower() not in ("off", "false", "0"),
            addr=env.get("LANES_WEBHOOK_ADDR", default.addr),
            port=int(env.get("LANES_WEBHOOK_PORT", default.port)),
            host=env.get("LANES_WEBHOOK_HOST") or None,
            config_name=env.get("LANES_WEBHOOK_CONFIG", default.config_name),
            secret=env.get("LANES_WEBHOOK_SECRET", default.secret) or None,
            namespace=env.get("POD_NAMESPACE") or default.namespace,
        )

    @property
    def hostnames(self) -> list[str]:
        """The names the API server reaches the webhook by, as kopf builds its URL.

        With a `host`, a replica's own listening address is left out: replicas bound to
        their pod's address would each want a certificate of their own, and the shared one
        would be replaced at every start.
        """
        reachable = self.addr or "localhost"
        every = False
        try:
            every = ipaddress.ip_address(reachable).is_unspecified
        except ValueError:
            pass
        if every:
            reachable = "127.0.0.1"
        if self.host and not every:
            return [self.host]
        return list(dict.fromkeys([self.host or reachable, reachable]))


def self_signed(hostnames: Collection[str], password: str | None = None) -> tuple[bytes, bytes]:
    """A certificate and key (PEM) for the webhook's names and addresses, acting as its own CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    common = None
    for name in dict.fromkeys(hostnames):
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            names.append(x509.DNSName(name))
            common = common or name
            continue
        if not address.is_unspecified:
            names.append(x509.IPAddress(address))
            common = common or name
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common or "lanes-webhook")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    encryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def certificate_fits(
    data: Mapping[str, bytes], hostnames: Collection[str], now: datetime.datetime | None = None
) -> bool:
    """Whether a stored certificate and key serve these names for at least `RENEW_BEFORE`."""
    try:
        cert = x509.load_pem_x509_certificate(data[CERT_KEY])
        serialization.load_pem_private_key(data[PKEY_KEY], password=None)
    except (KeyError, ValueError, TypeError):
        return False
    now = now or datetime.datetime.now(datetime.UTC)
    if cert.not_valid_after_utc - RENEW_BEFORE < now:
        return False
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    covered = {str(n) for n in names.get_values_for_type(x509.DNSName)}
    covered |= {str(a) for a in names.get_values_for_type(x509.IPAddress)}
    return all(name in covered for name in hostnames)


def shared_certificate(api: Any, options: WebhookOptions) -> Data:
    """The webhook's certificate and key from the shared Secret, made there if missing or unfit."""
    hostnames = options.hostnames

    def make() -> Data:
        cert, key = self_signed(hostnames)
        return {CERT_KEY: cert, PKEY_KEY: key}

    assert options.secret is not None
    return shared_secret(
        api, options.namespace, options.secret, make, lambda data: certificate_fits(data, hostnames)
    )


def write_certificate(data: Mapping[str, bytes]) -> tuple[Path, Path]:
    """The certificate and key as files for the TLS server, in a directory only we can read."""
    directory = Path(tempfile.mkdtemp(prefix="lanes-webhook-"))
    cert, key = directory / CERT_KEY, directory / PKEY_KEY
    cert.write_bytes(data[CERT_KEY])
    key.touch(mode=0o600)
    key.write_bytes(data[PKEY_KEY])
    return cert, key


def field_manager(request: Mapping[str, Any]) -> str | None:
    """The field manager an admission request's write was made under, if it names one."""
    options = (request.get("request") or {}).get("options") or {}
    return options.get("fieldManager")


def admit_unchanged(request: Mapping[str, Any]) -> dict[str, Any]:
    """An AdmissionReview response that allows the request as it is."""
    return {
        "apiVersion": request.get("apiVersion", "admission.k8s.io/v1"),
        "kind": "AdmissionReview",
        "response": {"uid": (request.get("request") or {}).get("uid", ""), "allowed": True},
    }


class WebhookServer(kopf.WebhookServer):
    """kopf's HTTPS webhook server, with its certificate made by `cryptography`.

    kopf's own generator needs `certbuilder`/`oscrypto`; the latter fails to load against
    OpenSSL 3 builds (https://github.com/wbond/oscrypto/issues/78).
    """

    build_certificate = staticmethod(self_signed)

    async def __call__(self, fn: Any) -> AsyncIterator[Any]:
        """Serve `fn`, answering requests made by the operator itself without calling it."""

        async def unless_own(request: Any, **kwargs: Any) -> Any:
            if field_manager(request) == MANAGER:
                return admit_unchanged(request)
            return await fn(request, **kwargs)

        async for client_config in super().__call__(unless_own):
            yield client_config


def hold(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What to add to an updated Deployment to hold it, or None to admit it as it is.

    A Deployment is held when its pod template changes and it is not paused yet; the hold
    names the rollout (`lanes.dev/held-by`), as the operator's own pause does, so the rollout
    can later tell its hold from a pause the Deployment's owner made. A Deployment the owner
    paused themselves stays as the owner left it.
    """
    if not old or not new:
        return None
    old_template = (old.get("spec") or {}).get("template") or {}
    new_spec = new.get("spec") or {}
    if template_hash(old_template) == template_hash(new_spec.get("template") or {}):
        return None
    if new_spec.get("paused"):
        return None
    rollout = ((new.get("metadata") or {}).get("labels") or {}).get(ROLLOUT_LABEL)
    if not rollout:
        return None
    return {"spec": {"paused": True}, "metadata": {"annotations": {HELD_ANNOTATION: rollout}}}


def deployment_hold(
    old: kopf.Body | None, new: kopf.Body | None, patch: kopf.Patch, **_: Any
) -> None:
    """Mutating admission of a targeted Deployment: pause it when its template changes."""
    added = hold(old, new)
    if added is None:
        return
    patch.spec["paused"] = True
    patch.metadata.setdefault("annotations", {}).update(added["metadata"]["annotations"])


def configure(
    settings: kopf.OperatorSettings, options: WebhookOptions, certificate: Data | None = None
) -> None:
    """Serve the webhook and let kopf keep its MutatingWebhookConfiguration up to date.

    With a `certificate` (from `shared_certificate`) the server uses it and sends it as the
    caBundle; without one it makes a certificate of its own.
    """
    files: dict[str, Any] = {}
    if certificate is not None:
        cert, key = write_certificate(certificate)
        files = {"certfile": cert, "pkeyfile": key, "cadata": certificate[CERT_KEY]}
    settings.admission.server = WebhookServer(
        addr=options.addr, port=options.port or None, host=options.host, **files
    )
    settings.admission.managed = options.config_name


def register(registry: kopf.OperatorRegistry) -> None:
    """Register the mutating webhook on `registry`."""
    kopf.on.mutate(
        "apps", "v1", "deployments",
        id="hold-base",
        operations=["UPDATE"],
        ignore_failures=True,
        persistent=True,
        labels={ROLLOUT_LABEL: kopf.PRESENT, CANARY_LABEL: kopf.ABSENT},
        registry=registry,
    )(deployment_hold)
