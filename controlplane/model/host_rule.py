"""The default host rule: a template (`{service}.example.com`) that gives every routed service without
`xds.route.hosts` a host of its own, instead of the catch-all `*` (Traefik's defaultRule). Pure.

Placeholders: `{service}` (the service name), `{family}` (the task-definition family that owns the
service) and `{cluster}` (each ECS cluster the service has tasks in: one host per cluster). Family and
cluster names are normalised into host labels: lowercase, any character other than a letter, a digit
or '-' becomes '-', leading and trailing '-' dropped."""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from dataclasses import dataclass

from controlplane.model.grammar import _HOST, MAX_HOST_CHARS

PLACEHOLDERS = ("service", "family", "cluster")
_NOT_HOST_CHAR = re.compile(r"[^a-z0-9-]+")
_LITERAL = re.compile(r"[a-z0-9.-]*")
MAX_LABEL_CHARS = 63


def normalized(name: str) -> str:
    """A family or cluster name as a host label: `Orders_API` -> `orders-api`."""
    return _NOT_HOST_CHAR.sub("-", name.lower()).strip("-")


@dataclass(frozen=True, slots=True)
class DefaultHostRule:
    template: str

    @classmethod
    def parse(cls, template: str) -> DefaultHostRule:
        """The rule, or ValueError saying what is wrong with the template."""
        text = template.strip().lower()
        if not text:
            raise ValueError("the template is empty")
        fields = []
        try:
            parts = list(string.Formatter().parse(text))
        except ValueError as reason:
            raise ValueError(f"{template!r}: {reason} (write placeholders as {{service}}, {{family}}, {{cluster}})") from None
        for literal, field, spec, conversion in parts:
            if not _LITERAL.fullmatch(literal):
                raise ValueError(f"{template!r}: {literal!r} is not part of a host name (letters, digits, '-' and '.')")
            if field is None:
                continue
            if field not in PLACEHOLDERS or spec or conversion:
                raise ValueError(f"{template!r}: unknown placeholder {{{field}}}; expected {{service}}, {{family}} or {{cluster}}")
            fields.append(field)
        if not fields:
            raise ValueError(f"{template!r} has no placeholder: every service would get the same host; use {{service}}")
        rule = cls(text)
        sample = rule.host("a", "a", "a")
        if not _HOST.fullmatch(sample):
            raise ValueError(f"{template!r} does not give a host name (e.g. {sample!r} for service, family and cluster 'a')")
        return rule

    @property
    def uses_cluster(self) -> bool:
        return "{cluster}" in self.template

    def host(self, service: str, family: str, cluster: str) -> str:
        return self.template.format(service=service, family=normalized(family), cluster=normalized(cluster))

    def hosts(self, service: str, family: str, clusters: Iterable[str]) -> tuple[str, ...]:
        """The service's hosts (one per cluster when the template names {cluster}); ValueError for
        names that make no host (an empty or too long label, a host over 253 characters)."""
        found = sorted({self.host(service, family, c) for c in (clusters if self.uses_cluster else [""])})
        for host in found:
            labels = host.split(".")
            too_long = [label for label in labels if len(label) > MAX_LABEL_CHARS]
            if too_long:
                raise ValueError(f"{host!r} has a label of {len(too_long[0])} characters (at most {MAX_LABEL_CHARS})")
            if len(host) > MAX_HOST_CHARS or not _HOST.fullmatch(host):
                raise ValueError(f"{host!r} is not a host name of at most {MAX_HOST_CHARS} characters")
        return tuple(found)
