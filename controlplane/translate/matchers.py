"""Envoy matchers for a route's header (gRPC metadata) and query parameter matches."""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.type.matcher.v3 import regex_pb2, string_pb2

from controlplane.model.mesh import HeaderMatch, MatchKind, QueryMatch


def string_matcher(kind: MatchKind, value: str) -> string_pb2.StringMatcher:
    """Envoy's StringMatcher; a regex is RE2 (`safe_regex`, the default engine) matching the whole value."""
    if kind is MatchKind.REGEX:
        return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=value))
    return string_pb2.StringMatcher(**{kind.value: value})


def header_matcher(header: HeaderMatch) -> rc.HeaderMatcher:
    """`present_match` (with `invert_match`: absent) or `string_match`; inverted string matches
    need the header present (Envoy: a missing header matches no string match, inverted or not)."""
    if header.value is None:
        return rc.HeaderMatcher(name=header.name, present_match=True, invert_match=header.invert)
    return rc.HeaderMatcher(name=header.name, string_match=string_matcher(header.kind, header.value), invert_match=header.invert)


def query_matcher(query: QueryMatch) -> rc.QueryParameterMatcher:
    if query.value is None:
        return rc.QueryParameterMatcher(name=query.name, present_match=True)
    return rc.QueryParameterMatcher(name=query.name, string_match=string_matcher(query.kind, query.value))
