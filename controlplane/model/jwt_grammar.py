"""Label values of JWT validation at the edge: issuer and JWKS URLs, audiences, claim names. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass

from controlplane.model.grammar import Grammar, Pattern

MAX_URL_CHARS = 512
MAX_AUDIENCES = 16
MAX_CLAIM_HEADERS = 16
_HOST_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_IPV4 = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}"
_URL = re.compile(rf"(https?)://({_HOST_LABEL}(\.{_HOST_LABEL})*|{_IPV4})(:([0-9]{{1,5}}))?(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?")
_AUDIENCE = re.compile(r"[\x21-\x2b\x2d-\x7e]{1,256}")  # printable, no space or comma
# A claim name; Envoy reads `a.b` as claim b inside object claim a.
CLAIM_KEY = Pattern(re.compile(r"[A-Za-z0-9_:.-]{1,128}"), "a claim name of at most 128 characters (letters, digits and _:.-)")


@dataclass(frozen=True, slots=True)
class Url(Grammar[str]):
    """An http(s) URL with a host name or IPv4 address, an optional port and path; no query."""

    what: str

    @property
    def expected(self) -> str:
        return f"{self.what}: an http:// or https:// URL with a host and an optional port and path, at most {MAX_URL_CHARS} characters"

    def parse(self, raw: str) -> str:
        match = _URL.fullmatch(raw)
        if not match or len(raw) > MAX_URL_CHARS:
            raise ValueError("")
        port = match.group(10)
        if port is not None and not 1 <= int(port) <= 65535:
            raise ValueError(f"port {port} is not 1-65535")
        return raw


@dataclass(frozen=True, slots=True)
class Audiences(Grammar[tuple[str, ...]]):
    @property
    def expected(self) -> str:
        return f"a comma-separated list of at most {MAX_AUDIENCES} audiences (printable, no spaces)"

    def parse(self, raw: str) -> tuple[str, ...]:
        items = tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
        if not items or len(items) > MAX_AUDIENCES or not all(_AUDIENCE.fullmatch(item) for item in items):
            raise ValueError("")
        return items
