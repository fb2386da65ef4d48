"""JWT validation at the edge: Envoy's jwt_authn filter, with one provider per service that asks for
it (`xds.jwt.*`, docs/labels.md), a requirement per service, and each such service's route naming its
requirement (per-route config). Routes without one are not checked.

The filter is in the edge's chain only while some service asks for it, so an edge without JWT
services is exactly what it was before (goldens unchanged, nothing to run per call). Providers are
filter-level config: a change to one service's JWT labels updates the edge listener (Envoy swaps the
filter chain and drains the old connections gracefully)."""

from __future__ import annotations

import ipaddress
import urllib.parse
from typing import TypeAlias

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2, http_uri_pb2
from envoy.extensions.filters.http.jwt_authn.v3 import config_pb2 as jwt_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import any_pb2

from controlplane.model.mesh import JwtAuth, Mesh, Service
from controlplane.translate.cluster import cluster
from controlplane.translate.durations import duration
from controlplane.translate.endpoint import single_address_assignment
from controlplane.translate.packing import pack
from controlplane.translate.tls import TLS_TRANSPORT_SOCKET

JWT_AUTHN = "envoy.filters.http.jwt_authn"
# How long a fetched JWKS is used before it is fetched again (Envoy's default is 10 minutes), and how
# long a fetch may take: issuers rotate keys with overlap, so 5 minutes picks up a new key in time.
JWKS_CACHE_MS = 300_000
JWKS_FETCH_TIMEOUT_MS = 5_000
# The CA bundle an https JWKS URL's certificate is checked against: where the Envoy images (Debian and
# Ubuntu based) keep the system's roots. Envoy refuses a name check without a trusted CA file.
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

# A string, not the type itself: translate modules hold no mutable globals, and a GenericAlias is one.
Guarded: TypeAlias = "tuple[tuple[str, JwtAuth], ...]"


def guarded(mesh: Mesh) -> Guarded:
    """(service, its JWT settings) for every service whose edge route needs a JWT, by name."""
    return tuple((s.name, s.policy.jwt) for s in mesh.services if s.policy.jwt is not None and s.subset_of is None and s.route.enabled)


def jwks_cluster_name(uri: str) -> str:
    """The cluster the control plane builds for a JWKS URL's host: `jwks:host:port` (service names
    have no ':', so it never collides with a service's cluster)."""
    parts = urllib.parse.urlsplit(uri)
    return f"jwks:{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def _provider(jwt: JwtAuth) -> jwt_pb2.JwtProvider:
    provider = jwt_pb2.JwtProvider(
        issuer=jwt.issuer,
        audiences=list(jwt.audiences),
        forward=jwt.forward,
        claim_to_headers=[jwt_pb2.JwtClaimToHeader(claim_name=claim, header_name=header) for claim, header in jwt.claim_headers],
    )
    if jwt.jwks is not None:
        provider.local_jwks.inline_string = jwt.jwks
    else:
        assert jwt.jwks_uri is not None
        remote = provider.remote_jwks
        remote.http_uri.CopyFrom(
            http_uri_pb2.HttpUri(
                uri=jwt.jwks_uri, cluster=jwt.jwks_service or jwks_cluster_name(jwt.jwks_uri), timeout=duration(JWKS_FETCH_TIMEOUT_MS)
            )
        )
        remote.cache_duration.CopyFrom(duration(JWKS_CACHE_MS))
        # Fetched when the listener starts, not by the first call (which would wait for it).
        remote.async_fetch.SetInParent()
    return provider


def jwt_filter(services: Guarded) -> hcm_pb2.HttpFilter | None:
    """The edge's jwt_authn filter, None when no service asks for JWT validation."""
    if not services:
        return None
    config = jwt_pb2.JwtAuthentication()
    for name, jwt in services:
        config.providers[name].CopyFrom(_provider(jwt))
        config.requirement_map[name].CopyFrom(jwt_pb2.JwtRequirement(provider_name=name))
    return hcm_pb2.HttpFilter(name=JWT_AUTHN, typed_config=pack(config))


def route_requirement(service: Service) -> any_pb2.Any:
    """The per-route config that makes the route's calls need the service's JWT."""
    return pack(jwt_pb2.PerRouteConfig(requirement_name=service.name))


def jwks_clusters(services: Guarded) -> dict[str, cluster_pb2.Cluster]:
    """The clusters the control plane builds for JWKS URLs no service serves: static for an IP
    address, DNS-resolved for a host name (an identity provider outside the cluster), TLS for https."""
    clusters: dict[str, cluster_pb2.Cluster] = {}
    for _, jwt in services:
        if jwt.jwks_uri is None or jwt.jwks_service is not None:
            continue
        name = jwks_cluster_name(jwt.jwks_uri)
        if name not in clusters:
            clusters[name] = _jwks_cluster(name, jwt.jwks_uri)
    return dict(sorted(clusters.items()))


def _jwks_cluster(name: str, uri: str) -> cluster_pb2.Cluster:
    parts = urllib.parse.urlsplit(uri)
    host, tls = parts.hostname or "", parts.scheme == "https"
    message = cluster(name, static=single_address_assignment(name, host, parts.port or (443 if tls else 80)))
    try:
        ipaddress.ip_address(host)
    except ValueError:
        message.type = cluster_pb2.Cluster.LOGICAL_DNS
        message.dns_lookup_family = cluster_pb2.Cluster.V4_PREFERRED
    if tls:
        # The identity provider's certificate is verified against the system's roots, with its name.
        context = tls_pb2.UpstreamTlsContext(
            sni=host,
            common_tls_context=tls_pb2.CommonTlsContext(
                validation_context=common_pb2.CertificateValidationContext(
                    trusted_ca=base_pb2.DataSource(filename=SYSTEM_CA_BUNDLE),
                    match_typed_subject_alt_names=[
                        common_pb2.SubjectAltNameMatcher(
                            san_type=common_pb2.SubjectAltNameMatcher.DNS, matcher=string_pb2.StringMatcher(exact=host)
                        )
                    ],
                )
            ),
        )
        message.transport_socket.CopyFrom(base_pb2.TransportSocket(name=TLS_TRANSPORT_SOCKET, typed_config=pack(context)))
    return message
