"""Settings of `controlplane serve`: flags, or environment variables prefixed CONTROLPLANE_."""

from __future__ import annotations

from typing import Annotated, Literal

from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from controlplane.errors import SettingsError
from controlplane.model.labels import DEFAULT_PREFIX
from controlplane.server.identity import DEFAULT_SAN_TEMPLATE, SanScheme


class Settings(BaseSettings):
    """Everything `serve` needs. Environment: CONTROLPLANE_CLUSTERS=a,b CONTROLPLANE_XDS_PORT=18000 ..."""

    model_config = SettingsConfigDict(env_prefix="CONTROLPLANE_", extra="forbid")

    clusters: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["default"], min_length=1)
    region: str | None = None
    # Loopback by default: off loopback xDS needs TLS and proxy authentication, or --xds-insecure.
    xds_address: str = Field(default="127.0.0.1", description="address to serve xDS on; off loopback needs TLS and proxy authentication or --xds-insecure")
    xds_port: int = Field(default=18000, ge=0, le=65535)
    xds_tls_cert: Path | None = None
    xds_tls_key: Path | None = None
    xds_tls_client_ca: Path | None = None
    xds_insecure: bool = Field(default=False, description="serve xDS off loopback without TLS or without proxy authentication (logged at every start)")
    xds_tokens_file: Path | None = Field(
        default=None, description="JSON file of proxy bearer tokens and the role/service each may claim (docs/security.md)"
    )
    xds_san_template: str = Field(
        default=DEFAULT_SAN_TEMPLATE,
        description="the client-certificate SAN that names a proxy's identity, with {role} and {service}",
    )
    admin_address: str = "127.0.0.1"
    admin_port: int = Field(default=18001, ge=0, le=65535)
    admin_token: SecretStr | None = None
    admin_token_file: Path | None = Field(default=None, description="file holding the admin API bearer token (keeps it out of argv)")
    admin_tls_cert: Path | None = None
    admin_tls_key: Path | None = None
    admin_tls_client_ca: Path | None = None
    metrics_address: str = "127.0.0.1"
    metrics_port: int | None = Field(default=18002, ge=0, le=65535)
    metrics_insecure: bool = Field(default=False, description="serve the unauthenticated Prometheus endpoint off loopback")
    readiness_stale_after_seconds: float | None = Field(
        default=None,
        gt=0,
        description="health turns NOT_SERVING when the served config was not confirmed against ECS for this long "
        "(default: twice the full-read interval + 60 s)",
    )
    aws_max_attempts: int = Field(default=5, ge=1, le=20)
    label_prefix: str = DEFAULT_PREFIX
    poll_interval_seconds: float = Field(default=5.0, gt=0, le=3600)
    # Discovery: event mode (ECS events routed by EventBridge to SQS) and what to watch.
    events_queue_url: str | None = None
    resync_interval_seconds: float = Field(default=300.0, gt=0, le=86400)
    events_trust_details: bool = True
    discover_clusters: bool = False
    service_filter: str | None = None
    family_filter: str | None = None
    discovery_concurrency: int = Field(default=4, ge=1, le=64)
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("clusters", mode="before")
    @classmethod
    def _split_clusters(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("service_filter", "family_filter")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        if value is not None:
            import re

            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"expected a regular expression (matched against the whole name): {exc}") from exc
        return value

    @field_validator("xds_san_template")
    @classmethod
    def _san_template(cls, value: str) -> str:
        try:
            SanScheme(value)
        except SettingsError as error:
            raise ValueError(str(error)) from None
        return value

    @model_validator(mode="after")
    def _one_admin_token(self) -> Settings:
        if self.admin_token is not None and self.admin_token_file is not None:
            raise ValueError("set the admin token once: admin_token or admin_token_file, not both")
        return self

    @property
    def readiness_window_seconds(self) -> float:
        """How long the served config may go unconfirmed before health says NOT_SERVING."""
        if self.readiness_stale_after_seconds is not None:
            return self.readiness_stale_after_seconds
        # In event mode a view is confirmed by each full resync; in polling mode by each poll.
        full_read = self.resync_interval_seconds if self.events_queue_url else self.poll_interval_seconds
        return 2 * full_read + 60.0

    def resolved_admin_token(self) -> str | None:
        """The admin token from admin_token or from the file admin_token_file names."""
        if self.admin_token is not None:
            if not self.admin_token.get_secret_value().strip():
                raise SettingsError("the admin token is empty: it would accept anyone")
            return self.admin_token.get_secret_value()
        if self.admin_token_file is None:
            return None
        try:
            token = self.admin_token_file.read_text().strip()
        except OSError as error:
            raise SettingsError(f"admin token file {self.admin_token_file}: {error.strerror}") from None
        if not token:
            raise SettingsError(f"admin token file {self.admin_token_file} is empty")
        return token

    @field_validator("label_prefix")
    @classmethod
    def _prefix_shape(cls, value: str) -> str:
        if not value or any(ch.isspace() for ch in value):
            raise ValueError("expected a non-empty label prefix without spaces, e.g. 'xds.'")
        return value
