"""What the edge listener is built from besides the Mesh: its certificates and the operator's settings
(TLS policy, access log, gRPC stats, limits). A frozen value: equal options, equal Envoy resources."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from controlplane.secrets.certificate import CertificateSet

# ECDHE key exchange with AEAD ciphers only: forward secrecy, no CBC. TLS 1.3 suites are not
# configurable in BoringSSL (always AES-GCM and ChaCha20-Poly1305).
DEFAULT_CIPHER_SUITES: tuple[str, ...] = (
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
)


class AccessLogFormat(StrEnum):
    JSON = "json"
    TEXT = "text"  # Envoy's default one-line format
    OFF = "off"


class GrpcStats(StrEnum):
    """`per-method`: cluster.<service>.grpc.<pkg.Service>.<Method>.*; `per-service`: cluster.<service>.grpc.*.
    Per method lets clients that send made-up method names create stats: prefer per-service when they are untrusted."""

    PER_METHOD = "per-method"
    PER_SERVICE = "per-service"


@dataclass(frozen=True, slots=True)
class TlsPolicy:
    min_version: str = "1.2"  # "1.2" or "1.3"
    cipher_suites: tuple[str, ...] = DEFAULT_CIPHER_SUITES
    require_client_certificate: bool = True  # only when a client CA is configured


@dataclass(frozen=True, slots=True)
class AccessLog:
    format: AccessLogFormat = AccessLogFormat.JSON
    sample_percent: float = 100.0  # of successful calls; failed calls are always logged


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    """Defaults from Envoy's 'Configuring Envoy as an edge proxy' best practices."""

    trusted_hops: int = 0  # x-forwarded-for hops in front of Envoy to trust (e.g. 1 behind an NLB with proxy protocol off: 0)
    max_concurrent_streams: int = 100
    initial_stream_window_bytes: int = 65536  # 64 KiB
    initial_connection_window_bytes: int = 1048576  # 1 MiB
    max_request_headers_kb: int = 60
    max_headers_count: int = 100
    connection_idle_timeout_seconds: int = 3600
    request_headers_timeout_seconds: int = 10
    per_connection_buffer_bytes: int = 32768  # 32 KiB


@dataclass(frozen=True, slots=True)
class EdgeOptions:
    certificates: CertificateSet = CertificateSet()
    tls: TlsPolicy = TlsPolicy()
    access_log: AccessLog = AccessLog()
    grpc_stats: GrpcStats = GrpcStats.PER_METHOD
    limits: EdgeLimits = EdgeLimits()
    listener_patch: str | None = None  # JSON merge patch of the edge listener (serve --edge-listener-patch; patch.py)

    @property
    def tls_enabled(self) -> bool:
        return bool(self.certificates.certificates)
