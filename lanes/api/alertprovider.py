"""AlertProvider: where a release's notices go (a chat webhook), laid out as Flagger's
AlertProvider so its manifests convert field for field, and the `alerts` a release names."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from .common import API_VERSION, Condition, DnsName, Metadata, Model

KIND = "AlertProvider"
ProviderType = Literal["slack", "msteams", "discord", "generic"]
Severity = Literal["info", "warn", "error"]
Url = Annotated[str, Field(pattern=r"^https?://[^\s/]+")]


class SecretRef(Model):
    """A Secret in the provider's namespace whose `address` key holds the webhook URL, so the
    URL (a credential for Slack, Teams and Discord) need not sit in the spec."""

    name: DnsName


class AlertProviderSpec(Model):
    """A chat service's incoming webhook, and how notices are signed there."""

    type: ProviderType
    address: Url | None = None
    secret_ref: SecretRef | None = None
    channel: str | None = None
    username: str | None = None

    @model_validator(mode="after")
    def _has_address(self) -> AlertProviderSpec:
        if self.address is None and self.secret_ref is None:
            raise ValueError("give address or secretRef: where the notices are posted")
        return self


class AlertProviderStatus(Model):
    """Whether the last notice was delivered (`Ready`), written by the operator."""

    conditions: list[Condition] = Field(default_factory=list)


class AlertProvider(Model):
    """A destination for release notices, named from any release's `alerts` (namespaced)."""

    api_version: Literal["lanes.dev/v1alpha1"] = API_VERSION
    kind: Literal["AlertProvider"] = KIND
    metadata: Metadata
    spec: AlertProviderSpec
    status: AlertProviderStatus | None = None


class ProviderRef(Model):
    """An AlertProvider, in the release's namespace unless `namespace` says otherwise."""

    name: DnsName
    namespace: DnsName | None = None


class Alert(Model):
    """One destination of a release's notices (Flagger's `analysis.alerts` entry).

    `severity` is the least a notice must have to be sent there: `info` sends every notice,
    `warn` the warnings and errors (a failed step, a roll back), `error` only roll backs.
    """

    name: str = Field(min_length=1)
    severity: Severity = "info"
    provider_ref: ProviderRef
