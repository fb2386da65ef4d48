"""Who a proxy is and what it may claim: identities named by certificate SANs or bearer tokens.

A proxy claims a role (edge, sidecar of a service, gRPC client of a service) in its node metadata.
Without authentication anyone could claim anything: the sidecar config of `payments` lists every
upstream of payments and their task addresses. An identity names the one role and service its
holder may claim; the server refuses any other claim with PERMISSION_DENIED.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from controlplane.errors import SettingsError
from controlplane.proxy.roles import EDGE, GRPC_CLIENT, KNOWN_ROLES, SIDECAR, EdgeRole, GrpcClientRole, ProxyRole

ANY = "*"
DEFAULT_SAN_TEMPLATE = "spiffe://ecs.local/ecs/{role}/{service}"
# The service part follows the xds.service label grammar (lowercase letters, digits, '-'): it cannot
# contain the separators of a URI or DNS template, so a SAN matches the template in one way only.
_PLACEHOLDERS = {"role": "(?P<role>" + "|".join(re.escape(r) for r in KNOWN_ROLES) + ")", "service": "(?P<service>[a-z0-9-]+)"}


@dataclass(frozen=True, slots=True)
class Claim:
    """What a node asks to be: a role kind and, except for edge proxies, a service."""

    role: str
    service: str

    @classmethod
    def of(cls, role: ProxyRole) -> Claim:
        if isinstance(role, EdgeRole):
            return cls(EDGE, "")
        return cls(GRPC_CLIENT if isinstance(role, GrpcClientRole) else SIDECAR, role.service)

    def __str__(self) -> str:
        return f"{self.role} of {self.service}" if self.service else self.role


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated proxy: `name` (its SAN, or `token:NAME`) may claim `role` for `service`."""

    name: str
    role: str
    service: str

    def permits(self, claim: Claim) -> bool:
        if self.role not in (ANY, claim.role):
            return False
        # An edge proxy serves no service of its own: its identity's service part is only a name.
        return claim.role == EDGE or self.service in (ANY, claim.service)

    @property
    def scope(self) -> str:
        if self.role == EDGE:
            return EDGE
        return f"{'any role' if self.role == ANY else self.role} of {'any service' if self.service == ANY else self.service}"


# Nothing to prove on an unauthenticated server (loopback, or --xds-insecure): every claim is allowed.
ANONYMOUS = Identity(name="", role=ANY, service=ANY)


class SanScheme:
    """Reads identities from certificate SANs written as a template with {role} and {service}."""

    def __init__(self, template: str = DEFAULT_SAN_TEMPLATE) -> None:
        pattern = ""
        seen: list[str] = []
        for literal, name in re.findall(r"([^{]*)(?:\{([^}]*)\}|$)", template):
            pattern += re.escape(literal)
            if not name:
                continue
            if name not in _PLACEHOLDERS or name in seen:
                raise SettingsError(
                    f"SAN template {template!r}: {{{name}}} is not allowed; use {{role}} and {{service}} once each, "
                    f"e.g. {DEFAULT_SAN_TEMPLATE}"
                )
            seen.append(name)
            pattern += _PLACEHOLDERS[name]
        if sorted(seen) != ["role", "service"]:
            raise SettingsError(f"SAN template {template!r}: expected both {{role}} and {{service}}, e.g. {DEFAULT_SAN_TEMPLATE}")
        self.template = template
        self._pattern = re.compile(pattern)

    def identities(self, sans: Iterable[str]) -> list[Identity]:
        """The identities named by a certificate's SANs (those that fit the template)."""
        found = []
        for san in sans:
            match = self._pattern.fullmatch(san)
            if match:
                found.append(Identity(name=san, role=match["role"], service=match["service"]))
        return found

    def san(self, role: str, service: str) -> str:
        """The SAN a certificate needs to claim `role` of `service` (for messages and docs)."""
        return self.template.replace("{role}", role).replace("{service}", service)
