"""Settings of `controlplane serve`: flags, or environment variables prefixed CONTROLPLANE_."""

from __future__ import annotations

from typing import Annotated, Literal

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from controlplane.model.labels import DEFAULT_PREFIX


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
    deployment_poll_interval_seconds: float = Field(
        default=1.0,
        gt=0,
        le=3600,
        description="polling mode: seconds between reads of a cluster while a deployment is in progress there",
    )
    health_refresh_seconds: float = Field(
        default=2.0,
        gt=0,
        le=3600,
        description="seconds between DescribeTasks of tasks whose health check has not reported HEALTHY yet",
    )
    health_refresh_steady_seconds: float = Field(
        default=30.0,
        gt=0,
        le=86400,
        description="event mode: seconds between DescribeTasks of every health-checked task once all are HEALTHY",
    )
    services_from_port_names: bool = Field(
        default=False,
        description="serve containers without labels through their named port mappings with appProtocol grpc, http2 or http",
    )
    serve_unknown_health: bool = Field(
        default=False,
        description="serve containers whose health check has not reported yet (UNKNOWN) as healthy",
    )
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

    @field_validator("label_prefix")
    @classmethod
    def _prefix_shape(cls, value: str) -> str:
        if not value or any(ch.isspace() for ch in value):
            raise ValueError("expected a non-empty label prefix without spaces, e.g. 'xds.'")
        return value
