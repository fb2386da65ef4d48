"""Label values holding JSON: a JWKS (`xds.jwt.jwks`) and the escape hatch's merge patches
(`xds.patch.cluster`, `xds.patch.route`). Pure and total like every grammar.

The value is kept as canonical JSON text (sorted keys, no spaces): a frozen, hashable value whose
equality means equal JSON, so two revisions writing the same JSON differently declare the same settings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from controlplane.model.grammar import Grammar

MAX_DEPTH = 16


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def json_object(raw: str) -> dict[str, Any]:
    """`raw` as a JSON object; ValueError saying where the JSON is broken, or what it is instead."""
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON: {error.msg} at character {error.pos + 1}") from None
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    if not isinstance(value, dict):
        raise ValueError(f"a JSON {type(value).__name__.replace('str', 'string').replace('NoneType', 'null')}, not an object")
    if _depth(value) > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"not JSON: {name} is not a JSON number")


@dataclass(frozen=True, slots=True)
class MergePatch(Grammar[str]):
    """A JSON merge patch (RFC 7386): a JSON object whose keys are the resource's protobuf field names."""

    resource: str

    @property
    def expected(self) -> str:
        return f"a JSON object (an RFC 7386 merge patch of the {self.resource}, with the field names of Envoy's docs)"

    def parse(self, raw: str) -> str:
        return canonical(json_object(raw))


_KEY_TYPES = ("RSA", "EC", "oct", "OKP")


@dataclass(frozen=True, slots=True)
class Jwks(Grammar[str]):
    """A JSON Web Key Set (RFC 7517): {"keys": [{"kty": ..., ...}, ...]}."""

    @property
    def expected(self) -> str:
        return 'a JSON Web Key Set: {"keys": [{"kty": "RSA", "n": ..., "e": ...}, ...]}'

    def parse(self, raw: str) -> str:
        value = json_object(raw)
        keys = value.get("keys")
        if not isinstance(keys, list) or not keys:
            raise ValueError('"keys" must be a non-empty list of keys')
        for number, key in enumerate(keys, start=1):
            if not isinstance(key, dict) or key.get("kty") not in _KEY_TYPES:
                raise ValueError(f'key {number}: expected an object whose "kty" is one of {", ".join(_KEY_TYPES)}')
            if key.get("kty") == "RSA" and not (isinstance(key.get("n"), str) and isinstance(key.get("e"), str)):
                raise ValueError(f'key {number}: an RSA key needs "n" and "e"')
            if key.get("kty") in ("EC", "OKP") and not isinstance(key.get("x"), str):
                raise ValueError(f'key {number}: an {key["kty"]} key needs "crv" and "x"')
        return canonical(value)
