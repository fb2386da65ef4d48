"""The routing labels of issue 17 read into the model: header, gRPC-metadata and query matches,
rewrites, header edits, gRPC-Web and CORS, mirroring and fault injection (docs/labels.md). Pure.

Each function reads one concern's labels through the declaration's label reader (labels.py), which
records a problem per malformed label; the cross-label rules here record theirs the same way."""

from __future__ import annotations

from typing import Any, Protocol as TypingProtocol

from controlplane.model.mesh import (
    Cors,
    Fault,
    HeaderEdits,
    HeaderMatch,
    Mirror,
    ProblemKind,
    Protocol,
    QueryMatch,
    Rewrite,
)
from controlplane.model.route_grammar import UPSTREAM, editable_header
from controlplane.model.schema import FAMILIES, LabelFamily

_HEADER_MATCHES, _QUERY_MATCHES, _REQUEST_ADD, _RESPONSE_ADD = FAMILIES[:4]
# Browsers need these to send gRPC-Web calls and read their status (grpc-web's own client sends them).
GRPC_WEB_REQUEST_HEADERS = ("content-type", "x-grpc-web", "x-user-agent", "grpc-timeout")
GRPC_WEB_RESPONSE_HEADERS = ("grpc-status", "grpc-message")


class LabelReader(TypingProtocol):
    """What labels.py's reader offers (a Protocol: this module must not import labels.py)."""

    prefix: str
    service: str | None

    def get(self, name: str) -> Any: ...
    def is_set(self, name: str) -> bool: ...
    def error(self, name: str, message: str, kind: ProblemKind = ProblemKind.INVALID_VALUE) -> None: ...
    def parsed(self, *names: str) -> bool: ...
    def family(self, family: LabelFamily) -> dict[str, Any]: ...
    def family_names(self, family: LabelFamily) -> list[str]: ...


def header_matches(read: LabelReader, listed: tuple[HeaderMatch, ...]) -> tuple[HeaderMatch, ...]:
    """`xds.route.headers` (exact or present) and every `xds.route.header.<name>`, each header once."""
    found = {h.name: h for h in listed}
    for name, match in read.family(_HEADER_MATCHES).items():
        if name in found:
            read.error(
                _HEADER_MATCHES.prefix + name,
                f"{read.prefix}route.headers matches header {name!r} too: match each header in one label",
                ProblemKind.CONFLICTING_LABELS,
            )
            continue
        found[name] = HeaderMatch(name, match.value, match.kind, match.invert)
    names = read.family_names(_HEADER_MATCHES)
    if names and len(found) > _HEADER_MATCHES.max_count:
        read.error(
            names[0],
            f"{len(found)} header matches with {read.prefix}route.headers; at most {_HEADER_MATCHES.max_count} per route are accepted",
        )
    return tuple(sorted(found.values(), key=lambda h: h.name))


def query_matches(read: LabelReader) -> tuple[QueryMatch, ...]:
    return tuple(QueryMatch(name, m.value, m.kind) for name, m in sorted(read.family(_QUERY_MATCHES).items()))


def rewrite(read: LabelReader) -> Rewrite:
    prefix, host = read.get("route.rewrite.prefix"), read.get("route.rewrite.host")
    return Rewrite(prefix=prefix, host=None if host in (None, UPSTREAM) else host, host_to_upstream=host == UPSTREAM)


def header_edits(read: LabelReader) -> HeaderEdits:
    def added(family: LabelFamily) -> tuple[tuple[str, str], ...]:
        found = []
        for name, value in sorted(read.family(family).items()):
            try:
                found.append((editable_header(name), value))
            except ValueError as reason:
                read.error(family.prefix + name, str(reason))
        return tuple(found)

    request_add, response_add = added(_REQUEST_ADD), added(_RESPONSE_ADD)
    request_remove = read.get("route.request-headers.remove") or ()
    response_remove = read.get("route.response-headers.remove") or ()
    for name in set(request_remove) & {n for n, _ in request_add}:
        read.error("route.request-headers.remove", f"also sets {name!r} ({read.prefix}route.request-headers.add.{name}): do one or the other", ProblemKind.CONFLICTING_LABELS)
    for name in set(response_remove) & {n for n, _ in response_add}:
        read.error("route.response-headers.remove", f"also sets {name!r} ({read.prefix}route.response-headers.add.{name}): do one or the other", ProblemKind.CONFLICTING_LABELS)
    return HeaderEdits(request_add, tuple(request_remove), response_add, tuple(response_remove))


