"""Where certificates come from: PEM files on disk, or one AWS Secrets Manager secret per certificate."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Union

from controlplane.errors import SettingsError
from controlplane.secrets.certificate import Certificate, CertificateError, TrustedCa, parse_certificate, parse_trusted_ca

Loaded = Union[Certificate, TrustedCa]


class CertificateSource(Protocol):
    """One certificate (or CA bundle) and how to read it again."""

    @property
    def name(self) -> str: ...

    @property
    def polled(self) -> bool:
        """True: cheap to check often (files); False: read on the slower refresh period (an API call)."""

    def fingerprint(self) -> object:
        """Changes whenever the content may have changed; None means 'read it to find out'."""

    def read(self) -> Loaded:
        """The current content, checked; CertificateError when it cannot be served."""


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        found = os.stat(path)  # follows symlinks: a swapped link (Kubernetes-style secret mounts) counts as a change
    except OSError:
        return None
    return (found.st_mtime_ns, found.st_size, found.st_ino)


def _read_text(name: str, path: Path) -> str:
    try:
        return path.read_text()
    except OSError as error:
        raise CertificateError(f"certificate {name!r}: cannot read {path}: {error.strerror or error}") from None


@dataclass(frozen=True)
class PemFiles:
    """A PEM certificate chain and its key in two files, reloaded when either changes."""

    name: str
    cert_path: Path
    key_path: Path
    polled: bool = True

    def fingerprint(self) -> object:
        return (_stat(self.cert_path), _stat(self.key_path))

    def read(self) -> Loaded:
        chain, key = _read_text(self.name, self.cert_path), _read_text(self.name, self.key_path)
        return parse_certificate(self.name, chain, key, f"files {self.cert_path}, {self.key_path}")


@dataclass(frozen=True)
class CaFile:
    """PEM CA certificates that client certificates must chain to, reloaded when the file changes."""

    name: str
    path: Path
    polled: bool = True

    def fingerprint(self) -> object:
        return _stat(self.path)

    def read(self) -> Loaded:
        return parse_trusted_ca(self.name, _read_text(self.name, self.path), f"file {self.path}")


@dataclass(frozen=True)
class SecretsManagerCertificate:
    """One Secrets Manager secret whose SecretString is JSON: `certificate` (PEM, leaf first), `private_key`
    (PEM) and optionally `certificate_chain` (PEM intermediates, appended), as ACM's ExportCertificate names them."""

    name: str
    secret_id: str
    client: Any  # boto3 secretsmanager client
    polled: bool = False

    def fingerprint(self) -> object:
        return None

    def read(self) -> Loaded:
        source = f"Secrets Manager secret {self.secret_id}"
        try:
            response = self.client.get_secret_value(SecretId=self.secret_id)
        except Exception as error:  # noqa: BLE001 - botocore raises many types; the message says which
            code = getattr(error, "response", {}).get("Error", {}).get("Code", type(error).__name__)
            raise CertificateError(f"certificate {self.name!r}: GetSecretValue({self.secret_id}) failed: {code}: {error}") from None
        text = response.get("SecretString")
        if text is None:
            raise CertificateError(f"certificate {self.name!r} from {source}: expected a SecretString (JSON), found binary")
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if not isinstance(value, dict) or not isinstance(value.get("certificate"), str) or not isinstance(value.get("private_key"), str):
            raise CertificateError(
                f"certificate {self.name!r} from {source}: expected JSON with string fields "
                '"certificate" and "private_key" (and optionally "certificate_chain")'
            )
        chain = value["certificate"].rstrip("\n") + "\n"
        if isinstance(value.get("certificate_chain"), str) and value["certificate_chain"].strip():
            chain += value["certificate_chain"].rstrip("\n") + "\n"
        return parse_certificate(self.name, chain, value["private_key"], f"{source} (version {response.get('VersionId', '?')})")


def _split_name(option: str, text: str, shape: str) -> tuple[str, str]:
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep or not name or not rest.strip():
        raise SettingsError(f"{option} {text!r}: expected {shape}")
    if not all(ch.isalnum() or ch in "-_." for ch in name):
        raise SettingsError(f"{option} {text!r}: the name {name!r} may only hold letters, digits, '-', '_' and '.'")
    return name, rest.strip()


def file_source(text: str) -> PemFiles:
    """`NAME=CERT.pem,KEY.pem` (the --edge-certificate setting)."""
    shape = "NAME=CERT_FILE,KEY_FILE, e.g. api=/certs/api.crt,/certs/api.key"
    name, rest = _split_name("--edge-certificate", text, shape)
    cert, sep, key = rest.partition(",")
    if not sep or not cert.strip() or not key.strip():
        raise SettingsError(f"--edge-certificate {text!r}: expected {shape}")
    return PemFiles(name, Path(cert.strip()), Path(key.strip()))


def secret_source(text: str, client: Any) -> SecretsManagerCertificate:
    """`NAME=SECRET_ID` (the --edge-certificate-secret setting); SECRET_ID is a secret's name or ARN."""
    name, secret_id = _split_name("--edge-certificate-secret", text, "NAME=SECRET_NAME_OR_ARN, e.g. api=prod/edge/api")
    return SecretsManagerCertificate(name, secret_id, client)
