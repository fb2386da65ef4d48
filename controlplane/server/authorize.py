"""Admits an xDS stream: authenticates the proxy (client certificate or bearer token) and checks
that its identity may claim the role its node metadata asks for."""

from __future__ import annotations

from typing import Any, Sequence

import grpc
import structlog

from controlplane.errors import ControlPlaneError
from controlplane.proxy.roles import ProxyRole
from controlplane.server.identity import ANONYMOUS, Claim, Identity, SanScheme
from controlplane.server.tokens import TokenBook

log = structlog.get_logger()

UNAUTHENTICATED = "unauthenticated"
PERMISSION_DENIED = "permission_denied"


class AccessDenied(ControlPlaneError):
    """The stream is refused; `code` is the gRPC status the proxy receives, `reason` the metric label."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = UNAUTHENTICATED if code == grpc.StatusCode.UNAUTHENTICATED else PERMISSION_DENIED


class StreamAuthorizer:
    """Decides whether a stream may have the role it claims.

    With neither client certificates (`certificates=True`: the server requires them) nor a token
    book, every stream is admitted as ANONYMOUS: the server is on loopback, or was told
    --xds-insecure. Otherwise a stream must present a credential, and one of the identities its
    credentials prove must permit the claim.
    """

    def __init__(
        self,
        *,
        certificates: bool = False,
        sans: SanScheme | None = None,
        tokens: TokenBook | None = None,
    ) -> None:
        self._certificates = certificates
        self._sans = sans or SanScheme()
        self._tokens = tokens

    @property
    def required(self) -> bool:
        return self._certificates or self._tokens is not None

    def admit(self, context: grpc.aio.ServicerContext, node_id: str, role: ProxyRole) -> Identity:
        """The identity the stream acts as, or AccessDenied (logged here; the server counts it)."""
        if not self.required:
            return ANONYMOUS
        claim = Claim.of(role)
        identities: list[Identity] = []
        try:
            identities, notes = self._identities(context)
            refusal = _refusal(identities, notes, claim, node_id)
        except AccessDenied as error:
            refusal = error
        if refusal is None:
            return next(identity for identity in identities if identity.permits(claim))
        log.warning(
            "xds.unauthenticated" if refusal.reason == UNAUTHENTICATED else "xds.permission_denied",
            node_id=node_id,
            peer=context.peer(),
            claim=str(claim),
            identities=[identity.name for identity in identities],
            error=str(refusal),
        )
        raise refusal

    def _identities(self, context: grpc.aio.ServicerContext) -> tuple[list[Identity], list[str]]:
        """Every identity the stream's credentials prove, and why a presented one proved none."""
        identities: list[Identity] = []
        notes: list[str] = []
        auth = context.auth_context() or {}
        subject = _texts(auth.get("x509_subject", ()))
        if self._certificates and subject:
            sans = _texts(auth.get("x509_subject_alternative_name", ()))
            found = self._sans.identities(sans)
            identities += found
            if not found:
                example = self._sans.san("sidecar", "orders")
                notes.append(
                    f"its client certificate ({subject[0]}, SANs {', '.join(sans) or 'none'}) names no identity: "
                    f"expected a SAN like {example} (template {self._sans.template})"
                )
        token = _bearer(context.invocation_metadata() or ())
        if self._tokens is not None and token is not None:
            identity = self._tokens.identity(token)
            if identity is None:
                raise AccessDenied(grpc.StatusCode.UNAUTHENTICATED, "unknown bearer token")
            identities.append(identity)
        return identities, notes


def _refusal(identities: Sequence[Identity], notes: Sequence[str], claim: Claim, node_id: str) -> AccessDenied | None:
    if any(identity.permits(claim) for identity in identities):
        return None
    if not identities and not notes:
        return AccessDenied(
            grpc.StatusCode.UNAUTHENTICATED,
            "no credential: present a client certificate or send metadata 'authorization: Bearer <token>'",
        )
    held = "; ".join([f"{identity.name} may claim {identity.scope}" for identity in identities] + list(notes))
    return AccessDenied(grpc.StatusCode.PERMISSION_DENIED, f"node {node_id!r} claims {claim}, which its credentials do not allow: {held}")


def _texts(values: Sequence[bytes | str]) -> list[str]:
    return [value.decode(errors="replace") if isinstance(value, bytes) else value for value in values]


def _bearer(metadata: Sequence[Any]) -> str | None:
    for key, value in metadata:
        if key == "authorization":
            text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
            scheme, _, token = text.partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return None
