"""A certificate and its key, checked and described (host names, expiry) once when loaded."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from controlplane.errors import ControlPlaneError


class CertificateError(ControlPlaneError):
    """A certificate source holds something we cannot serve; the last good certificate stays in use."""


@dataclass(frozen=True, slots=True)
class Certificate:
    """A PEM chain and key served to Envoy as one SDS secret named `name`."""

    name: str
    chain_pem: str
    key_pem: str = field(repr=False)
    hosts: tuple[str, ...]  # DNS names of the leaf (subjectAltName, else CN), lower case; may hold '*.x' wildcards
    not_after: float  # seconds since the epoch
    source: str  # where it came from, for logs and the admin API (never the key)

    def match(self, host: str) -> int:
        """How well this certificate covers `host`: 2 exact, 1 by wildcard, 0 not at all."""
        host = host.lower()
        if host in self.hosts:
            return 2
        first, dot, rest = host.partition(".")
        if dot and first and f"*.{rest}" in self.hosts:
            return 1
        return 0


@dataclass(frozen=True, slots=True)
class TrustedCa:
    """PEM CA certificates that client certificates must chain to (mTLS from clients at the edge)."""

    name: str
    pem: str
    source: str


def parse_certificate(name: str, chain_pem: str, key_pem: str, source: str) -> Certificate:
    """Check that `chain_pem` and `key_pem` form a pair and describe it; CertificateError says what is wrong."""
    try:
        chain = x509.load_pem_x509_certificates(chain_pem.encode())
    except ValueError as error:
        raise CertificateError(f"certificate {name!r} from {source}: no PEM certificate could be read ({error})") from None
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError) as error:
        raise CertificateError(f"certificate {name!r} from {source}: the private key is not an unencrypted PEM key ({error})") from None
    leaf = chain[0]
    if leaf.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise CertificateError(f"certificate {name!r} from {source}: the private key does not belong to the first certificate of the chain")
    return Certificate(
        name=name,
        chain_pem=chain_pem,
        key_pem=key_pem,
        hosts=_dns_names(leaf),
        not_after=leaf.not_valid_after_utc.replace(tzinfo=datetime.timezone.utc).timestamp(),
        source=source,
    )


def parse_trusted_ca(name: str, pem: str, source: str) -> TrustedCa:
    try:
        x509.load_pem_x509_certificates(pem.encode())
    except ValueError as error:
        raise CertificateError(f"client CA {name!r} from {source}: no PEM certificate could be read ({error})") from None
    return TrustedCa(name=name, pem=pem, source=source)


def _dns_names(leaf: x509.Certificate) -> tuple[str, ...]:
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = [str(attribute.value) for attribute in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return tuple(sorted({name.lower() for name in names}))


@dataclass(frozen=True, slots=True)
class CertificateSet:
    """Everything the edge's TLS needs from outside: its certificates (first = default for clients
    without SNI) and, for mTLS from clients, the CA their certificates must chain to."""

    certificates: tuple[Certificate, ...] = ()
    client_ca: TrustedCa | None = None
