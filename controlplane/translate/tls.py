"""Upstream TLS: the cluster's transport socket when the task serves TLS."""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2

from controlplane.model.mesh import Service
from controlplane.translate.packing import pack

TLS_TRANSPORT_SOCKET = "envoy.transport_sockets.tls"


def upstream_transport_socket(service: Service) -> base_pb2.TransportSocket | None:
    """None for plaintext (h2c) tasks. The task's certificate is not verified: this encrypts the hop
    from Envoy to the task; identity between them comes from the VPC, as with an ALB target group."""
    tls = service.policy.tls
    if tls is None:
        return None
    # A TCP service's bytes are the app's own protocol: no ALPN to offer.
    alpn = ["h2"] if service.protocol.is_http2 else ["http/1.1"] if service.protocol.is_http else []
    context = tls_pb2.UpstreamTlsContext(sni=tls.sni, common_tls_context=tls_pb2.CommonTlsContext(alpn_protocols=alpn))
    return base_pb2.TransportSocket(name=TLS_TRANSPORT_SOCKET, typed_config=pack(context))
