"""Settings of `controlplane serve`: flags, or environment variables prefixed CONTROLPLANE_."""

from __future__ import annotations

from typing import Annotated, Literal

from pathlib import Path

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from controlplane.model.labels import DEFAULT_PREFIX
from controlplane.translate.edge_options import DEFAULT_CIPHER_SUITES


class Settings(BaseSettings):
    """Everything `serve` needs. Environment: CONTROLPLANE_CLUSTERS=a,b CONTROLPLANE_XDS_PORT=18000 ..."""

    model_config = SettingsConfigDict(env_prefix="CONTROLPLANE_", extra="forbid")

    clusters: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["default"], min_length=1)
    region: str | None = None
    xds_address: str = "0.0.0.0"
    xds_port: int = Field(default=18000, ge=0, le=65535)
    xds_tls_cert: Path | None = None
    xds_tls_key: Path | None = None
    xds_tls_client_ca: Path | None = None
    admin_address: str = "127.0.0.1"
    admin_port: int = Field(default=18001, ge=0, le=65535)
    admin_token: SecretStr | None = None
    admin_tls_cert: Path | None = None
    admin_tls_key: Path | None = None
    admin_tls_client_ca: Path | None = None
    metrics_address: str = "127.0.0.1"
    metrics_port: int | None = Field(default=18002, ge=0, le=65535)
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
    # The edge listener (docs/envoy.md): TLS by SDS, access log, gRPC stats, limits.
    edge_certificates: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="edge TLS certificate from PEM files, NAME=CERT_FILE,KEY_FILE (repeatable; the first is the default)"
    )
    edge_certificate_secrets: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="edge TLS certificate from AWS Secrets Manager, NAME=SECRET_ID (repeatable)"
    )
    edge_client_ca: Path | None = Field(default=None, description="PEM CA that edge clients' certificates must chain to (turns on mTLS from clients)")
    edge_plaintext: bool = Field(default=False, description="serve the edge listener without TLS, on purpose (no certificate given)")
    edge_tls_min_version: Literal["1.2", "1.3"] = Field(default="1.2", description="lowest TLS version the edge accepts")
    edge_tls_cipher_suites: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_CIPHER_SUITES), description="TLS 1.2 cipher suites the edge offers (comma-separated)"
    )
    edge_access_log: Literal["json", "text", "off"] = Field(default="json", description="edge access log on Envoy's stdout")
    edge_access_log_sample_percent: float = Field(default=100.0, ge=0, le=100, description="share of successful calls logged; failures always are")
    edge_grpc_stats: Literal["per-method", "per-service"] = Field(default="per-method", description="granularity of Envoy's gRPC call stats")
    edge_trusted_hops: int = Field(default=0, ge=0, le=10, description="proxies in front of the edge whose x-forwarded-for entries are trusted")
    edge_max_concurrent_streams: int = Field(default=100, ge=1, le=2147483647, description="HTTP/2 streams per client connection")
    edge_initial_stream_window_bytes: int = Field(default=65536, ge=65535, le=2147483647, description="HTTP/2 initial stream window")
    edge_initial_connection_window_bytes: int = Field(default=1048576, ge=65535, le=2147483647, description="HTTP/2 initial connection window")
    edge_max_request_headers_kb: int = Field(default=60, ge=1, le=8192, description="largest request header block, KiB")
    edge_max_headers_count: int = Field(default=100, ge=1, description="most request headers")
    edge_connection_idle_timeout_seconds: int = Field(default=3600, ge=1, description="close client connections idle this long")
    edge_request_headers_timeout_seconds: int = Field(default=10, ge=1, description="time a client has to send its request headers")
    edge_per_connection_buffer_bytes: int = Field(default=32768, ge=1024, description="buffer limit per client connection")
    certificate_poll_seconds: float = Field(default=2.0, gt=0, le=3600, description="how often certificate files are checked for changes")
    certificate_refresh_seconds: float = Field(default=300.0, gt=0, le=86400, description="how often Secrets Manager certificates are read again")
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("clusters", mode="before")
    @classmethod
    def _split_clusters(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("edge_certificates", "edge_certificate_secrets", "edge_tls_cipher_suites", mode="before")
    @classmethod
    def _split_lists(cls, value: object, info: ValidationInfo) -> object:
        # Entries separated by ';' (a certificate entry holds a comma); cipher suites also by ','.
        if isinstance(value, str):
            if info.field_name == "edge_tls_cipher_suites":
                value = value.replace(",", ";")
            return [part.strip() for part in value.split(";") if part.strip()]
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

    @field_validator("label_prefix")
    @classmethod
    def _prefix_shape(cls, value: str) -> str:
        if not value or any(ch.isspace() for ch in value):
            raise ValueError("expected a non-empty label prefix without spaces, e.g. 'xds.'")
        return value