_CORS_SETTINGS = ("cors.allow-methods", "cors.allow-headers", "cors.expose-headers", "cors.max-age", "cors.allow-credentials")


def grpc_web(read: LabelReader, protocol: Protocol) -> bool:
    enabled = bool(read.get("grpc-web"))
    if enabled and read.parsed("protocol") and protocol is not Protocol.GRPC:
        read.error("grpc-web", f"expected with {read.prefix}protocol grpc (it is {protocol.value})", ProblemKind.CONFLICTING_LABELS)
    return enabled


def cors(read: LabelReader, with_grpc_web: bool) -> Cors | None:
    origins = read.get("cors.allow-origins")
    settings = {name: read.get(name) for name in _CORS_SETTINGS}
    if origins is None:
        if read.parsed("cors.allow-origins"):
            for name in _CORS_SETTINGS:
                if read.is_set(name):
                    read.error(name, f"expected together with {read.prefix}cors.allow-origins", ProblemKind.MISSING_LABEL)
        return None
    browser_headers = GRPC_WEB_REQUEST_HEADERS if with_grpc_web else ("content-type",)
    credentials = bool(settings["cors.allow-credentials"])
    if credentials and "*" in origins:
        read.error(
            "cors.allow-credentials",
            f"browsers refuse credentials with {read.prefix}cors.allow-origins=*: name the origins",
            ProblemKind.CONFLICTING_LABELS,
        )
    return Cors(
        allow_origins=origins,
        allow_methods=settings["cors.allow-methods"] or ("GET", "POST", "OPTIONS"),
        allow_headers=settings["cors.allow-headers"] or browser_headers,
        expose_headers=settings["cors.expose-headers"] or (GRPC_WEB_RESPONSE_HEADERS if with_grpc_web else ()),
        max_age_s=settings["cors.max-age"],
        allow_credentials=credentials,
    )


def mirror(read: LabelReader) -> Mirror | None:
    service, percent = read.get("mirror.service"), read.get("mirror.percent")
    if service is None:
        if read.parsed("mirror.service") and read.is_set("mirror.percent"):
            read.error("mirror.percent", f"expected together with {read.prefix}mirror.service", ProblemKind.MISSING_LABEL)
        return None
    if service == read.service:
        read.error("mirror.service", "names the service itself: mirror to another service", ProblemKind.CONFLICTING_LABELS)
    return Mirror(service=service, percent=percent or 100.0)


def fault(read: LabelReader, protocol: Protocol) -> Fault | None:
    delay, abort = read.get("fault.delay"), read.get("fault.abort")
    delay_percent, abort_percent = read.get("fault.delay-percent"), read.get("fault.abort-percent")
    headers = read.get("fault.headers") or ()
    if delay is None and read.parsed("fault.delay") and read.is_set("fault.delay-percent"):
        read.error("fault.delay-percent", f"expected together with {read.prefix}fault.delay", ProblemKind.MISSING_LABEL)
    if abort is None and read.parsed("fault.abort") and read.is_set("fault.abort-percent"):
        read.error("fault.abort-percent", f"expected together with {read.prefix}fault.abort", ProblemKind.MISSING_LABEL)
    if delay is None and abort is None:
        if read.parsed("fault.delay", "fault.abort") and read.is_set("fault.headers"):
            read.error("fault.headers", f"expected together with {read.prefix}fault.delay or {read.prefix}fault.abort", ProblemKind.MISSING_LABEL)
        return None
    grpc_status = http_status = None
    if abort is not None:
        kind, code = abort
        if kind == "grpc" and read.parsed("protocol") and protocol is not Protocol.GRPC:
            read.error(
                "fault.abort",
                f"a gRPC status needs {read.prefix}protocol grpc (it is {protocol.value}): give an HTTP status 400-599",
                ProblemKind.CONFLICTING_LABELS,
            )
        grpc_status, http_status = (code, None) if kind == "grpc" else (None, code)
    return Fault(
        delay_ms=delay,
        delay_percent=delay_percent or 100.0,
        abort_grpc_status=grpc_status,
        abort_http_status=http_status,
        abort_percent=abort_percent or 100.0,
        headers=headers,
    )
