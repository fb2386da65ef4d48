"""The grammars of the routing labels of issue 17: header, gRPC-metadata and query matches, rewrites,
header edits, CORS, cookies, faults. Like grammar.py: pure and total, `parse` returns a value or
raises ValueError (its text, when not empty, says what in particular is wrong)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from controlplane.model.grammar import _HOST, MAX_HOST_CHARS, Duration, Grammar, Pattern, _items
from controlplane.model.mesh import HeaderMatch, MatchKind, QueryMatch
from controlplane.model.regex import checked_regex

MAX_MATCH_VALUE_CHARS = 1024
MAX_HEADER_EDITS = 16
MAX_CORS_ITEMS = 32
UPSTREAM = "upstream"

_HEADER_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]{1,128}")
_QUERY_NAME = re.compile(r"[A-Za-z0-9._~-]{1,128}")
_COOKIE_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}")
_METHOD = re.compile(r"[A-Z]{1,16}")
_ORIGIN = re.compile(rf"(https?)://(\*\.)?({_HOST.pattern})(:[0-9]{{1,5}})?")
# Envoy refuses to add, change or remove these through header edits (the Host has rewrite.host).
_PROTECTED_HEADERS = ("host",)

# gRPC status codes by name (grpc.StatusCode without importing grpc into the model).
GRPC_STATUSES: dict[str, int] = {
    "cancelled": 1, "unknown": 2, "invalid_argument": 3, "deadline_exceeded": 4, "not_found": 5,
    "already_exists": 6, "permission_denied": 7, "resource_exhausted": 8, "failed_precondition": 9,
    "aborted": 10, "out_of_range": 11, "unimplemented": 12, "internal": 13, "unavailable": 14,
    "data_loss": 15, "unauthenticated": 16,
}

HEADER_KEY = Pattern(_HEADER_NAME, "a header name of at most 128 characters (lowercase letters, digits and !#$%&'*+.^_`|~-)", lowercase=True)
QUERY_KEY = Pattern(_QUERY_NAME, "a query parameter name of at most 128 characters (letters, digits and ._~-)")
COOKIE_NAME = Pattern(_COOKIE_NAME, "a cookie name of at most 64 characters (letters, digits and !#$%&'*+.^_`|~-)")


def _match_value(kind: MatchKind, value: str) -> str:
    if not value:
        raise ValueError(f"{kind.value}: needs a value after the colon")
    if len(value) > MAX_MATCH_VALUE_CHARS:
        raise ValueError(f"the value is {len(value)} characters long; at most {MAX_MATCH_VALUE_CHARS} are accepted")
    return checked_regex(value) if kind is MatchKind.REGEX else value


def _kind_and_value(raw: str) -> tuple[MatchKind, str]:
    word, colon, value = raw.partition(":")
    for kind in MatchKind:
        if colon and word.lower() == kind.value:
            return kind, _match_value(kind, value)
    raise ValueError("")


_KINDS = ", ".join(f"{kind.value}:VALUE" for kind in MatchKind)


@dataclass(frozen=True, slots=True)
class HeaderCondition(Grammar[HeaderMatch]):
    """`xds.route.header.<name>`: what the header (or gRPC metadata entry) must be."""

    @property
    def expected(self) -> str:
        return (
            f"present, absent, or {_KINDS} (regex: RE2, whole value), optionally preceded by ! "
            f"(present and not matching); values at most {MAX_MATCH_VALUE_CHARS} characters"
        )

    def parse(self, raw: str) -> HeaderMatch:
        lowered = raw.lower()
        if lowered in ("present", "absent"):
            return HeaderMatch("", None, invert=lowered == "absent")
        invert = raw.startswith("!")
        kind, value = _kind_and_value(raw[1:] if invert else raw)
        return HeaderMatch("", value, kind, invert)


@dataclass(frozen=True, slots=True)
class QueryCondition(Grammar[QueryMatch]):
    """`xds.route.query.<name>`: what the query parameter must be."""

    @property
    def expected(self) -> str:
        return f"present, or {_KINDS} (regex: RE2, whole value); values at most {MAX_MATCH_VALUE_CHARS} characters"

    def parse(self, raw: str) -> QueryMatch:
        if raw.lower() == "present":
            return QueryMatch("", None)
        kind, value = _kind_and_value(raw)
        return QueryMatch("", value, kind)


@dataclass(frozen=True, slots=True)
class HeaderValue(Grammar[str]):
    """A literal header value (a '%' is sent as it is: Envoy's %VARIABLES% are not expanded)."""

    @property
    def expected(self) -> str:
        return f"a header value of 1-{MAX_MATCH_VALUE_CHARS} printable characters"

    def parse(self, raw: str) -> str:
        if not raw or len(raw) > MAX_MATCH_VALUE_CHARS:
            raise ValueError("")
        return raw


@dataclass(frozen=True, slots=True)
class HeaderNames(Grammar[tuple[str, ...]]):
    """A comma-separated list of header names, each once, in the order given."""

    limit: int = MAX_HEADER_EDITS
    editable: bool = False  # headers Envoy may add or remove: not Host

    @property
    def expected(self) -> str:
        host = ", not host (see route.rewrite.host)" if self.editable else ""
        return f"a comma-separated list of at most {self.limit} header names (letters, digits and !#$%&'*+.^_`|~-){host}"

    def parse(self, raw: str) -> tuple[str, ...]:
        names = tuple(dict.fromkeys(item.lower() for item in _items(raw)))
        if not names or len(names) > self.limit or not all(_HEADER_NAME.fullmatch(name) for name in names):
            raise ValueError("")
        if self.editable:
            for name in names:
                if name in _PROTECTED_HEADERS:
                    raise ValueError(f"Envoy does not edit the {name} header: use route.rewrite.host")
        return names


def editable_header(name: str) -> str:
    """`name` when Envoy may add it to requests or responses; ValueError otherwise."""
    if name in _PROTECTED_HEADERS:
        raise ValueError(f"Envoy does not edit the {name} header: use route.rewrite.host")
    return name


@dataclass(frozen=True, slots=True)
class HostRewrite(Grammar[str]):
    """A host name (sent as Host/:authority) or `upstream` (the task's endpoint hostname)."""

    @property
    def expected(self) -> str:
        return f"a host name of at most {MAX_HOST_CHARS} characters, optionally with :port, or {UPSTREAM}"

    def parse(self, raw: str) -> str:
        value = raw.lower()
        if value == UPSTREAM:
            return UPSTREAM
        host, colon, port = value.partition(":")
        if len(host) > MAX_HOST_CHARS or not _HOST.fullmatch(host) or "*" in host:
            raise ValueError("")
        if colon and not (port.isdigit() and len(port) <= 5 and 1 <= int(port) <= 65535):
            raise ValueError("")
        return value


@dataclass(frozen=True, slots=True)
class Origins(Grammar[tuple[str, ...]]):
    @property
    def expected(self) -> str:
        return (
            f"a comma-separated list of at most {MAX_CORS_ITEMS} origins: *, scheme://host[:port] or "
            "scheme://*.domain[:port] (any subdomain), scheme http or https"
        )

    def parse(self, raw: str) -> tuple[str, ...]:
        origins = tuple(dict.fromkeys(item.lower() for item in _items(raw)))
        if not origins or len(origins) > MAX_CORS_ITEMS:
            raise ValueError("")
        for origin in origins:
            if origin != "*" and (not _ORIGIN.fullmatch(origin) or len(origin) > MAX_HOST_CHARS + 16):
                raise ValueError(f"{origin!r} is not an origin" if len(origin) <= 80 else "")
        return origins


@dataclass(frozen=True, slots=True)
class Methods(Grammar[tuple[str, ...]]):
    @property
    def expected(self) -> str:
        return f"a comma-separated list of at most {MAX_CORS_ITEMS} HTTP methods such as GET,POST,OPTIONS"

    def parse(self, raw: str) -> tuple[str, ...]:
        methods = tuple(dict.fromkeys(item.upper() for item in _items(raw)))
        if not methods or len(methods) > MAX_CORS_ITEMS or not all(_METHOD.fullmatch(m) for m in methods):
            raise ValueError("")
        return methods


@dataclass(frozen=True, slots=True)
class WholeSeconds(Grammar[int]):
    """A duration in whole seconds (CORS max age), as seconds."""

    duration: Duration = Duration(1000, 86_400_000)

    @property
    def expected(self) -> str:
        return self.duration.expected + ", whole seconds"

    def parse(self, raw: str) -> int:
        ms = self.duration.parse(raw)
        if ms % 1000:
            raise ValueError(f"{raw} is not a whole number of seconds")
        return ms // 1000


@dataclass(frozen=True, slots=True)
class AbortStatus(Grammar[tuple[str, int]]):
    """The status of an injected abort: ("grpc", code) for a gRPC status name, ("http", code) for 400-599."""

    @property
    def expected(self) -> str:
        return "a gRPC status name such as UNAVAILABLE or RESOURCE_EXHAUSTED (gRPC services), or an HTTP status 400-599"

    def parse(self, raw: str) -> tuple[str, int]:
        name = raw.lower().replace("-", "_")
        if name in GRPC_STATUSES:
            return ("grpc", GRPC_STATUSES[name])
        if raw.isdigit() and len(raw) == 3 and 400 <= int(raw) <= 599:
            return ("http", int(raw))
        raise ValueError("")
