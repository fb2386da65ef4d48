"""What a route does to the calls it matches besides choosing the service: path and host rewrites,
request and response header edits, mirroring, and the cookie that makes calls sticky (Envoy's
RouteAction and Route fields; docs/labels.md)."""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.type.v3 import percent_pb2
from google.protobuf import wrappers_pb2

from controlplane.model.mesh import CookieHash, HeaderEdits, Mirror, Rewrite
from controlplane.translate.durations import duration

# Percents with up to 4 decimals are exact in millionths.
_PER_MILLION = 10_000


def fractional_percent(percent: float) -> percent_pb2.FractionalPercent:
    """A percent (0-100, at most 6 decimals given) as Envoy's FractionalPercent, exact when it can be."""
    if float(percent).is_integer():
        return percent_pb2.FractionalPercent(numerator=int(percent), denominator=percent_pb2.FractionalPercent.HUNDRED)
    return percent_pb2.FractionalPercent(numerator=round(percent * _PER_MILLION), denominator=percent_pb2.FractionalPercent.MILLION)


def apply_rewrite(action: rc.RouteAction, rewrite: Rewrite) -> None:
    if rewrite.prefix is not None:
        action.prefix_rewrite = rewrite.prefix
    if rewrite.host is not None:
        action.host_rewrite_literal = rewrite.host
    elif rewrite.host_to_upstream:
        action.auto_host_rewrite.CopyFrom(wrappers_pb2.BoolValue(value=True))


def _literal(value: str) -> str:
    # Envoy reads %NAME% in header values as its own variables; label values are literal text.
    return value.replace("%", "%%")


def _set_headers(headers: tuple[tuple[str, str], ...]) -> list[base_pb2.HeaderValueOption]:
    return [
        base_pb2.HeaderValueOption(
            header=base_pb2.HeaderValue(key=name, value=_literal(value)),
            append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
        )
        for name, value in headers
    ]


def apply_header_edits(route: rc.Route, edits: HeaderEdits) -> None:
    route.request_headers_to_add.extend(_set_headers(edits.request_add))
    route.request_headers_to_remove.extend(edits.request_remove)
    route.response_headers_to_add.extend(_set_headers(edits.response_add))
    route.response_headers_to_remove.extend(edits.response_remove)


def mirror_policy(mirror: Mirror) -> rc.RouteAction.RequestMirrorPolicy:
    """The share of calls copied to the mirror's cluster; Envoy appends `-shadow` to the copy's authority."""
    return rc.RouteAction.RequestMirrorPolicy(
        cluster=mirror.service, runtime_fraction=base_pb2.RuntimeFractionalPercent(default_value=fractional_percent(mirror.percent))
    )


def cookie_hash_policy(cookie: CookieHash) -> rc.RouteAction.HashPolicy:
    """Hash the cookie; when a call has none and a TTL is set, Envoy sets one (path /) on the reply."""
    policy = rc.RouteAction.HashPolicy.Cookie(name=cookie.name)
    if cookie.ttl_ms is not None:
        policy.ttl.CopyFrom(duration(cookie.ttl_ms))
        policy.path = "/"
    return rc.RouteAction.HashPolicy(cookie=policy)
