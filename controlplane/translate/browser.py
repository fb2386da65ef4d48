"""Browsers calling services through Envoy: gRPC-Web (Envoy's grpc_web filter turns a browser's
HTTP/1.1 gRPC-Web call into gRPC and back) and CORS (Envoy's cors filter answers preflights and adds
the Access-Control-* headers). Both filters sit in every Envoy's filter chain; gRPC-Web is off
unless a route turns it on, CORS acts only on routes that carry a policy."""

from __future__ import annotations

import re

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.grpc_web.v3 import grpc_web_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from google.protobuf import any_pb2, wrappers_pb2

from controlplane.model.mesh import Cors
from controlplane.translate.packing import pack

GRPC_WEB = "envoy.filters.http.grpc_web"
CORS = "envoy.filters.http.cors"


def grpc_web_filter() -> hcm_pb2.HttpFilter:
    """Disabled unless a route enables it: a service that did not ask for gRPC-Web never sees it."""
    return hcm_pb2.HttpFilter(name=GRPC_WEB, typed_config=pack(grpc_web_pb2.GrpcWeb()), disabled=True)


def cors_filter() -> hcm_pb2.HttpFilter:
    return hcm_pb2.HttpFilter(name=CORS, typed_config=pack(cors_pb2.Cors()))


def grpc_web_enabled() -> any_pb2.Any:
    """The per-route config that turns the (disabled) grpc_web filter on for a route: a FilterConfig
    whose config is an empty Any (the filter has no per-route settings and refuses any; Envoy reads
    an empty one as "enabled", a missing one as an error)."""
    enabled = rc.FilterConfig()
    enabled.config.SetInParent()
    return pack(enabled)


def _origin(origin: str) -> string_pb2.StringMatcher:
    # Envoy's cors filter lets any origin through when a matcher accepts the string "*".
    if origin == "*" or "://*." not in origin:
        return string_pb2.StringMatcher(exact=origin)
    scheme, _, rest = origin.partition("://*.")
    domain, colon, port = rest.partition(":")
    pattern = f"{re.escape(scheme)}://[a-z0-9.-]+\\.{re.escape(domain)}" + (f":{port}" if colon else "")
    return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=pattern))


def cors_policy(cors: Cors) -> any_pb2.Any:
    """The route's CORS policy (the per-route config of the cors filter)."""
    policy = cors_pb2.CorsPolicy(
        allow_origin_string_match=[_origin(o) for o in cors.allow_origins],
        allow_methods=",".join(cors.allow_methods),
        allow_headers=",".join(cors.allow_headers),
        expose_headers=",".join(cors.expose_headers),
    )
    if cors.max_age_s is not None:
        policy.max_age = str(cors.max_age_s)
    if cors.allow_credentials:
        policy.allow_credentials.CopyFrom(wrappers_pb2.BoolValue(value=True))
    return pack(policy)
