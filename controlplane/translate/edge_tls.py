"""TLS termination at the edge: one filter chain per certificate, chosen by SNI, plus a default chain
(the first certificate) for clients that send no SNI or a name no certificate covers.

Each server name goes to exactly one chain (Envoy rejects a listener whose chains overlap): the hosts
that routed services declare and the names in the certificates themselves, each given to the
certificate that covers it best (an exact name beats a wildcard; ties go to the one listed first)."""

from __future__ import annotations

from types import MappingProxyType

from typing import Sequence

from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_components_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from google.protobuf import wrappers_pb2

from controlplane.model.mesh import Mesh
from controlplane.model.routing import is_routed
from controlplane.secrets.certificate import Certificate
from controlplane.translate.config_source import ads_config_source
from controlplane.translate.edge_options import EdgeOptions
from controlplane.translate.packing import pack
from controlplane.translate.secret import CLIENT_CA_SECRET, certificate_secret_name
from controlplane.translate.tls import TLS_TRANSPORT_SOCKET

TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"
TLS_VERSIONS = MappingProxyType({"1.2": common_pb2.TlsParameters.TLSv1_2, "1.3": common_pb2.TlsParameters.TLSv1_3})


def declared_hosts(mesh: Mesh) -> set[str]:
    """Host names routed services declare (not the catch-all '*')."""
    return {
        host
        for service in mesh.services
        if is_routed(service)
        for host in service.route.hosts
        if host != "*"
    }


def server_names(mesh: Mesh, certificates: Sequence[Certificate]) -> dict[str, tuple[str, ...]]:
    """Certificate name -> the SNI names its filter chain matches."""
    assigned: dict[str, list[str]] = {c.name: [] for c in certificates}
    names = declared_hosts(mesh) | {host for c in certificates for host in c.hosts}
    for host in sorted(names):
        best = max(((c.match(host), -index, c) for index, c in enumerate(certificates)), key=lambda t: (t[0], t[1]), default=None)
        if best is not None and best[0] > 0:
            assigned[best[2].name].append(host)
    return {name: tuple(hosts) for name, hosts in assigned.items()}


def downstream_tls(certificate: Certificate, options: EdgeOptions) -> base_pb2.TransportSocket:
    """TLS with `certificate` (by SDS), ALPN h2 for gRPC then http/1.1, the configured versions and ciphers."""
    policy = options.tls
    common = tls_pb2.CommonTlsContext(
        tls_params=common_pb2.TlsParameters(
            tls_minimum_protocol_version=TLS_VERSIONS[policy.min_version],
            tls_maximum_protocol_version=common_pb2.TlsParameters.TLSv1_3,
            cipher_suites=list(policy.cipher_suites),
        ),
        tls_certificate_sds_secret_configs=[
            secret_pb2.SdsSecretConfig(name=certificate_secret_name(certificate), sds_config=ads_config_source())
        ],
        alpn_protocols=["h2", "http/1.1"],
    )
    context = tls_pb2.DownstreamTlsContext(common_tls_context=common)
    if options.certificates.client_ca is not None:
        common.validation_context_sds_secret_config.CopyFrom(
            secret_pb2.SdsSecretConfig(name=CLIENT_CA_SECRET, sds_config=ads_config_source())
        )
        context.require_client_certificate.CopyFrom(wrappers_pb2.BoolValue(value=policy.require_client_certificate))
    return base_pb2.TransportSocket(name=TLS_TRANSPORT_SOCKET, typed_config=pack(context))


def tls_filter_chains(
    mesh: Mesh, options: EdgeOptions, filters: Sequence[listener_components_pb2.Filter]
) -> list[listener_components_pb2.FilterChain]:
    """One chain per certificate that has names, then the default chain; all run the same `filters`."""
    certificates = options.certificates.certificates
    chains = []
    assigned = server_names(mesh, certificates)
    for certificate in certificates:
        names = assigned[certificate.name]
        if names:
            chains.append(
                listener_components_pb2.FilterChain(
                    name=f"sni/{certificate.name}",
                    filter_chain_match=listener_components_pb2.FilterChainMatch(server_names=list(names)),
                    filters=list(filters),
                    transport_socket=downstream_tls(certificate, options),
                )
            )
    chains.append(
        listener_components_pb2.FilterChain(
            name="default", filters=list(filters), transport_socket=downstream_tls(certificates[0], options)
        )
    )
    return chains


def tls_inspector() -> listener_components_pb2.ListenerFilter:
    """Reads SNI and ALPN from the ClientHello, which filter-chain matching needs."""
    return listener_components_pb2.ListenerFilter(name=TLS_INSPECTOR, typed_config=pack(tls_inspector_pb2.TlsInspector()))
