"""The JWT labels (`xds.jwt.*`) and the escape hatch's patch labels (`xds.patch.*`) read into the
model (docs/labels.md, "JWT at the edge" and "Escape hatch"). Pure.

Like route_labels.py, each function reads one concern through the declaration's label reader, which
records a problem per malformed label; the cross-label rules here record theirs the same way."""

from __future__ import annotations

from controlplane.model.mesh import JwtAuth, ProblemKind, ResourcePatches
from controlplane.model.route_grammar import editable_header
from controlplane.model.route_labels import LabelReader
from controlplane.model.schema import FAMILIES

_CLAIM_HEADERS = next(family for family in FAMILIES if family.prefix == "jwt.claim-header.")
_SETTINGS = ("jwt.audiences", "jwt.jwks-uri", "jwt.jwks-service", "jwt.jwks", "jwt.forward")


def jwt(read: LabelReader) -> JwtAuth | None:
    issuer = read.get("jwt.issuer")
    uri, service, inline = read.get("jwt.jwks-uri"), read.get("jwt.jwks-service"), read.get("jwt.jwks")
    claims = read.family(_CLAIM_HEADERS)
    if issuer is None:
        if read.parsed("jwt.issuer"):
            for name in (*_SETTINGS, *read.family_names(_CLAIM_HEADERS)):
                if read.is_set(name):
                    read.error(name, f"expected together with {read.prefix}jwt.issuer", ProblemKind.MISSING_LABEL)
        return None
    p = read.prefix
    if read.parsed("jwt.jwks-uri", "jwt.jwks"):
        if read.is_set("jwt.jwks-uri") and read.is_set("jwt.jwks"):
            read.error("jwt.jwks", f"{p}jwt.jwks-uri is set too: give the keys inline or by URL, not both", ProblemKind.CONFLICTING_LABELS)
        elif not read.is_set("jwt.jwks-uri") and not read.is_set("jwt.jwks"):
            read.error("jwt.issuer", f"expected with {p}jwt.jwks-uri (the issuer's JWKS URL) or {p}jwt.jwks (the keys inline)", ProblemKind.MISSING_LABEL)
    if read.is_set("jwt.jwks-service") and read.parsed("jwt.jwks-uri") and not read.is_set("jwt.jwks-uri"):
        read.error("jwt.jwks-service", f"expected together with {p}jwt.jwks-uri", ProblemKind.MISSING_LABEL)
    if service is not None and service == read.service:
        read.error("jwt.jwks-service", "names the service itself: its calls need the keys it would serve", ProblemKind.CONFLICTING_LABELS)
    headers: list[tuple[str, str]] = []
    for claim, header in sorted(claims.items()):
        try:
            headers.append((claim, editable_header(header)))
        except ValueError as reason:
            read.error(_CLAIM_HEADERS.prefix + claim, str(reason))
    taken = [h for i, (_, h) in enumerate(headers) if h in (other for _, other in headers[:i])]
    for claim, header in headers:
        if header in taken:
            read.error(_CLAIM_HEADERS.prefix + claim, f"another {p}jwt.claim-header.* label sets header {header!r} too", ProblemKind.CONFLICTING_LABELS)
            break
    return JwtAuth(
        issuer=issuer,
        audiences=read.get("jwt.audiences") or (),
        jwks_uri=uri,
        jwks_service=service,
        jwks=inline,
        claim_headers=tuple(headers),
        forward=bool(read.get("jwt.forward")),
    )


def patches(read: LabelReader) -> ResourcePatches:
    return ResourcePatches(cluster=read.get("patch.cluster"), route=read.get("patch.route"))
