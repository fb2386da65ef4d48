"""The admin gRPC server: the Admin service, gRPC health checking and server reflection."""

from __future__ import annotations

from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from envoy.service.status.v3 import csds_pb2, csds_pb2_grpc

from controlplane.admin.auth import BearerTokenInterceptor
from controlplane.admin.csds import ClientStatusService
from controlplane.admin.service import AdminService
from controlplane.errors import SettingsError
from controlplane.proto.admin.v1 import admin_pb2, admin_pb2_grpc
from controlplane.server.listen import SERVER_OPTIONS, bind, is_loopback


def server_credentials(cert: Path, key: Path, client_ca: Path | None) -> grpc.ServerCredentials:
    """TLS for a server; with a client CA, clients must present a certificate it signed (mTLS)."""
    root = client_ca.read_bytes() if client_ca else None
    return grpc.ssl_server_credentials(
        [(key.read_bytes(), cert.read_bytes())], root_certificates=root, require_client_auth=root is not None
    )


def build_admin_server(
    service: AdminService,
    address: str,
    port: int,
    *,
    token: str | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    tls_client_ca: Path | None = None,
    csds: ClientStatusService | None = None,
) -> tuple[grpc.aio.Server, int, health.HealthServicer]:
    """The server (not started), its bound port and its health servicer.

    Off loopback the admin API must be authenticated, by a bearer token or by mTLS (client CA):
    it shows every service, task address and proxy configuration.
    """
    mtls = tls_client_ca is not None
    if not is_loopback(address) and not token and not mtls:
        raise SettingsError(
            f"admin address {address} is not loopback: set an admin token (--admin-token-file, CONTROLPLANE_ADMIN_TOKEN_FILE "
            "or CONTROLPLANE_ADMIN_TOKEN) "
            "or mTLS (--admin-tls-cert, --admin-tls-key, --admin-tls-client-ca)"
        )
    interceptors = [BearerTokenInterceptor(token)] if token else []
    server = grpc.aio.server(interceptors=interceptors, options=list(SERVER_OPTIONS))
    admin_pb2_grpc.add_AdminServicer_to_server(service, server)
    if csds is not None:
        csds_pb2_grpc.add_ClientStatusDiscoveryServiceServicer_to_server(csds, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (
            admin_pb2.DESCRIPTOR.services_by_name["Admin"].full_name,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            *([csds_pb2.DESCRIPTOR.services_by_name["ClientStatusDiscoveryService"].full_name] if csds is not None else []),
            reflection.SERVICE_NAME,
        ),
        server,
    )
    if (mtls or tls_cert or tls_key) and not (tls_cert and tls_key):
        raise SettingsError("admin TLS needs both --admin-tls-cert and --admin-tls-key")
    credentials = server_credentials(tls_cert, tls_key, tls_client_ca) if tls_cert and tls_key else None
    return server, bind(server, "admin API", address, port, credentials), health_servicer
