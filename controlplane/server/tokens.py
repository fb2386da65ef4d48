"""Bearer tokens of proxies: a JSON file mapping each token (or its SHA-256) to the identity it proves.

    {"tokens": [
      {"name": "orders-sidecars", "sha256": "<64 hex digits>", "role": "sidecar", "service": "orders"},
      {"name": "edge", "token": "<at least 16 characters>", "role": "edge"}
    ]}

`service` is required for sidecar and grpc-client tokens (`*` = any service: use with care).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Mapping

from controlplane.errors import SettingsError
from controlplane.proxy.roles import EDGE, KNOWN_ROLES
from controlplane.server.identity import ANY, Identity

MIN_TOKEN_LENGTH = 16
_SHA256 = re.compile(r"[0-9a-f]{64}")
_FIELDS = {"name", "token", "sha256", "role", "service"}


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenBook:
    """Tokens by their SHA-256: a lookup never compares secrets byte by byte, and the file may hold hashes only."""

    def __init__(self, identities: Mapping[str, Identity]) -> None:
        self._by_digest = dict(identities)

    def __len__(self) -> int:
        return len(self._by_digest)

    def identity(self, token: str) -> Identity | None:
        return self._by_digest.get(token_digest(token))

    @classmethod
    def load(cls, path: Path) -> TokenBook:
        try:
            document = json.loads(path.read_text())
        except OSError as error:
            raise SettingsError(f"xDS tokens file {path}: {error.strerror}") from None
        except ValueError as error:
            raise SettingsError(f"xDS tokens file {path}: not JSON: {error}") from None
        entries = document.get("tokens") if isinstance(document, dict) else None
        if not isinstance(entries, list) or not entries:
            raise SettingsError(f'xDS tokens file {path}: expected {{"tokens": [{{"name": ..., "token" or "sha256": ..., "role": ..., "service": ...}}]}}')
        identities: dict[str, Identity] = {}
        first_entry: dict[str, int] = {}
        for number, entry in enumerate(entries, start=1):
            digest, identity = _entry(f"xDS tokens file {path}, entry {number}", entry)
            if digest in identities:
                raise SettingsError(
                    f"xDS tokens file {path}, entry {number} ({identity.name}): the same token as entry {first_entry[digest]} "
                    f"({identities[digest].name}); give every identity its own token"
                )
            identities[digest], first_entry[digest] = identity, number
        return cls(identities)


def _entry(where: str, entry: Any) -> tuple[str, Identity]:
    if not isinstance(entry, dict):
        raise SettingsError(f"{where}: expected an object with name, token (or sha256), role and service")
    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise SettingsError(f"{where}: unknown field {unknown[0]!r}; expected {', '.join(sorted(_FIELDS))}")
    name = str(entry.get("name") or "").strip()
    if not name:
        raise SettingsError(f"{where}: expected a name (shown in logs and the admin API)")
    where = f"{where} ({name})"
    token, sha256 = entry.get("token"), entry.get("sha256")
    if (token is None) == (sha256 is None):
        raise SettingsError(f"{where}: expected exactly one of token or sha256")
    if token is not None:
        if not isinstance(token, str) or len(token) < MIN_TOKEN_LENGTH or token != token.strip():
            raise SettingsError(f"{where}: token: expected at least {MIN_TOKEN_LENGTH} characters without surrounding spaces")
        digest = token_digest(token)
    else:
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            raise SettingsError(f"{where}: sha256: expected 64 lowercase hex digits (sha256sum of the token)")
        digest = sha256
    role = entry.get("role")
    if role not in (*KNOWN_ROLES, ANY):
        raise SettingsError(f"{where}: role {role!r}: expected one of {', '.join(KNOWN_ROLES)} or *")
    service = entry.get("service")
    if role == EDGE:
        service = service or ""
    elif not isinstance(service, str) or not service:
        raise SettingsError(f"{where}: role {role} needs a service (the xds.service its proxies belong to, or * for any)")
    return digest, Identity(name=f"token:{name}", role=str(role), service=str(service))
